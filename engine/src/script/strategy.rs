//! Policy files as strategies: a query policy's `fn select(pool, budget)` becomes a
//! [`QueryStrategy`], an adaptation policy's `fn plan(state)` an [`AdaptStrategy`]. What a
//! script returns is checked before anything downstream sees it: indices in range, unique,
//! within the budget; plans against the `adapt-plan` schema, the bad field named.
//!
//! A query policy may declare the scores it reads with `fn needs()` returning names among
//! `entropy`, `bald`, `margin`, `stdr`, `features` (only those are computed for its pool).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Array, Dynamic, INT};

use super::api::model::{from_map, needs};
use super::api::pool::Pool;
use super::{Script, ScriptError, ScriptHost};
use crate::strategy::adapt::{self, AdaptPlan, AdaptState, AdaptStrategy};
use crate::strategy::query::{self, selection, Budget, CandidatePool, Needs, QueryStrategy, Reason, Selection};

/// A query policy file.
#[derive(Debug)]
pub struct ScriptQuery {
    host: Arc<ScriptHost>,
    script: Script,
    name: String,
    needs: Needs,
}

impl ScriptQuery {
    /// Compiles the policy at `path` (named `name`, e.g. `script:policies/mine.rhai`) and reads
    /// what it needs; refused when it has no `fn select(pool, budget)`.
    pub fn load(host: Arc<ScriptHost>, path: &Path, name: &str) -> Result<ScriptQuery, ScriptError> {
        let script = host.compile(path)?;
        if !script.defines("select", 2) {
            return Err(ScriptError::file(
                path,
                "a query policy defines fn select(pool, budget), returning row indices (or #{index, reason} maps)",
            ));
        }
        let needs = match script.defines("needs", 0) {
            false => Needs::default(),
            true => {
                let value = host.call(&script, "needs", (), 0)?;
                let names: Vec<String> =
                    from_map(&value, "fn needs()").map_err(|e| ScriptError::file(path, &e.to_string()))?;
                needs(&names, "fn needs()").map_err(|e| ScriptError::file(path, &e.to_string()))?
            }
        };
        Ok(ScriptQuery {
            host,
            script,
            name: name.into(),
            needs,
        })
    }

    fn broken(&self, rule: String) -> query::Error {
        query::Error::Policy {
            strategy: self.name.clone(),
            reason: rule,
        }
    }

    /// `(row, score, reason)` of each element of what `select` returned, checked.
    fn picks(
        &self,
        value: Dynamic,
        rows: usize,
        budget: usize,
    ) -> Result<Vec<(usize, Option<f32>, Reason)>, query::Error> {
        let array = value.clone().try_cast::<Array>().ok_or_else(|| {
            self.broken(format!(
                "select must return an array of row indices (or #{{index, reason}} maps), not {}",
                value.type_name()
            ))
        })?;
        if array.len() > budget {
            return Err(self.broken(format!("select returned {} rows for a budget of {budget}", array.len())));
        }
        let mut taken = vec![false; rows];
        let mut out = Vec::with_capacity(array.len());
        for (at, item) in array.into_iter().enumerate() {
            let (index, score, reason) = self.pick(item, at)?;
            let i = usize::try_from(index).ok().filter(|i| *i < rows).ok_or_else(|| {
                self.broken(format!(
                    "select returned row {index} at position {at}, outside the pool's rows 0..{rows}"
                ))
            })?;
            if taken[i] {
                return Err(self.broken(format!("select returned row {i} twice (again at position {at})")));
            }
            taken[i] = true;
            out.push((i, score, reason));
        }
        Ok(out)
    }

