//! JSON Schemas of every file delinea reads or writes, generated from the serde types.
//!
//! `data-schema/<name>.schema.json` holds the committed copies; a test fails when they drift
//! from the types (`DELINEA_UPDATE_SCHEMAS=1 cargo test --release schema` rewrites them).

use schemars::schema_for;
use serde_json::Value;

/// `(file stem, schema)` for each schema, in a fixed order.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let all = [
        ("manifest", schema_for!(crate::dataset::ManifestFile)),
        ("validation-report", schema_for!(crate::dataset::ValidationReport)),
        ("inspect", schema_for!(crate::volume::Inspection)),
        ("preprocessing", schema_for!(crate::preprocess::Preprocessing)),
        ("synth-summary", schema_for!(crate::synth::Summary)),
        ("metrics", schema_for!(crate::metrics::Metrics)),
        ("candidate-pool", schema_for!(crate::strategy::query::CandidatePool)),
        ("selection", schema_for!(crate::strategy::query::Selection)),
        ("references", schema_for!(crate::strategy::query::References)),
        ("adapt-plan", schema_for!(crate::strategy::adapt::AdaptPlan)),
        ("train-config", schema_for!(crate::train::TrainConfig)),
        ("model-card", schema_for!(crate::model::ModelCard)),
        ("import-card", schema_for!(crate::interop::ImportCard)),
        ("experiment-config", schema_for!(crate::experiment::ExperimentConfig)),
        ("experiment-results", schema_for!(crate::experiment::Results)),
        ("job", schema_for!(crate::job::Job)),
    ];
    all.into_iter().map(|(name, s)| (name, s.to_value())).collect()
}

/// The pretty JSON text of a schema, as committed (trailing newline included).
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-schema");
        let update = std::env::var_os("DELINEA_UPDATE_SCHEMAS").is_some();
        let mut drifted = Vec::new();
        for (name, schema) in schemas() {
            let path = dir.join(format!("{name}.schema.json"));
            let want = render(&schema);
            if update {
                crate::fsutil::write_bytes_atomic(&path, want.as_bytes()).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
                drifted.push(path.display().to_string());
            }
        }
        assert!(
            drifted.is_empty(),
            "schemas drifted from the types (rerun with DELINEA_UPDATE_SCHEMAS=1): {drifted:?}"
        );
    }
}
