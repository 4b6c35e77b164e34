//! Reference checks against medpy 0.5.2, MONAI 1.6.1 and scipy 1.17.1.
//!
//! Every number pasted below was printed by `bench/metrics/reference_values.py` (in a venv with
//! numpy 2.4.6, scipy 1.17.1, torch 2.15.0, monai 1.6.1, medpy 0.5.2, Python 3.11.7), which
//! builds the same masks by the same integer formulas as [`cases`] and the same samples as
//! [`wilcoxon_data`]. medpy works in float64, so its values are checked to 1e-12 relative;
//! MONAI returns float32, so its values are checked to 1e-6 relative.

use super::wilcoxon::{self, Method, ZeroMethod};
use super::*;
use crate::volume::Geometry;

fn make(dims: [usize; 3], spacing: [f64; 3], f: &dyn Fn([usize; 3]) -> bool) -> LabelMap {
    let g = Geometry::axis_aligned(dims, spacing);
    let mut m = LabelMap::zeros(g.clone());
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                m.data[g.index(i, j, k)] = f([i, j, k]) as u8;
            }
        }
    }
    m
}

/// Voxels with `lo <= (i, j, k) < hi` (Python `box`).
fn in_box(x: [usize; 3], lo: [usize; 3], hi: [usize; 3]) -> bool {
    (0..3).all(|a| x[a] >= lo[a] && x[a] < hi[a])
}

/// `sum(((x - c) * s / a)^2) <= 1`, accumulated over i, j, k in that order (Python `ellipsoid`).
fn in_ellipsoid(x: [usize; 3], s: [f64; 3], c: [f64; 3], a: [f64; 3]) -> bool {
    let mut acc = 0.0;
    for n in 0..3 {
        let t = (x[n] as f64 - c[n]) * s[n] / a[n];
        acc += t * t;
    }
    acc <= 1.0
}

/// The masks of reference_values.py `cases()`: (name, pred, gt).
fn cases() -> Vec<(&'static str, LabelMap, LabelMap)> {
    let mut out = Vec::new();
    let (d, s) = ([20, 18, 8], [0.5, 0.5, 3.0]);
    out.push((
        "boxes_aniso",
        make(d, s, &|x| in_box(x, [6, 3, 1], [15, 11, 5])),
        make(d, s, &|x| in_box(x, [4, 5, 2], [12, 13, 6])),
    ));
    let (d, s) = ([24, 24, 24], [1.0, 1.0, 1.0]);
    out.push((
        "sphere_vs_box",
        make(d, s, &|x| in_box(x, [5, 6, 4], [18, 19, 17])),
        make(d, s, &|x| in_ellipsoid(x, s, [11.5, 12.0, 11.0], [7.0, 7.0, 7.0])),
    ));
    let (d, s) = ([10, 12, 5], [0.8, 0.8, 2.5]);
    out.push((
        "border",
        make(d, s, &|x| in_box(x, [2, 3, 0], [10, 9, 5])),
        make(d, s, &|x| in_box(x, [0, 0, 0], [6, 12, 3])),
    ));
    let (d, s) = ([9, 9, 9], [0.5, 0.5, 3.0]);
    out.push((
        "single_voxels",
        make(d, s, &|x| in_box(x, [6, 1, 5], [7, 2, 6])),
        make(d, s, &|x| in_box(x, [2, 3, 4], [3, 4, 5])),
    ));
    let (d, s) = ([40, 36, 10], [0.5, 0.5, 3.0]);
    out.push((
        "ellipsoids_aniso",
        make(d, s, &|x| {
            in_ellipsoid(x, s, [22.0, 17.0, 4.6], [7.0, 7.0, 10.0]) || in_box(x, [2, 2, 8], [4, 4, 10])
        }),
        make(d, s, &|x| in_ellipsoid(x, s, [20.0, 18.0, 5.0], [8.0, 6.0, 9.0])),
    ));
    let (d, s) = ([24, 24, 12], [1.0, 1.0, 2.0]);
    out.push((
        "shell",
        make(d, s, &|x| in_ellipsoid(x, s, [12.5, 11.0, 6.0], [7.0, 7.0, 9.0])),
        make(d, s, &|x| {
            in_ellipsoid(x, s, [12.0, 12.0, 6.0], [8.0, 8.0, 8.0])
                && !in_ellipsoid(x, s, [12.0, 12.0, 6.0], [4.0, 4.0, 4.0])
        }),
    ));
    out
}