    /// One returned element: an index, or a map with `index` and optional `reason`, `score`.
    fn pick(&self, item: Dynamic, at: usize) -> Result<(INT, Option<f32>, Reason), query::Error> {
        if let Ok(i) = item.as_int() {
            return Ok((i, None, Reason::Policy));
        }
        let Some(map) = item.clone().try_cast::<rhai::Map>() else {
            return Err(self.broken(format!(
                "select's element {at} is {}, not a row index or #{{index, reason}}",
                item.type_name()
            )));
        };
        let index = map
            .get("index")
            .and_then(|v| v.as_int().ok())
            .ok_or_else(|| self.broken(format!("select's element {at} has no integer `index`")))?;
        let reason = match map.get("reason") {
            None => Reason::Policy,
            Some(r) => {
                let text = r.clone().into_string().unwrap_or_default();
                serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
                    self.broken(format!(
                        "select's element {at} has reason {text:?}; reasons are far, near, uncertain, diverse, random, policy"
                    ))
                })?
            }
        };
        let score = match map.get("score") {
            None => None,
            Some(s) => {
                let v = super::api::vector::number(s, "score").map_err(|e| self.broken(e.to_string()))?;
                if !v.is_finite() {
                    return Err(self.broken(format!("select's element {at} has a non-finite score {v}")));
                }
                Some(v as f32)
            }
        };
        Ok((index, score, reason))
    }
}

impl QueryStrategy for ScriptQuery {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn needs(&self) -> Needs {
        self.needs
    }

    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, query::Error> {
        let n = budget.resolve(pool.rows.len());
        let value = self
            .host
            .call(&self.script, "select", (Pool::new(pool.clone()), n as INT), seed)
            .map_err(query::Error::Script)?;
        let picks = self.picks(value, pool.rows.len(), n)?;
        Ok(selection(&self.name, pool, &picks))
    }
}

/// An adaptation policy file.
#[derive(Debug)]
pub struct ScriptAdapt {
    host: Arc<ScriptHost>,
    script: Script,
    name: String,
}

impl ScriptAdapt {
    /// Compiles the policy at `path`; refused when it has no `fn plan(state)`.
    pub fn load(host: Arc<ScriptHost>, path: &Path, name: &str) -> Result<ScriptAdapt, ScriptError> {
        let script = host.compile(path)?;
        if !script.defines("plan", 1) {
            return Err(ScriptError::file(
                path,
                "an adaptation policy defines fn plan(state), returning a plan map (data-schema/adapt-plan.schema.json)",
            ));
        }
        Ok(ScriptAdapt {
            host,
            script,
            name: name.into(),
        })
    }

    fn path(&self) -> PathBuf {
        self.script.path.clone()
    }
}

impl AdaptStrategy for ScriptAdapt {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Calls `plan(state)` with the state as a map (`target`, `selection`, `schedule`), fills
    /// `strategy`, `target` and `schedule` where the plan leaves them out, and reads the plan
    /// against the schema.
    fn plan(&self, state: &AdaptState) -> Result<AdaptPlan, adapt::Error> {
        let bad = |reason: String| adapt::Error::Plan {
            strategy: self.name.clone(),
            reason,
        };
        let json = serde_json::json!({
            "target": state.target,
            "selection": state.selection,
            "schedule": state.schedule,
        });
        let value = rhai::serde::to_dynamic(&json).map_err(|e| bad(e.to_string()))?;
        let returned = self
            .host
            .call(&self.script, "plan", (value,), 0)
            .map_err(adapt::Error::Script)?;
        plan_from_map(&returned, &self.name, state)
            .map_err(|reason| bad(format!("{}: {reason}", self.path().display())))
    }
}

/// A plan map (what a policy's `plan` returns, or `adapt_model`'s `plan` setting) as a plan
/// ([`adapt::plan_from_json`]).
pub fn plan_from_map(value: &Dynamic, name: &str, state: &AdaptState) -> Result<AdaptPlan, String> {
    let plan: serde_json::Value = rhai::serde::from_dynamic(value)
        .map_err(|e| format!("a plan must be a map, not {}: {e}", value.type_name()))?;
    adapt::plan_from_json(plan, name, state)
}
