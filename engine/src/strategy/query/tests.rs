//! Every builtin on small hand-made pools: exact selections, ties, budgets larger than the
//! pool, missing and all-zero descriptors.

use super::*;

fn pool(rows: Vec<Scores>) -> CandidatePool {
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, scores)| Candidate {
            case: format!("case{i}"),
            centre: "C2".into(),
            slice: Some(i),
            scores,
            descriptor: vec![],
            features: vec![],
        })
        .collect();
    CandidatePool {
        unit: Unit::Slice,
        rows,
    }
}

fn with(get: fn(f32) -> Scores, values: &[f32]) -> CandidatePool {
    pool(values.iter().map(|v| get(*v)).collect())
}

fn entropy(v: f32) -> Scores {
    Scores {
        entropy: Some(v),
        ..Scores::default()
    }
}

fn distance(v: f32) -> Scores {
    Scores {
        stdr_distance: Some(v),
        ..Scores::default()
    }
}

fn picked(s: &Selection) -> Vec<usize> {
    s.items.iter().map(|i| i.index).collect()
}

fn run(name: &str, p: &CandidatePool, budget: Budget) -> Selection {
    by_name(name).unwrap().select(p, budget, 42).unwrap()
}

#[test]
fn uncertainty_ranks_break_ties_by_index() {
    let p = with(entropy, &[0.5, 0.9, 0.5, 0.1, 0.9]);
    let s = run("entropy", &p, Budget::Count(3));
    assert_eq!(picked(&s), [1, 4, 0]);
    assert_eq!(s.items.iter().map(|i| i.rank).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(s.items.iter().all(|i| i.reason == Reason::Uncertain));
    let margins = pool(
        [0.3, 0.1, 0.1, 0.8]
            .iter()
            .map(|v| Scores {
                margin: Some(*v),
                ..Scores::default()
            })
            .collect(),
    );
    assert_eq!(
        picked(&run("margin", &margins, Budget::Count(2))),
        [1, 2],
        "smallest margin first"
    );
    let bald = pool(
        [0.2, 0.7, 0.4]
            .iter()
            .map(|v| Scores {
                bald: Some(*v),
                ..Scores::default()
            })
            .collect(),
    );
    assert_eq!(
        picked(&run("bald", &bald, Budget::Count(10))),
        [1, 2, 0],
        "budget larger than the pool"
    );
}

#[test]
fn stdr_takes_the_far_and_the_near_half() {
    let p = with(distance, &[5.0, 1.0, 3.0, 9.0, 2.0, 7.0]);
    let s = run("stdr", &p, Budget::Count(4));
    assert_eq!(picked(&s), [3, 5, 1, 4]);
    let reasons: Vec<Reason> = s.items.iter().map(|i| i.reason).collect();
    assert_eq!(reasons, [Reason::Far, Reason::Far, Reason::Near, Reason::Near]);
    // An odd budget gives the far end the extra row; no row twice when the halves meet.
    assert_eq!(picked(&run("stdr", &p, Budget::Count(5))), [3, 5, 0, 1, 4]);
    let all = picked(&run("stdr", &p, Budget::Count(50)));
    assert_eq!(all, [3, 5, 0, 1, 4, 2]);
    // MADA: the far end only.
    assert_eq!(picked(&run("mada", &p, Budget::Count(3))), [3, 5, 0]);
    // Ties at both ends are broken by index.
    let flat = with(distance, &[1.0, 1.0, 1.0, 1.0]);
    assert_eq!(picked(&run("stdr", &flat, Budget::Count(2))), [0, 1]);
}

#[test]
fn stdr_distances_from_descriptors_including_all_zero_ones() {
    let refs = vec![vec![0.0, 0.0], vec![2.0, 2.0]];
    assert_eq!(stdr_distance(&[1.0, 1.0], &refs), Some(1.0));
    assert_eq!(
        stdr_distance(&[0.0, 0.0], &refs),
        Some(0.0),
        "an all-zero descriptor is a point like any other"
    );
    assert_eq!(stdr_distance(&[2.0, 4.0], &refs), Some(2.0));
    assert_eq!(stdr_distance(&[], &refs), None);
    assert_eq!(stdr_distance(&[1.0], &refs), None, "a length mismatch is no distance");
    let mut p = pool(vec![Scores::default(); 3]);
    p.rows[0].descriptor = vec![1.0, 1.0];
    p.rows[1].descriptor = vec![0.0, 0.0];
    let p = p.with_reference(&refs).unwrap();
    let err = by_name("stdr").unwrap().select(&p, Budget::Count(1), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "strategy stdr: row 2 (case case2) has no stdr_distance score",
        "a row without a descriptor is named"
    );
}

#[test]
fn references_of_another_grid_are_refused() {
    // A 16 x 16 pool against 4 x 4 references (the kernel-16 grid of 64 x 64 slices).
    let mut p = pool(vec![Scores::default(); 2]);
    p.rows.iter_mut().for_each(|r| r.descriptor = vec![0.5; 256]);
    let refs = vec![vec![0.0; 16]];
    let options = QueryOptions {
        budget: Budget::Count(1),
        unit: Unit::Slice,
        aggregate: Aggregate::Mean,
        seed: 0,
    };
    let e = rank(p.clone(), Some(&refs), by_name("stdr").unwrap().as_ref(), &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the reference points have 16 values (a 4 × 4 grid) but the pool's descriptors have 256 \
         (a 16 × 16 grid): compute both with the same descriptor grid (the references file records its own)"
    );
    let same = vec![vec![0.0; 256]];
    assert!(rank(p, Some(&same), by_name("stdr").unwrap().as_ref(), &options).is_ok());
}

#[test]
fn random_is_seeded_and_never_repeats() {
    let p = with(entropy, &[0.0; 20]);
    let r = by_name("random").unwrap();
    let a = picked(&r.select(&p, Budget::Count(5), 1).unwrap());
    assert_eq!(a, picked(&r.select(&p, Budget::Count(5), 1).unwrap()));
    assert_ne!(a, picked(&r.select(&p, Budget::Count(5), 2).unwrap()));
    let mut all = picked(&r.select(&p, Budget::Count(99), 3).unwrap());
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
}

#[test]
fn ugtst_clusters_the_most_uncertain() {
    // Six uncertain rows in two tight feature groups, two certain rows elsewhere.
    let mut p = with(entropy, &[0.9, 0.8, 0.85, 0.1, 0.7, 0.75, 0.95, 0.05]);
    let feats = [
        [0.0, 0.0],
        [0.1, 0.0],
        [0.0, 0.1],
        [50.0, 50.0],
        [10.0, 10.0],
        [10.1, 10.0],
        [10.0, 10.1],
        [60.0, 60.0],
    ];
    for (row, f) in p.rows.iter_mut().zip(feats) {
        row.features = f.to_vec();
    }
    let s = run("ugtst", &p, Budget::Count(2));
    let mut got = picked(&s);
    got.sort();
    // The 3 x 2 most uncertain are rows 6, 0, 2, 1, 5, 4; one per group, nearest its centroid.
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().any(|i| [0, 1, 2].contains(i)) && got.iter().any(|i| [4, 5, 6].contains(i)),
        "{got:?}"
    );
    assert!(
        !got.contains(&3) && !got.contains(&7),
        "certain rows are never clustered"
    );
    assert_eq!(got, [0, 4], "the members nearest each group's centroid");
}

