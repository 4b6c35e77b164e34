//! The plans for the SDK's fixed adaptation state, reviewed: 5 passes over 24 selected rows
//! at batch 8 is 15 steps, raised to `min_iterations` 20; 24 of 100 rows is above
//! `pseudo_below`, so no pseudo-labels, unless asked for below 0.3.

use delinea_plugin_api::serde_json::json;
use delinea_plugin_api::testing::{adapt_state, run_plan};
use scaled_finetune::ScaledFinetune;

#[test]
fn labels_alone_for_a_large_selection() {
    let plan = run_plan::<ScaledFinetune>(&adapt_state(24), &json!({})).unwrap();
    insta::assert_json_snapshot!(plan);
}

#[test]
fn pseudo_labels_for_a_small_selection() {
    let plan = run_plan::<ScaledFinetune>(&adapt_state(24), &json!({"pseudo_below": 0.3, "epochs": 10})).unwrap();
    assert_eq!(plan["data"].as_array().unwrap().len(), 2);
    insta::assert_json_snapshot!(plan);
}
