//! The selection on the SDK's fixed pool (6 cases × 5 slices, seed 11), reviewed: ranks go up
//! the margin column, and no case appears more than `per_case` times.

use delinea_plugin_api::serde_json::json;
use delinea_plugin_api::testing::TestPool;
use margin_diverse::MarginDiverse;

#[test]
fn two_per_case_by_smallest_margin() {
    let pool = TestPool::seeded(11, 6, 5);
    let picks = pool.run::<MarginDiverse>(8, 0, &json!({})).unwrap();
    insta::assert_json_snapshot!(pool.snapshot(&picks));
}

#[test]
fn one_per_case_covers_more_patients() {
    let pool = TestPool::seeded(11, 6, 5);
    let picks = pool.run::<MarginDiverse>(8, 0, &json!({"per_case": 1})).unwrap();
    assert_eq!(picks.len(), 6, "six cases, one each");
    insta::assert_json_snapshot!(pool.snapshot(&picks));
}

#[test]
fn a_bad_parameter_is_an_error() {
    let pool = TestPool::seeded(11, 6, 5);
    let e = pool.run::<MarginDiverse>(8, 0, &json!({"per_case": 0})).unwrap_err();
    assert!(e.contains("per_case"), "{e}");
}
