//! The builtin adaptation strategies and the name table.

use super::{
    AdaptPlan, AdaptState, AdaptStrategy, BatchNorm, DataSource, Error, LabelSource, LossTerm, OptimizerKind, Rows,
    Schedule, SelectCheckpoint, Trainable,
};

/// Names `by_name` accepts.
pub const BUILTIN_NAMES: [&str; 7] = [
    "none",
    "finetune",
    "finetune+pseudo",
    "finetune+pseudo-2stage",
    "tent",
    "adabn",
    "supervised",
];

/// The builtin strategy called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn AdaptStrategy>, Error> {
    let plan: fn(&AdaptState) -> Builtin = match name {
        "none" => |_| Builtin::frozen(vec![], BatchNorm::Train),
        "finetune" => |_| Builtin::segmentation(vec![source(Rows::Selected, LabelSource::True)]),
        "finetune+pseudo" => |_| {
            Builtin::segmentation(vec![
                source(Rows::Selected, LabelSource::True),
                source(Rows::Unselected, LabelSource::Pseudo),
            ])
        },
        "finetune+pseudo-2stage" => |_| {
            Builtin::segmentation(vec![
                source(Rows::Selected, LabelSource::True),
                source(Rows::Unselected, LabelSource::PseudoFromFinetuned),
            ])
        },
        "tent" => |_| Builtin {
            data: vec![source(Rows::All, LabelSource::Unlabelled)],
            trainable: Trainable::BatchNormAffine,
            batch_norm: BatchNorm::BatchStatistics,
            loss: vec![LossTerm::Entropy { weight: 1.0 }],
            schedule: tent_schedule,
        },
        "adabn" => |_| Builtin::frozen(vec![source(Rows::All, LabelSource::Unlabelled)], BatchNorm::Reestimate),
        "supervised" => |_| Builtin::segmentation(vec![source(Rows::All, LabelSource::True)]),
        _ => return Err(Error::Unknown { name: name.to_string() }),
    };
    Ok(Box::new(Named {
        name: name.to_string(),
        plan,
    }))
}

fn source(rows: Rows, labels: LabelSource) -> DataSource {
    DataSource { rows, labels }
}

/// Tent's optimiser (Wang et al., ICLR 2021, their CIFAR and segmentation settings): Adam,
/// lr 1e-3, constant (no poly decay), no weight decay; the state's iterations and batch size.
/// The last weights are kept: Tent reads no label, of the validation split neither.
fn tent_schedule(s: Schedule) -> Schedule {
    Schedule {
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        weight_decay: 0.0,
        poly_power: 0.0,
        select: SelectCheckpoint::Last,
        ..s
    }
}

/// A plan without its name, target and schedule.
struct Builtin {
    data: Vec<DataSource>,
    trainable: Trainable,
    batch_norm: BatchNorm,
    loss: Vec<LossTerm>,
    /// The plan's schedule made from the state's.
    schedule: fn(Schedule) -> Schedule,
}

impl Builtin {
    fn segmentation(data: Vec<DataSource>) -> Builtin {
        let loss = vec![LossTerm::Segmentation { weight: 1.0 }];
        Builtin {
            data,
            trainable: Trainable::All,
            batch_norm: BatchNorm::Train,
            loss,
            schedule: |s| s,
        }
    }

    fn frozen(data: Vec<DataSource>, batch_norm: BatchNorm) -> Builtin {
        Builtin {
            data,
            trainable: Trainable::Nothing,
            batch_norm,
            loss: vec![],
            schedule: |s| Schedule {
                iterations: 0,
                select: SelectCheckpoint::Last,
                ..s
            },
        }
    }
}

struct Named {
    name: String,
    plan: fn(&AdaptState) -> Builtin,
}

