//! `scaled-finetune`: fine-tunes for a number of passes over the labelled selection instead of
//! a fixed number of steps (`iterations = ceil(epochs × selected rows / batch)`, between
//! `min_iterations` and the schedule's own), and adds the source model's pseudo-labels on the
//! rest of the target only when the selection is a small part of the pool (below
//! `pseudo_below`), where the labels alone are too few. Parameters:
//! `{"epochs": 5, "min_iterations": 20, "pseudo_below": 0.1}`.

use delinea_plugin_api::serde_json::{json, Value};
use delinea_plugin_api::{AdaptPlugin, Host};

/// The plugin.
#[derive(Default)]
pub struct ScaledFinetune;

fn number(params: &Value, key: &str, default: f64) -> Result<f64, String> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or(format!("{key} must be a number >= 0, not {v}")),
    }
}

impl AdaptPlugin for ScaledFinetune {
    const NAME: &'static str = "scaled-finetune";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PARAMS_SCHEMA: &'static str = r#"{"type": "object", "properties": {"epochs": {"type": "number", "default": 5}, "min_iterations": {"type": "integer", "default": 20}, "pseudo_below": {"type": "number", "default": 0.1}}, "additionalProperties": false}"#;

    fn plan(&self, state: &Value, params: &Value, _host: &Host) -> Result<Value, String> {
        let epochs = number(params, "epochs", 5.0)?;
        let min_iterations = number(params, "min_iterations", 20.0)?;
        let pseudo_below = number(params, "pseudo_below", 0.1)?;
        let selection = &state["selection"];
        let rows = selection["items"].as_array().map_or(0, Vec::len) as f64;
        let pool = selection["pool_size"].as_f64().unwrap_or(0.0);
        let mut schedule = state["schedule"].clone();
        let batch = schedule["batch"]
            .as_f64()
            .filter(|b| *b > 0.0)
            .ok_or("the schedule has no batch")?;
        let cap = schedule["iterations"].as_f64().unwrap_or(f64::MAX);
        let iterations = (epochs * rows / batch).ceil().max(min_iterations).min(cap);
        schedule["iterations"] = json!(iterations as u64);
        let mut data = vec![json!({"rows": "selected", "labels": "true"})];
        if pool > 0.0 && rows / pool < pseudo_below {
            data.push(json!({"rows": "unselected", "labels": "pseudo"}));
        }
        Ok(json!({
            "data": data,
            "trainable": "all",
            "batch_norm": "train",
            "loss": [{"term": "segmentation", "weight": 1.0}],
            "schedule": schedule,
        }))
    }
}

delinea_plugin_api::export_adapt_plugin!(ScaledFinetune);
