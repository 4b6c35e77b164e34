//! Cohort-level tests of the synthetic generator.

use super::raters::{delineate, RaterHabit};
use super::rng::Rng;
use super::*;
use crate::dataset::{self, Manifest, Role};

fn small(seed: u64) -> Config {
    Config {
        seed,
        centres: 3,
        cases_per_centre: 3,
        multi_rater_cases: 2,
        raters: 3,
        size: [48, 48, 12],
        ..Config::default()
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = Cohort::plan(&small(5)).unwrap();
    let b = Cohort::plan(&small(5)).unwrap();
    let c = Cohort::plan(&small(6)).unwrap();
    for i in [0, 4, a.cases.len() - 1] {
        let (x, y, z) = (a.render(i), b.render(i), c.render(i));
        assert_eq!(x.image, y.image, "case {i}");
        assert_eq!(x.labels, y.labels, "case {i}");
        assert_ne!(x.image.data, z.image.data, "case {i}");
    }
    assert_eq!(a.manifest(), b.manifest());
    // Adding centres and cases does not change existing ones.
    let bigger = Cohort::plan(&Config {
        centres: 4,
        cases_per_centre: 4,
        ..small(5)
    })
    .unwrap();
    assert_eq!(bigger.render(1).image, a.render(1).image);
}

#[test]
fn tumours_exist_and_touch_the_airway_wall() {
    let cohort = Cohort::plan(&Config {
        cases_per_centre: 6,
        ..small(11)
    })
    .unwrap();
    for i in 0..cohort.cases.len() {
        let case = cohort.render(i);
        let g = &case.image.geometry;
        let n = case.truth.count(None);
        let ml = n as f64 * g.voxel_ml();
        assert!(n > 0 && (0.5..120.0).contains(&ml), "{}: {ml} ml", case.id);
        // Some tumour voxel lies within 3 mm of the airway (inside the airway grown by 3 mm).
        let near = (0..g.len()).filter(|v| case.truth.data[*v] > 0).any(|v| {
            let ijk = [v % g.dims[0], (v / g.dims[0]) % g.dims[1], v / g.slice_len()].map(|x| x as f64);
            case.anatomy.airway.contains(case.rendered.grid.patient(ijk), 3.0)
        });
        assert!(near, "{}: tumour not attached to the airway", case.id);
        for (rater, label) in &case.labels {
            assert!(label.count(None) > 0, "{}: empty label by {rater}", case.id);
            assert_eq!(&label.geometry, g);
        }
    }
}

#[test]
fn rater_margins_move_the_volume_the_expected_way() {
    // 2.2 mm in-plane: a 2 mm margin moves the boundary voxels (half a voxel is 1.1 mm).
    let cohort = Cohort::plan(&Config {
        size: [96, 96, 12],
        ..small(3)
    })
    .unwrap();
    let plain = |margin_mm| RaterHabit {
        id: "X".into(),
        margin_mm,
        jitter_mm: 0.0,
        slice_jitter_mm: 0.0,
        omit_extension: 0.0,
    };
    let mut grew = 0;
    let mut shrank = 0;
    for i in 0..cohort.cases.len() {
        let case = cohort.render(i);
        let truth = case.truth.count(None);
        let count = |m: f64| delineate(&case.rendered, &plain(m), false, &mut Rng::new(1)).count(None);
        let (tight, none, wide) = (count(-2.0), count(0.0), count(2.0));
        assert_eq!(none, truth, "{}: a zero margin reproduces the tumour", case.id);
        assert!(tight <= truth && wide >= truth, "{}: {tight} {truth} {wide}", case.id);
        grew += (wide > truth) as usize;
        shrank += (tight < truth) as usize;
    }
    assert_eq!(grew, cohort.cases.len());
    assert_eq!(shrank, cohort.cases.len());
}

#[test]
fn multi_rater_experts_differ_systematically() {
    let cohort = Cohort::plan(&Config {
        multi_rater_cases: 4,
        raters: 4,
        ..small(2)
    })
    .unwrap();
    let experts: Vec<&RaterHabit> = cohort.raters.iter().filter(|r| r.id.starts_with('R')).collect();
    assert_eq!(experts.len(), 4);
    let (lo, hi) = experts.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.margin_mm), b.max(r.margin_mm))
    });
    assert!(lo < -1.4 && hi > 1.4, "{lo} {hi}");
    // The generous expert labels more than the tight one on every case.
    let wide = experts.iter().find(|r| r.margin_mm == hi).unwrap().id.clone();
    let tight = experts.iter().find(|r| r.margin_mm == lo).unwrap().id.clone();
    for i in (0..cohort.cases.len()).filter(|i| cohort.centres[cohort.cases[*i].centre].id == MULTI_RATER_CENTRE) {
        let case = cohort.render(i);
        assert_eq!(case.labels.len(), 4);
        assert!(
            case.labels[&wide].count(None) > case.labels[&tight].count(None),
            "{}",
            case.id
        );
    }
}

#[test]
fn written_cohort_validates_and_centres_differ() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        cases_per_centre: 2,
        ..small(7)
    };
    let summary = generate(dir.path(), &config, &|| {}).unwrap();
    let manifest = Manifest::load(&dir.path().join("manifest.json")).unwrap();
    let report = dataset::validate(&manifest);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(summary.cases, 3 * 2 + 2);
    assert_eq!(summary.centres.len(), 4);
    assert_eq!(summary.centres[0].role, Role::Source);
    assert!(summary.centres[1..].iter().all(|c| c.role == Role::Target));
    assert!(dir.path().join("synth-summary.json").is_file());
    for (a, b) in summary.centres.iter().zip(&summary.centres[1..]) {
        let rel = (a.intensity.mean - b.intensity.mean).abs() / a.intensity.mean.max(b.intensity.mean);
        assert!(rel > 0.05 || a.dims != b.dims, "{} and {} look alike", a.id, b.id);
        assert_ne!(a.spacing, b.spacing);
    }
    for c in &summary.centres {
        assert!(
            c.intensity.p99 > c.intensity.mean && c.intensity.mean > c.intensity.p1,
            "{:?}",
            c.intensity
        );
        assert!(c.tumour_ml.median > 0.0);
    }
    // Writing again gives the same bytes.
    let again = tempfile::tempdir().unwrap();
    generate(again.path(), &config, &|| {}).unwrap();
    for rel in [
        "C2/images/C2-001.nii.gz",
        "MR/labels/R2/MR-002.nii.gz",
        "manifest.json",
        "synth-summary.json",
    ] {
        assert_eq!(
            std::fs::read(dir.path().join(rel)).unwrap(),
            std::fs::read(again.path().join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn bad_configurations_are_refused() {
    for bad in [
        Config {
            centres: 0,
            ..Config::default()
        },
        Config {
            size: [4, 96, 24],
            ..Config::default()
        },
        Config {
            raters: 0,
            ..Config::default()
        },
        Config {
            split: [0.5, 0.5],
            ..Config::default()
        },
        Config {
            fov_mm: [f64::NAN, 200.0, 80.0],
            ..Config::default()
        },
    ] {
        assert!(matches!(Cohort::plan(&bad), Err(Error::Config(_))), "{bad:?}");
    }
}
