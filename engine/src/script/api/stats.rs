//! Metrics of two masks (METHOD.md's conventions, the same code as `delinea metrics`),
//! statistics (median, IQR, paired Wilcoxon, Holm), seeded random numbers and logging.

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext, FLOAT, INT};

use super::vector::{count, number, Vector};
use super::volume::Labels;
use crate::metrics::{self, stats, wilcoxon};

/// The numbers of an array or a vector.
fn numbers(values: &Dynamic, what: &str) -> Result<Vec<f64>, Box<EvalAltResult>> {
    if let Some(v) = values.clone().try_cast::<Vector>() {
        return Ok(v.0.to_vec());
    }
    let array = (values.clone().try_cast::<Array>()).ok_or_else(|| {
        format!(
            "{what}: expected an array of numbers or a vector, found {}",
            values.type_name()
        )
    })?;
    (array.iter().enumerate())
        .map(|(i, x)| number(x, &format!("{what}: element {i}")))
        .collect()
}

/// The metrics of `pred` against `truth`, NSD at `tolerance_mm`.
fn compute(pred: &Labels, truth: &Labels, tolerance_mm: f64) -> Result<metrics::Metrics, Box<EvalAltResult>> {
    let options = metrics::Options {
        tolerance_mm,
        ..metrics::Options::default()
    };
    metrics::compute(&pred.0, &truth.0, &options).map_err(|e| e.to_string().into())
}

/// A metric's value: a number, `inf` for a failure's distances, `()` where undefined.
fn value(v: Option<f64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from)
}

#[export_module]
pub mod stats_api {
    use super::*;

