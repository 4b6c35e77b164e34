//! `margin-diverse`: the rows whose margin between the two most probable classes is smallest
//! (the most uncertain), at most `per_case` rows of any one case, so the labelling budget is
//! spread over patients. Parameters: `{"per_case": 2}`.

use delinea_plugin_api::{serde_json, Host, Pick, Pool, QueryPlugin, Reason};

/// The plugin.
#[derive(Default)]
pub struct MarginDiverse;

impl QueryPlugin for MarginDiverse {
    const NAME: &'static str = "margin-diverse";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const NEEDS: &'static [&'static str] = &["margin"];
    const PARAMS_SCHEMA: &'static str = r#"{"type": "object", "properties": {"per_case": {"type": "integer", "minimum": 1, "default": 2}}, "additionalProperties": false}"#;

    fn select(
        &self,
        pool: &Pool,
        budget: usize,
        _seed: u64,
        params: &serde_json::Value,
        _host: &Host,
    ) -> Result<Vec<Pick>, String> {
        let per_case = match params.get("per_case") {
            None => 2,
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or(format!("per_case must be an integer >= 1, not {v}"))? as usize,
        };
        let margin = pool.column("margin").ok_or("the pool has no margin column")?;
        let mut order: Vec<usize> = (0..pool.len()).collect();
        order.sort_by(|a, b| margin[*a].total_cmp(&margin[*b]).then(a.cmp(b)));
        let mut taken = vec![0usize; pool.cases()];
        let mut picks = Vec::with_capacity(budget);
        for row in order {
            if picks.len() == budget {
                break;
            }
            let case = pool.case_index(row);
            if taken[case] < per_case {
                taken[case] += 1;
                picks.push(Pick::new(row, Reason::Uncertain).score(margin[row]));
            }
        }
        Ok(picks)
    }
}

delinea_plugin_api::export_query_plugin!(MarginDiverse);
