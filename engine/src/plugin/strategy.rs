//! Plugins as strategies: the pool handed over as host-owned columns, the answer copied out of
//! the plugin's buffers and given back with the plugin's own release, and every answer checked
//! before anything downstream sees it.

use std::collections::HashMap;
use std::sync::Arc;

use delinea_plugin_api::abi::{CallContext, PlanAnswer, QueryAnswer, StrRef, REASONS, STATUS_OK, STATUS_PANIC};
use delinea_plugin_api::pool::PoolBuffers;

use super::load::Loaded;
use super::services::Table;
use crate::strategy::adapt::{self, AdaptPlan, AdaptState, AdaptStrategy};
use crate::strategy::query::{self, selection, Budget, CandidatePool, Needs, QueryStrategy, Reason, Selection, Unit};

/// The call context of a plugin call on this thread.
fn call_context(services: &Table) -> CallContext {
    CallContext {
        size: std::mem::size_of::<CallContext>() as u32,
        threads: rayon::current_num_threads() as u32,
        host_parallel: u32::from(rayon::current_thread_index().is_some()),
        services: &services.services,
    }
}

/// A query plugin.
#[derive(Debug)]
pub struct PluginQuery {
    loaded: &'static Loaded,
    name: String,
    params: String,
    services: Arc<Table>,
}

impl PluginQuery {
    /// The loaded query plugin `loaded`, called `name`, with `params`.
    pub fn new(
        loaded: &'static Loaded,
        name: &str,
        params: &serde_json::Value,
        services: Arc<Table>,
    ) -> Result<PluginQuery, query::Error> {
        if loaded.info.kind != "query" {
            return Err(query::Error::Policy {
                strategy: name.into(),
                reason: format!(
                    "{} is an {} plugin, not a query plugin",
                    loaded.info.path.display(),
                    loaded.info.kind
                ),
            });
        }
        Ok(PluginQuery {
            loaded,
            name: name.into(),
            params: params.to_string(),
            services,
        })
    }

    fn broken(&self, reason: String) -> query::Error {
        query::Error::Policy {
            strategy: format!(
                "{} (plugin {} {})",
                self.name, self.loaded.info.name, self.loaded.info.version
            ),
            reason,
        }
    }

    /// The answer's picks, checked: rows in range, unique, at most `budget`, finite scores.
    fn picks(
        &self,
        out: &QueryAnswer,
        status: i32,
        rows: usize,
        budget: usize,
    ) -> Result<Vec<(usize, Option<f32>, Reason)>, query::Error> {
        if status != STATUS_OK {
            // SAFETY: the plugin's error string is valid until its answer is released.
            let message = unsafe { out.error.to_str_lossy() }.into_owned();
            let what = if status == STATUS_PANIC { "panicked" } else { "failed" };
            return Err(self.broken(format!("{what}: {message}")));
        }
        if out.len > budget {
            return Err(self.broken(format!("returned {} rows for a budget of {budget}", out.len)));
        }
        if out.len > 0 && out.rows.is_null() {
            return Err(self.broken("returned rows without a buffer".into()));
        }
        // SAFETY: the plugin's buffers hold `len` entries until its answer is released
        // (scores and reasons may be null).
        let indices = unsafe { slice(out.rows, out.len) };
        let scores = unsafe { slice(out.scores, out.len) };
        let reasons = unsafe { slice(out.reasons, out.len) };
        let mut taken = vec![false; rows];
        let mut picks = Vec::with_capacity(out.len);
        for (at, &r) in indices.iter().enumerate() {
            let i = usize::try_from(r).ok().filter(|i| *i < rows).ok_or_else(|| {
                self.broken(format!(
                    "returned row {r} at position {at}, outside the pool's rows 0..{rows}"
                ))
            })?;
            if taken[i] {
                return Err(self.broken(format!("returned row {i} twice (again at position {at})")));
            }
            taken[i] = true;
            let score = match scores.get(at) {
                Some(s) if !s.is_finite() => {
                    return Err(self.broken(format!("returned a non-finite score {s} for row {i}")));
                }
                Some(s) => Some(*s as f32),
                None => None,
            };
            let reason = match reasons.get(at).map(|c| REASONS.get(*c as usize)) {
                None => Reason::Policy,
                Some(Some(name)) => {
                    serde_json::from_value(serde_json::Value::String(name.to_string())).unwrap_or(Reason::Policy)
                }
                Some(None) => return Err(self.broken(format!("returned an unknown reason code for row {i}"))),
            };
            picks.push((i, score, reason));
        }
        Ok(picks)
    }
}