#[test]
fn coreset_is_k_center_greedy() {
    let mut p = with(entropy, &[0.0; 6]);
    for (row, x) in p.rows.iter_mut().zip([0.0f32, 1.0, 2.0, 10.0, 11.0, 20.0]) {
        row.features = vec![x];
    }
    // Mean 7.33: nearest is 10 (row 3); then the farthest, 0 and 20 tie at 10 (row 0 first);
    // then 20 (row 5).
    assert_eq!(picked(&run("coreset", &p, Budget::Count(3))), [3, 0, 5]);
}

#[test]
fn budgets_parse_and_resolve() {
    assert_eq!(Budget::parse("20%").unwrap(), Budget::Fraction(0.2));
    assert_eq!(Budget::parse("0.2").unwrap(), Budget::Fraction(0.2));
    assert_eq!(Budget::parse("12").unwrap(), Budget::Count(12));
    for bad in ["150%", "-1", "abc", "0%", "1.5"] {
        assert!(Budget::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Budget::Fraction(0.2).resolve(12), 2);
    assert_eq!(Budget::Fraction(0.2).resolve(2), 1, "at least one row");
    assert_eq!(Budget::Fraction(0.2).resolve(0), 0);
    assert_eq!(Budget::Count(7).resolve(3), 3);
}

#[test]
fn bad_scores_and_names_are_errors() {
    let p = with(entropy, &[0.1, f32::NAN]);
    let err = by_name("entropy").unwrap().select(&p, Budget::Count(1), 0).unwrap_err();
    assert!(
        err.to_string()
            .contains("row 1 (case case1) has a non-finite entropy score"),
        "{err}"
    );
    let err = by_name("bald").unwrap().select(&p, Budget::Count(1), 0).unwrap_err();
    assert!(err.to_string().contains("has no bald score"), "{err}");
    let err = by_name("nope").err().unwrap().to_string();
    assert!(
        err.contains("unknown query strategy \"nope\"") && err.contains("stdr"),
        "{err}"
    );
}

#[test]
fn volume_rows_aggregate_their_slices() {
    let mut p = with(distance, &[1.0, 3.0, 10.0, 2.0]);
    for (row, case) in p.rows.iter_mut().zip(["a", "a", "b", "b"]) {
        row.case = case.into();
        row.scores.entropy = Some(row.scores.stdr_distance.unwrap() / 10.0);
    }
    let mean = p.volumes(Aggregate::Mean);
    assert_eq!(mean.unit, Unit::Volume);
    assert_eq!(mean.rows.len(), 2);
    assert_eq!(mean.rows[0].scores.stdr_distance, Some(2.0));
    assert_eq!(mean.rows[1].scores.stdr_distance, Some(6.0));
    assert_eq!(mean.rows[0].slice, None);
    let max = p.volumes(Aggregate::Max);
    assert_eq!(max.rows[1].scores.stdr_distance, Some(10.0));
    assert_eq!(picked(&run("mada", &max, Budget::Count(1))), [1]);
}

#[test]
fn random_case_takes_whole_cases() {
    // 4 cases x 5 slices.
    let mut p = pool(vec![Scores::default(); 20]);
    for (i, r) in p.rows.iter_mut().enumerate() {
        r.case = format!("case{}", i / 5);
        r.slice = Some(i % 5);
    }
    let s = run("random-case", &p, Budget::Fraction(0.5));
    assert_eq!(s.items.len(), 10, "half the cases, all their slices");
    let cases: std::collections::BTreeSet<&str> = s.items.iter().map(|i| i.case.as_str()).collect();
    assert_eq!(cases.len(), 2);
    for case in &cases {
        let slices: Vec<_> = s.items.iter().filter(|i| i.case == *case).map(|i| i.slice).collect();
        assert_eq!(
            slices,
            (0..5).map(Some).collect::<Vec<_>>(),
            "{case}: every slice, in order"
        );
    }
    assert_eq!(s, run("random-case", &p, Budget::Fraction(0.5)), "seeded");
    assert_eq!(
        run("random-case", &p, Budget::Count(12)).items.len(),
        10,
        "whole cases within 12 rows"
    );
    assert_eq!(
        run("random-case", &p, Budget::Count(3)).items.len(),
        5,
        "at least one case"
    );
    assert_eq!(run("random-case", &p, Budget::Count(100)).items.len(), 20);
    // On volume rows it draws volumes.
    let v = run("random-case", &p.volumes(Aggregate::Mean), Budget::Fraction(0.5));
    assert_eq!((v.items.len(), v.unit), (2, Unit::Volume));
}
