use delinea_plugin_api::{serde_json, Host, Pick, Pool, QueryPlugin, Reason};

/// The most uncertain slices by MC-dropout entropy.
#[derive(Default)]
pub struct MostUncertain;

impl QueryPlugin for MostUncertain {
    const NAME: &'static str = "most-uncertain";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const NEEDS: &'static [&'static str] = &["entropy"]; // only these are computed for the pool

    fn select(
        &self,
        pool: &Pool,
        budget: usize,
        _seed: u64,
        _params: &serde_json::Value,
        _host: &Host,
    ) -> Result<Vec<Pick>, String> {
        let entropy = pool.column("entropy").ok_or("the pool has no entropy column")?;
        let mut rows: Vec<usize> = (0..pool.len()).collect();
        rows.sort_by(|a, b| entropy[*b].total_cmp(&entropy[*a]).then(a.cmp(b)));
        Ok(rows
            .into_iter()
            .take(budget)
            .map(|r| Pick::new(r, Reason::Uncertain).score(entropy[r]))
            .collect())
    }
}

delinea_plugin_api::export_query_plugin!(MostUncertain);