struct Reference {
    name: &'static str,
    /// Voxels of pred, gt.
    voxels: [u64; 2],
    /// medpy.metric.binary: dc, hd, hd95, assd, asd(pred, gt), asd(gt, pred), with voxelspacing.
    medpy: [f64; 6],
    /// MONAI with spacing: compute_hausdorff_distance (percentile None, then 95; directed
    /// False), compute_average_surface_distance (symmetric True, then False),
    /// compute_surface_dice (class_thresholds [2.0]).
    monai: [f64; 5],
}

#[rustfmt::skip]
fn references() -> Vec<Reference> {
    vec![
        Reference {
            name: "boxes_aniso",
            voxels: [288, 256],
            medpy: [0.39705882352941174, 3.5, 3.1622776601683795, 1.5895337146463535, 1.6339964056318497, 1.5402381224667818],
            monai: [3.5, 3.195669412612915, 1.5895336866378784, 1.6339963674545288, 0.6494845151901245],
        },
        Reference {
            name: "sphere_vs_box",
            voxels: [2197, 1422],
            medpy: [0.7521414755457309, 4.69041575982343, 3.0, 1.1331684716811405, 1.351403067558695, 0.7205240174672489],
            monai: [4.690415859222412, 3.0, 1.133168339729309, 1.3514031171798706, 0.8353474140167236],
        },
        Reference {
            name: "border",
            voxels: [240, 216],
            medpy: [0.3157894736842105, 5.936328831862332, 5.221836948528598, 1.9434101798651982, 2.638434795025112, 1.2799775926670984],
            monai: [5.936328887939453, 5.546169757843018, 1.9434101581573486, 2.638434886932373, 0.5872092843055725],
        },
        Reference {
            name: "single_voxels",
            voxels: [1, 1],
            medpy: [0.0, 3.7416573867739413, 3.7416573867739413, 3.7416573867739413, 3.7416573867739413, 3.7416573867739413],
            monai: [3.7416574954986572, 3.7416574954986572, 3.7416574954986572, 3.7416574954986572, 0.0],
        },
        Reference {
            name: "ellipsoids_aniso",
            voxels: [2722, 2331],
            medpy: [0.8141698001187413, 9.273618495495704, 3.0, 0.8065430549519124, 0.9178987150184568, 0.6909562644510605],
            monai: [9.273618698120117, 3.0, 0.8065431118011475, 0.9178986549377441, 0.8703389763832092],
        },
        Reference {
            name: "shell",
            voxels: [942, 912],
            medpy: [0.7723840345199569, 3.605551275463989, 2.8284271247461903, 0.9521039194104887, 0.6957470455978185, 1.1239373312052132],
            monai: [3.605551242828369, 2.8284270763397217, 0.9521039128303528, 0.6957470774650574, 0.9023861289024353],
        },
    ]
}

fn close(got: Option<f64>, want: f64, rel: f64, what: &str) {
    let g = got.unwrap_or(f64::NAN);
    assert!(
        (g - want).abs() <= rel * want.abs().max(1e-300) || g == want,
        "{what}: got {g}, want {want}"
    );
}

#[test]
fn surface_metrics_match_medpy_and_monai() {
    let refs = references();
    let cases = cases();
    assert_eq!(refs.len(), cases.len());
    for (r, (name, pred, gt)) in refs.iter().zip(&cases) {
        assert_eq!(r.name, *name);
        let m = compute(pred, gt, &Options::default()).unwrap();
        assert_eq!(m.outcome, Outcome::Ok, "{name}");
        assert_eq!([m.pred_voxels, m.gt_voxels], r.voxels, "{name}");
        let p = |w: &str| format!("{name} medpy {w}");
        close(m.dsc, r.medpy[0], 1e-12, &p("dc"));
        close(m.hd, r.medpy[1], 1e-12, &p("hd"));
        close(m.hd95, r.medpy[2], 1e-12, &p("hd95"));
        close(m.assd, r.medpy[3], 1e-12, &p("assd"));
        close(m.asd_pred_to_gt, r.medpy[4], 1e-12, &p("asd(pred, gt)"));
        close(m.asd_gt_to_pred, r.medpy[5], 1e-12, &p("asd(gt, pred)"));
        let q = |w: &str| format!("{name} monai {w}");
        close(m.hd, r.monai[0], 1e-6, &q("hd"));
        close(m.hd95_max, r.monai[1], 1e-6, &q("hd95 directed=False"));
        close(m.assd, r.monai[2], 1e-6, &q("asd symmetric"));
        close(m.asd_pred_to_gt, r.monai[3], 1e-6, &q("asd directed"));
        close(m.nsd, r.monai[4], 1e-6, &q("surface dice 2 mm"));
    }
}