impl AdaptStrategy for Named {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn plan(&self, state: &AdaptState) -> Result<AdaptPlan, Error> {
        let b = (self.plan)(state);
        let schedule = (b.schedule)(state.schedule);
        Ok(AdaptPlan {
            strategy: self.name.clone(),
            target: state.target.clone(),
            data: b.data,
            trainable: b.trainable,
            batch_norm: b.batch_norm,
            loss: b.loss,
            schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::query::{Selection, Unit};

    fn state() -> AdaptState {
        let selection = Selection {
            strategy: "stdr".into(),
            unit: Unit::Slice,
            pool_size: 10,
            items: vec![],
        };
        AdaptState {
            selection,
            target: "C2".into(),
            schedule: Schedule {
                iterations: 300,
                ..Schedule::default()
            },
        }
    }

    #[test]
    fn the_paper_method_trains_on_labels_and_pseudo_labels() {
        let p = by_name("finetune+pseudo").unwrap().plan(&state()).unwrap();
        assert_eq!(
            p.data,
            vec![
                source(Rows::Selected, LabelSource::True),
                source(Rows::Unselected, LabelSource::Pseudo)
            ]
        );
        assert_eq!((p.trainable, p.batch_norm), (Trainable::All, BatchNorm::Train));
        assert_eq!(p.loss, vec![LossTerm::Segmentation { weight: 1.0 }]);
        assert_eq!(
            (p.schedule.iterations, p.schedule.lr, p.target.as_str()),
            (300, 0.03, "C2")
        );
    }

    #[test]
    fn every_builtin_plans_what_its_name_says() {
        let s = state();
        let plan = |n: &str| by_name(n).unwrap().plan(&s).unwrap();
        assert_eq!(plan("finetune").data, vec![source(Rows::Selected, LabelSource::True)]);
        assert_eq!(
            plan("finetune+pseudo-2stage").data,
            vec![
                source(Rows::Selected, LabelSource::True),
                source(Rows::Unselected, LabelSource::PseudoFromFinetuned)
            ]
        );
        let selecting = AdaptState {
            schedule: Schedule {
                select: SelectCheckpoint::BestTargetVal,
                ..s.schedule
            },
            ..s.clone()
        };
        for (name, keeps) in [
            ("finetune", SelectCheckpoint::BestTargetVal),
            ("finetune+pseudo", SelectCheckpoint::BestTargetVal),
            ("supervised", SelectCheckpoint::BestTargetVal),
            ("tent", SelectCheckpoint::Last),
            ("adabn", SelectCheckpoint::Last),
            ("none", SelectCheckpoint::Last),
        ] {
            let p = by_name(name).unwrap().plan(&selecting).unwrap();
            assert_eq!(
                p.schedule.select, keeps,
                "{name}: label-free methods read no validation label"
            );
        }
        assert_eq!(plan("supervised").data, vec![source(Rows::All, LabelSource::True)]);
        let none = plan("none");
        assert_eq!((none.schedule.iterations, none.trainable), (0, Trainable::Nothing));
        assert!(none.data.is_empty());
        let tent = plan("tent");
        assert_eq!(
            (tent.trainable, tent.batch_norm),
            (Trainable::BatchNormAffine, BatchNorm::BatchStatistics)
        );
        assert_eq!(tent.loss, vec![LossTerm::Entropy { weight: 1.0 }]);
        assert_eq!(tent.data, vec![source(Rows::All, LabelSource::Unlabelled)]);
        let t = tent.schedule;
        assert_eq!(
            (t.optimizer, t.lr, t.weight_decay, t.poly_power),
            (OptimizerKind::Adam, 1e-3, 0.0, 0.0)
        );
        assert_eq!(
            (t.iterations, t.batch),
            (300, s.schedule.batch),
            "the state's length and batch"
        );
        let adabn = plan("adabn");
        assert_eq!(
            (adabn.batch_norm, adabn.schedule.iterations),
            (BatchNorm::Reestimate, 0)
        );
        for n in BUILTIN_NAMES {
            assert_eq!(by_name(n).unwrap().name(), n);
        }
        assert!(by_name("ft").err().unwrap().to_string().contains("finetune+pseudo"));
    }
}