    /// Dice of two masks (any label > 0): `dice(pred, truth)`; 1 when both are empty.
    #[rhai_fn(return_raw)]
    pub fn dice(pred: Labels, truth: Labels) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(compute(&pred, &truth, 2.0)?.dsc))
    }

    /// HD95, pooled convention (medpy and the paper's code), mm; `inf` when one mask is empty,
    /// `()` when both are: `hd95(pred, truth)`.
    #[rhai_fn(return_raw)]
    pub fn hd95(pred: Labels, truth: Labels) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(compute(&pred, &truth, 2.0)?.hd95))
    }

    /// HD95, max-directed convention (MONAI), mm: `hd95_max(pred, truth)`.
    #[rhai_fn(return_raw)]
    pub fn hd95_max(pred: Labels, truth: Labels) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(compute(&pred, &truth, 2.0)?.hd95_max))
    }

    /// Average symmetric surface distance, mm: `assd(pred, truth)`.
    #[rhai_fn(return_raw)]
    pub fn assd(pred: Labels, truth: Labels) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(compute(&pred, &truth, 2.0)?.assd))
    }

    /// Normalised surface distance at `tolerance_mm`: `nsd(pred, truth, 2.0)`.
    #[rhai_fn(return_raw)]
    pub fn nsd(pred: Labels, truth: Labels, tolerance_mm: FLOAT) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(compute(&pred, &truth, tolerance_mm)?.nsd))
    }

    /// Every metric of `delinea metrics` as a map (dsc, iou, hd95, hd95_max, assd, nsd,
    /// outcome, …), NSD at 2 mm: `metrics(pred, truth).hd95`.
    #[rhai_fn(return_raw)]
    pub fn metrics(pred: Labels, truth: Labels) -> Result<Map, Box<EvalAltResult>> {
        let m = compute(&pred, &truth, 2.0)?;
        let mut out = Map::new();
        for name in metrics::METRIC_NAMES {
            out.insert(name.into(), value(m.get(name).flatten()));
        }
        out.insert("outcome".into(), Dynamic::from(m.outcome.as_str().to_string()));
        out.insert("tolerance_mm".into(), Dynamic::from(m.tolerance_mm));
        Ok(out)
    }

    /// The median of an array of numbers or a vector (`()` when empty): `median(dsc)`.
    #[rhai_fn(return_raw)]
    pub fn median(values: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(value(stats::median(&numbers(&values, "median")?)))
    }

    /// The first and third quartiles (linear interpolation, as numpy), `[q1, q3]`:
    /// `iqr(dsc)`.
    #[rhai_fn(return_raw)]
    pub fn iqr(values: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        let v = numbers(&values, "iqr")?;
        Ok(vec![
            value(stats::percentile(&v, 25.0)),
            value(stats::percentile(&v, 75.0)),
        ])
    }

    /// Paired two-sided Wilcoxon signed-rank test of `a` against `b` (scipy's defaults): a map
    /// of `n`, `statistic`, `p_value`, `method` (`()` without a non-zero difference):
    /// `wilcoxon(dsc_a, dsc_b).p_value`.
    #[rhai_fn(return_raw)]
    pub fn wilcoxon(a: Dynamic, b: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let (a, b) = (numbers(&a, "wilcoxon: a")?, numbers(&b, "wilcoxon: b")?);
        if a.len() != b.len() {
            return Err(format!("wilcoxon: {} values against {}: the test pairs them", a.len(), b.len()).into());
        }
        let Some(t) = wilcoxon::wilcoxon(&a, &b, wilcoxon::Options::default()) else {
            return Ok(Dynamic::UNIT);
        };
        let mut out = Map::new();
        out.insert("n".into(), Dynamic::from(t.n as INT));
        out.insert("zeros".into(), Dynamic::from(t.zeros as INT));
        out.insert("statistic".into(), Dynamic::from(t.statistic));
        out.insert("p_value".into(), Dynamic::from(t.p_value));
        out.insert("method".into(), Dynamic::from(t.method.to_string()));
        Ok(Dynamic::from(out))
    }

    /// Holm's step-down adjustment of P values, in their order: `holm([0.01, 0.04, 0.03])`.
    #[rhai_fn(return_raw)]
    pub fn holm(p_values: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        let p = numbers(&p_values, "holm")?;
        Ok(wilcoxon::holm(&p).into_iter().map(Dynamic::from).collect())
    }

    /// A uniform random number in [0, 1), from the call's seed: `rand()`.
    #[rhai_fn(return_raw)]
    pub fn rand(ctx: NativeCallContext) -> Result<FLOAT, Box<EvalAltResult>> {
        Ok(crate::script::host::session(&ctx)?.with_rng(|r| r.f64()))
    }

    /// A uniform random integer in [lo, hi), from the call's seed: `rand_int(0, 10)`.
    #[rhai_fn(return_raw)]
    pub fn rand_int(ctx: NativeCallContext, lo: INT, hi: INT) -> Result<INT, Box<EvalAltResult>> {
        if hi <= lo {
            return Err(format!("rand_int({lo}, {hi}): the range is empty").into());
        }
        let span = count(hi - lo, "rand_int: hi - lo")?;
        Ok(lo + crate::script::host::session(&ctx)?.with_rng(|r| r.below(span)) as INT)
    }

    /// The array shuffled (a new one), from the call's seed: `shuffled(rows)`.
    #[rhai_fn(return_raw)]
    pub fn shuffled(ctx: NativeCallContext, values: Array) -> Result<Array, Box<EvalAltResult>> {
        let mut values = values;
        crate::script::host::session(&ctx)?.with_rng(|r| r.shuffle(&mut values));
        Ok(values)
    }

    /// Writes a line to delinea's log (stderr), not to stdout: `log("picked 20 rows")`.
    #[rhai_fn(return_raw)]
    pub fn log(ctx: NativeCallContext, message: &str) -> Result<(), Box<EvalAltResult>> {
        crate::script::host::session(&ctx)?.log(message);
        Ok(())
    }

    /// Logs `done` of `total` as progress: `progress(3, 12)`.
    #[rhai_fn(return_raw)]
    pub fn progress(ctx: NativeCallContext, done: INT, total: INT) -> Result<(), Box<EvalAltResult>> {
        crate::script::host::session(&ctx)?.log(&format!("progress {done}/{total}"));
        Ok(())
    }
}