#[test]
fn label_selection_and_conventions_differ_where_expected() {
    // boxes_aniso: the pooled and max-directed HD95 differ (3.162 vs 3.196 mm).
    let (_, pred, gt) = &cases()[0];
    let m = compute(pred, gt, &Options::default()).unwrap();
    assert!(m.hd95_max.unwrap() > m.hd95.unwrap());
    // Label 2 in a multi-label map is the same mask as label > 0 of a binary one.
    let relabel = |l: &LabelMap, v: u8| {
        let mut x = l.clone();
        x.data.iter_mut().for_each(|d| *d *= v);
        x
    };
    let mut multi = relabel(pred, 2);
    multi.data[0] = 1; // another label, ignored with --label 2
    let m2 = compute(
        &multi,
        &relabel(gt, 2),
        &Options {
            label: Some(2),
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(m, m2);
}

#[test]
fn empty_masks_are_explicit() {
    let g = Geometry::axis_aligned([10, 12, 5], [0.8, 0.8, 2.5]);
    let b = make(g.dims, g.spacing, &|x| in_box(x, [2, 3, 1], [5, 6, 3]));
    let e = LabelMap::zeros(g.clone());
    let inf = Some(f64::INFINITY);

    let m = compute(&e, &e, &Options::default()).unwrap();
    assert_eq!(m.outcome, Outcome::BothEmpty);
    assert_eq!((m.dsc, m.iou), (Some(1.0), Some(1.0)));
    assert_eq!(
        (m.hd, m.hd95, m.hd95_max, m.assd, m.nsd),
        (None, None, None, None, None)
    );
    assert_eq!((m.sensitivity, m.precision, m.rvd), (None, None, None));

    // MONAI gives hd/assd inf and NSD 0 here (hd95 NaN); medpy raises.
    let m = compute(&e, &b, &Options::default()).unwrap();
    assert_eq!(m.outcome, Outcome::PredEmpty);
    assert_eq!(
        (m.dsc, m.sensitivity, m.precision, m.rvd),
        (Some(0.0), Some(0.0), None, Some(-1.0))
    );
    assert_eq!(
        (m.hd, m.hd95, m.hd95_max, m.assd, m.nsd),
        (inf, inf, inf, inf, Some(0.0))
    );

    let m = compute(&b, &e, &Options::default()).unwrap();
    assert_eq!(m.outcome, Outcome::GtEmpty);
    assert_eq!(
        (m.dsc, m.sensitivity, m.precision, m.rvd),
        (Some(0.0), None, Some(0.0), inf)
    );
    assert_eq!((m.asd_pred_to_gt, m.asd_gt_to_pred, m.nsd), (inf, inf, Some(0.0)));
    assert!(m.outcome.is_failure());

    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["hd95"], "inf");
    assert_eq!(json["sensitivity"], serde_json::Value::Null);
    assert_eq!(json["outcome"], "gt_empty");
}

#[test]
fn identical_masks_and_mismatched_grids() {
    let (_, pred, gt) = &cases()[4];
    let m = compute(gt, gt, &Options::default()).unwrap();
    assert_eq!(
        (m.dsc, m.hd, m.hd95, m.assd, m.nsd),
        (Some(1.0), Some(0.0), Some(0.0), Some(0.0), Some(1.0))
    );
    assert!((m.gt_ml - m.gt_voxels as f64 * 0.75 / 1000.0).abs() < 1e-12);
    let other = make([40, 36, 11], [0.5, 0.5, 3.0], &|_| false);
    assert!(matches!(
        compute(pred, &other, &Options::default()),
        Err(Error::GridMismatch { .. })
    ));
    let bad = Options {
        tolerance_mm: f64::NAN,
        ..Options::default()
    };
    assert!(matches!(compute(pred, gt, &bad), Err(Error::BadTolerance { .. })));
}

/// reference_values.py `wilcoxon_data()`: (name, x, y).
fn wilcoxon_data() -> Vec<(&'static str, Vec<f64>, Vec<f64>)> {
    let x = |n: usize| (1..=n).map(|i| (i * 37 % 101) as f64 / 10.0).collect::<Vec<_>>();
    let y = |n: usize, drift: bool| {
        (1..=n)
            .map(|i| (i * 53 % 97) as f64 / 10.0 + 0.05 + if drift { i as f64 / 1000.0 } else { 0.0 })
            .collect::<Vec<_>>()
    };
    let tied = |base: f64, d: &[i32]| (d.iter().map(|&v| base + v as f64).collect(), vec![base; d.len()]);
    let (x16, y16) = tied(10.0, &[3, -1, 0, 2, 2, -4, 5, 0, 1, -2, 6, 7, 0, 3, 8, 9]);
    let (x9, y9) = tied(5.0, &[2, -1, 0, 3, 3, 5, 0, -2, 4]);
    vec![
        ("no_ties_n10", x(10), y(10, false)),
        ("no_ties_n20", x(20), y(20, true)),
        ("ties_zeros_n16", x16, y16),
        ("ties_zeros_n9", x9, y9),
        ("no_ties_n60", x(60), y(60, true)),
    ]
}

/// scipy.stats.wilcoxon(x, y, ...) -> (statistic, pvalue) for: zero_method wilcox, pratt,
/// zsplit (defaults otherwise), method="asymptotic", method="asymptotic" + correction=True.
#[rustfmt::skip]
const SCIPY_WILCOXON: [(&str, [(f64, f64); 5]); 5] = [
        ("no_ties_n10", [(25.0, 0.845703125), (25.0, 0.845703125), (25.0, 0.845703125), (25.0, 0.7988593499960496), (25.0, 0.8384637819224635)]),
        ("no_ties_n20", [(98.0, 0.8123550415039062), (98.0, 0.8123550415039062), (98.0, 0.8123550415039062), (98.0, 0.7938390455415016), (98.0, 0.8082669740051833)]),
        ("ties_zeros_n16", [(13.5, 0.02506184434388362), (22.5, 0.02709013262204383), (25.5, 0.02771448076352779), (13.5, 0.02506184434388362), (13.5, 0.02742315438135468)]),
        ("ties_zeros_n9", [(3.5, 0.09375), (7.5, 0.125), (9.0, 0.125), (3.5, 0.07488031404005385), (3.5, 0.08981434395829534)]),
        ("no_ties_n60", [(811.0, 0.4439103494290324), (811.0, 0.4439103494290324), (811.0, 0.4439103494290324), (811.0, 0.4439103494290324), (811.0, 0.4461042245691117)]),
];

#[test]
fn wilcoxon_matches_scipy() {
    let data = wilcoxon_data();
    for ((name, x, y), (rname, want)) in data.iter().zip(SCIPY_WILCOXON.iter()) {
        assert_eq!(name, rname);
        let runs = [
            wilcoxon::Options {
                zero_method: ZeroMethod::Wilcox,
                ..Default::default()
            },
            wilcoxon::Options {
                zero_method: ZeroMethod::Pratt,
                ..Default::default()
            },
            wilcoxon::Options {
                zero_method: ZeroMethod::Zsplit,
                ..Default::default()
            },
            wilcoxon::Options {
                method: Method::Asymptotic,
                ..Default::default()
            },
            wilcoxon::Options {
                method: Method::Asymptotic,
                correction: true,
                ..Default::default()
            },
        ];
        for (o, (stat, p)) in runs.iter().zip(want) {
            let w = wilcoxon::wilcoxon(x, y, *o).unwrap();
            assert_eq!(w.statistic, *stat, "{name} {o:?}");
            assert!(
                (w.p_value - p).abs() <= 1e-9 * p,
                "{name} {o:?}: p {} vs scipy {p}",
                w.p_value
            );
        }
    }
    // Which method "auto" chose, as scipy 1.17 does.
    let method = |i: usize| {
        wilcoxon::wilcoxon(&data[i].1, &data[i].2, Default::default())
            .unwrap()
            .method
    };
    assert_eq!(
        [method(0), method(1), method(2), method(3), method(4)],
        ["exact", "exact", "asymptotic", "permutation", "asymptotic"]
    );
    assert!(wilcoxon::wilcoxon(&[], &[], Default::default()).is_none());
}

#[test]
fn holm_matches_hand_computation() {
    // Sorted 0.01, 0.03, 0.04, 0.2 -> 4*0.01, 3*0.03, max(2*0.04, 0.09), max(0.2, 0.09).
    let adj = wilcoxon::holm(&[0.01, 0.04, 0.03, 0.2]);
    let want = [0.04, 0.09, 0.09, 0.2];
    for (a, w) in adj.iter().zip(want) {
        assert!((a - w).abs() < 1e-15, "{adj:?}");
    }
    assert_eq!(wilcoxon::holm(&[0.5, 0.9]), vec![1.0, 1.0]);
}