/// `len` values at `ptr`, or none when null.
///
/// # Safety
/// A non-null `ptr` must point to `len` readable values.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// The pool as the ABI's columns (a column only when every row has it).
fn buffers(pool: &CandidatePool) -> PoolBuffers {
    let mut ids: Vec<String> = Vec::new();
    let mut number: HashMap<&str, u32> = HashMap::new();
    let case = (pool.rows.iter())
        .map(|r| {
            *number.entry(r.case.as_str()).or_insert_with(|| {
                ids.push(r.case.clone());
                (ids.len() - 1) as u32
            })
        })
        .collect();
    let columns = (crate::script::api::pool::COLUMNS.iter())
        .filter(|(_, get)| !pool.rows.is_empty() && pool.rows.iter().all(|r| get(&r.scores).is_some()))
        .map(|(name, get)| {
            (
                name.to_string(),
                pool.rows
                    .iter()
                    .map(|r| get(&r.scores).map_or(f64::NAN, f64::from))
                    .collect(),
            )
        })
        .collect();
    let len = pool.rows.first().map_or(0, |r| r.descriptor.len());
    let uniform = len > 0 && pool.rows.iter().all(|r| r.descriptor.len() == len);
    let centres: std::collections::BTreeSet<&str> = pool.rows.iter().map(|r| r.centre.as_str()).collect();
    PoolBuffers {
        rows: pool.rows.len(),
        unit: u32::from(pool.unit == Unit::Volume),
        columns,
        case,
        slice: pool.rows.iter().map(|r| r.slice.map_or(-1, |k| k as i64)).collect(),
        case_ids: ids,
        descriptors: if uniform {
            pool.rows.iter().flat_map(|r| r.descriptor.iter().copied()).collect()
        } else {
            vec![]
        },
        descriptor_len: if uniform { len } else { 0 },
        metadata: serde_json::json!({"unit": pool.unit, "centres": centres}).to_string(),
    }
}

impl QueryStrategy for PluginQuery {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn needs(&self) -> Needs {
        let has = |n: &str| self.loaded.info.needs.contains(&n);
        Needs {
            entropy: has("entropy"),
            bald: has("bald"),
            margin: has("margin"),
            stdr: has("stdr"),
            features: has("features"),
        }
    }

    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, query::Error> {
        let n = budget.resolve(pool.rows.len());
        let owned = buffers(pool);
        let (view, _columns, _ids) = owned.view();
        let call = call_context(&self.services);
        let mut out = delinea_plugin_api::ffi::empty_query_answer();
        let query = self
            .loaded
            .table
            .query
            .ok_or_else(|| self.broken("no query function".into()))?;
        let params = self.params.as_str();
        // SAFETY: every pointer we pass points into `owned`, `call`, `params` and the services
        // table, alive for the call; `out` is ours to fill. The plugin's function cannot unwind
        // (the SDK catches panics), and its descriptor said it was built to.
        let status = unsafe { query(&call, &view, n as u64, seed, StrRef::new(params), &mut out) };
        let picks = self.picks(&out, status, pool.rows.len(), n);
        if let Some(release) = out.release {
            // SAFETY: the plugin's own release of its own answer, called once, after we
            // copied what we need.
            unsafe { release(&mut out) };
        }
        Ok(selection(&self.name, pool, &picks?))
    }
}

/// An adaptation plugin.
#[derive(Debug)]
pub struct PluginAdapt {
    loaded: &'static Loaded,
    name: String,
    params: String,
    services: Arc<Table>,
}

impl PluginAdapt {
    /// The loaded adaptation plugin `loaded`, called `name`, with `params`.
    pub fn new(
        loaded: &'static Loaded,
        name: &str,
        params: &serde_json::Value,
        services: Arc<Table>,
    ) -> Result<PluginAdapt, adapt::Error> {
        if loaded.info.kind != "adapt" {
            return Err(adapt::Error::Plan {
                strategy: name.into(),
                reason: format!(
                    "{} is a {} plugin, not an adaptation plugin",
                    loaded.info.path.display(),
                    loaded.info.kind
                ),
            });
        }
        Ok(PluginAdapt {
            loaded,
            name: name.into(),
            params: params.to_string(),
            services,
        })
    }
}

impl AdaptStrategy for PluginAdapt {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn plan(&self, state: &AdaptState) -> Result<AdaptPlan, adapt::Error> {
        let label = format!(
            "{} (plugin {} {})",
            self.name, self.loaded.info.name, self.loaded.info.version
        );
        let bad = |reason: String| adapt::Error::Plan {
            strategy: label.clone(),
            reason,
        };
        let json =
            serde_json::json!({"target": state.target, "selection": state.selection, "schedule": state.schedule})
                .to_string();
        let call = call_context(&self.services);
        let mut out: PlanAnswer = delinea_plugin_api::ffi::empty_plan_answer();
        let plan = self.loaded.table.plan.ok_or_else(|| bad("no plan function".into()))?;
        // SAFETY: as `PluginQuery::select`: our strings and context live for the call.
        let status = unsafe { plan(&call, StrRef::new(&json), StrRef::new(&self.params), &mut out) };
        // SAFETY: the plugin's strings are valid until its answer is released.
        let (text, error) = unsafe {
            (
                out.json.to_str_lossy().into_owned(),
                out.error.to_str_lossy().into_owned(),
            )
        };
        if let Some(release) = out.release {
            // SAFETY: the plugin's own release of its own answer, called once.
            unsafe { release(&mut out) };
        }
        if status != STATUS_OK {
            let what = if status == STATUS_PANIC { "panicked" } else { "failed" };
            return Err(bad(format!("{what}: {error}")));
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("returned a plan that is not JSON: {e}")))?;
        adapt::plan_from_json(value, &self.name, state).map_err(bad)
    }
}
