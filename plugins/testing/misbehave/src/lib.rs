//! Test fixture for the host's checks: `{"mode": …}` picks the rule this query plugin breaks —
//! `panic`, `error`, `out_of_range`, `duplicate`, `too_many`, `nan` — or `ok` (the first rows).
//! `services` calls each of the host's services and reports what they answered, as its error.

use delinea_plugin_api::{serde_json, Host, Pick, Pool, QueryPlugin, Reason};

#[derive(Default)]
pub struct Misbehave;

impl QueryPlugin for Misbehave {
    const NAME: &'static str = "misbehave";
    const VERSION: &'static str = "0.1.0";

    fn select(
        &self,
        pool: &Pool,
        budget: usize,
        _seed: u64,
        params: &serde_json::Value,
        host: &Host,
    ) -> Result<Vec<Pick>, String> {
        let pick = |r: usize| Pick::new(r, Reason::Policy);
        match params["mode"].as_str().unwrap_or("ok") {
            "panic" => panic!("misbehave was told to panic"),
            "error" => Err("misbehave was told to fail".into()),
            "out_of_range" => Ok(vec![pick(0), pick(pool.len() + 5)]),
            "duplicate" => Ok(vec![pick(1), pick(1)]),
            "too_many" => Ok((0..budget + 1).map(pick).collect()),
            "nan" => Ok(vec![pick(0).score(f64::NAN)]),
            "services" => {
                let v = host.read_volume(params["volume"].as_str().unwrap_or(""), false)?;
                let mask = [1u8, 1, 0, 0, 1, 0, 0, 0];
                let other = [1u8, 0, 0, 0, 1, 0, 0, 0];
                let m = host.metrics(&mask, &other, [2, 2, 2], [1.0; 3])?;
                let size = params["size"].as_u64().unwrap_or(32) as usize;
                let probs = host.predict(&vec![0.0; 2 * size * size], size, 0)?;
                let mc = host.predict(&vec![0.0; size * size], size, 3)?;
                Err(format!(
                    "services: dims {}, voxels {}, dice {}, probabilities {}, mc {}",
                    v.geometry["dims"],
                    v.data.len(),
                    m["dsc"],
                    probs.len(),
                    mc.len()
                ))
            }
            _ => Ok((0..budget.min(pool.len())).map(pick).collect()),
        }
    }
}

delinea_plugin_api::export_query_plugin!(Misbehave);
