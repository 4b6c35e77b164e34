//! `Pool`: the candidates a query policy ranks, as columns. A policy reads a score column as a
//! [`Vector`] (`pool.col("entropy")`), combines columns natively and returns row indices; it
//! never receives one map per row (a closure sort over 10 000 maps takes ~150 ms, over 100 000
//! seconds).

use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, NativeCallContext, INT};

use super::vector::{count, Vector};
use crate::strategy::query::{kmeans as cluster, Budget, CandidatePool, Coreset, QueryStrategy, Scores, Unit};

/// How a score column is read from a row's scores.
type Column = fn(&Scores) -> Option<f32>;

/// The score columns a pool may hold, and how to read each.
pub const COLUMNS: [(&str, Column); 5] = [
    ("entropy", |s| s.entropy),
    ("bald", |s| s.bald),
    ("margin", |s| s.margin),
    ("tumour_area", |s| s.tumour_area),
    ("stdr_distance", |s| s.stdr_distance),
];

/// A candidate pool with each row's case number.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The rows.
    pub rows: Arc<CandidatePool>,
    /// Each row's case, numbered in order of first appearance.
    cases: Arc<Vec<usize>>,
    /// The case ids, by number.
    ids: Arc<Vec<String>>,
}

impl Pool {
    /// The script's view of `pool`.
    pub fn new(pool: CandidatePool) -> Pool {
        let mut ids: Vec<String> = Vec::new();
        let mut number: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let cases = (pool.rows.iter())
            .map(|r| {
                *number.entry(r.case.as_str()).or_insert_with(|| {
                    ids.push(r.case.clone());
                    ids.len() - 1
                })
            })
            .collect();
        Pool {
            rows: Arc::new(pool),
            cases: Arc::new(cases),
            ids: Arc::new(ids),
        }
    }

    fn row(&self, i: INT) -> Result<&crate::strategy::query::Candidate, Box<EvalAltResult>> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.rows.rows.get(i))
            .ok_or_else(|| format!("pool row {i} out of range 0..{}", self.rows.rows.len()).into())
    }

    fn per_case(&self, v: &Vector, fold: impl Fn(&[f64]) -> f64) -> Result<Vector, Box<EvalAltResult>> {
        if v.0.len() != self.cases.len() {
            return Err(format!(
                "a vector of {} values for a pool of {} rows",
                v.0.len(),
                self.cases.len()
            )
            .into());
        }
        let mut groups: Vec<Vec<f64>> = vec![Vec::new(); self.ids.len()];
        for (row, case) in self.cases.iter().enumerate() {
            groups[*case].push(v.0[row]);
        }
        let value: Vec<f64> = groups.iter().map(|g| fold(g)).collect();
        Ok(Vector::new(self.cases.iter().map(|c| value[*c]).collect()))
    }

    /// Each row's clustering vector (features, else descriptor), or an error naming the row.
    fn vectors(&self) -> Result<Vec<Vec<f32>>, Box<EvalAltResult>> {
        (self.rows.rows.iter().enumerate())
            .map(|(i, r)| {
                let v = if r.features.is_empty() {
                    &r.descriptor
                } else {
                    &r.features
                };
                if v.is_empty() {
                    Err(
                        format!("pool row {i} has no descriptor: declare \"features\" (or \"stdr\") in fn needs()")
                            .into(),
                    )
                } else {
                    Ok(v.clone())
                }
            })
            .collect()
    }
}

#[export_module]
pub mod pool_api {
    use super::*;

    /// The rows a query policy ranks: one per slice (or per volume), with score columns.
    pub type Pool = super::Pool;

    /// Rows in the pool: `pool.len()`.
    #[rhai_fn(pure, name = "len")]
    pub fn len(pool: &mut Pool) -> INT {
        pool.rows.rows.len() as INT
    }

    /// `"slice"` or `"volume"`: what a row stands for.
    #[rhai_fn(pure)]
    pub fn unit(pool: &mut Pool) -> String {
        match pool.rows.unit {
            Unit::Slice => "slice".into(),
            Unit::Volume => "volume".into(),
        }
    }

    /// The case id of row `i`: `pool.case(0)`.
    #[rhai_fn(pure, return_raw)]
    pub fn case(pool: &mut Pool, i: INT) -> Result<String, Box<EvalAltResult>> {
        Ok(pool.row(i)?.case.clone())
    }

    /// The centre id of row `i`: `pool.centre(0)`.
    #[rhai_fn(pure, return_raw)]
    pub fn centre(pool: &mut Pool, i: INT) -> Result<String, Box<EvalAltResult>> {
        Ok(pool.row(i)?.centre.clone())
    }

    /// The axial slice index of row `i` (`()` for a volume row): `pool.slice(0)`.
    #[rhai_fn(pure, return_raw)]
    pub fn slice(pool: &mut Pool, i: INT) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(pool.row(i)?.slice.map_or(Dynamic::UNIT, |k| Dynamic::from(k as INT)))
    }

    /// The case ids, in order of first appearance: `pool.cases()`.
    #[rhai_fn(pure)]
    pub fn cases(pool: &mut Pool) -> Array {
        pool.ids.iter().map(|c| Dynamic::from(c.clone())).collect()
    }

    /// Each row's case number (its position in `pool.cases()`), as a vector:
    /// `pool.case_index()`.
    #[rhai_fn(pure)]
    pub fn case_index(pool: &mut Pool) -> Vector {
        Vector::new(pool.cases.iter().map(|c| *c as f64).collect())
    }

    /// Whether the pool holds the score column `name` (entropy, bald, margin, tumour_area,
    /// stdr_distance): `pool.has("entropy")`.
    #[rhai_fn(pure)]
    pub fn has(pool: &mut Pool, name: &str) -> bool {
        let get = COLUMNS.iter().find(|(n, _)| *n == name).map(|(_, g)| *g);
        get.is_some_and(|g| !pool.rows.rows.is_empty() && pool.rows.rows.iter().all(|r| g(&r.scores).is_some()))
    }

    /// The score column `name` (entropy, bald, margin, tumour_area, stdr_distance) as a
    /// vector: `pool.col("entropy")`. A column the pool does not hold is an error saying how
    /// to ask for it.
    #[rhai_fn(pure, return_raw)]
    pub fn col(pool: &mut Pool, name: &str) -> Result<Vector, Box<EvalAltResult>> {
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        let get = (COLUMNS.iter().find(|(n, _)| *n == name).map(|(_, g)| *g))
            .ok_or_else(|| format!("no pool column {name:?}; the columns are {}", names.join(", ")))?;
        let mut out = Vec::with_capacity(pool.rows.rows.len());
        for (i, r) in pool.rows.rows.iter().enumerate() {
            match get(&r.scores) {
                Some(v) => out.push(f64::from(v)),
                None => {
                    let need = if name == "stdr_distance" { "stdr" } else { name };
                    return Err(format!(
                        "pool row {i} has no {name} score: declare what the policy reads with \
                         fn needs() {{ [\"{need}\"] }}"
                    )
                    .into());
                }
            }
        }
        Ok(Vector::new(out))
    }

    /// Each row's case maximum of `v` (one value per row): `pool.case_max(entropy)`.
    #[rhai_fn(pure, return_raw)]
    pub fn case_max(pool: &mut Pool, v: Vector) -> Result<Vector, Box<EvalAltResult>> {
        pool.per_case(&v, |g| g.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    }

    /// Each row's case mean of `v` (one value per row): `pool.case_mean(entropy)`.
    #[rhai_fn(pure, return_raw)]
    pub fn case_mean(pool: &mut Pool, v: Vector) -> Result<Vector, Box<EvalAltResult>> {
        pool.per_case(&v, |g| g.iter().sum::<f64>() / g.len() as f64)
    }

    /// Walks `order` (row indices, best first) and keeps each row whose case has fewer than
    /// `per_case` rows kept, until `budget` rows: `pool.per_case(order, 3, budget)`.
    #[rhai_fn(pure, return_raw)]
    pub fn per_case(pool: &mut Pool, order: Array, per_case: INT, budget: INT) -> Result<Array, Box<EvalAltResult>> {
        let (limit, budget) = (
            count(per_case, "per_case: per_case")?,
            count(budget, "per_case: budget")?,
        );
        let mut taken = vec![0usize; pool.ids.len()];
        let mut out = Array::new();
        for r in &order {
            if out.len() >= budget {
                break;
            }
            let i = r
                .as_int()
                .map_err(|t| format!("per_case: row indices must be integers, found {t}"))?;
            let row = usize::try_from(i)
                .ok()
                .filter(|i| *i < pool.cases.len())
                .ok_or_else(|| format!("per_case: row {i} out of range 0..{}", pool.cases.len()))?;
            let case = pool.cases[row];
            if taken[case] < limit {
                taken[case] += 1;
                out.push(Dynamic::from(i));
            }
        }
        Ok(out)
    }

    /// The STDR descriptor of row `i` as a vector (empty when not computed):
    /// `pool.descriptor(0)`.
    #[rhai_fn(pure, return_raw)]
    pub fn descriptor(pool: &mut Pool, i: INT) -> Result<Vector, Box<EvalAltResult>> {
        Ok(Vector::new(
            pool.row(i)?.descriptor.iter().map(|v| f64::from(*v)).collect(),
        ))
    }

    /// K-means (k-means++ seeded from the call's seed, `iterations` Lloyd steps) of the rows'
    /// feature vectors (their descriptors when they have no features): each row's cluster
    /// number, 0..k: `pool.kmeans(20, 20)`.
    #[rhai_fn(pure, return_raw)]
    pub fn kmeans(
        ctx: NativeCallContext,
        pool: &mut Pool,
        k: INT,
        iterations: INT,
    ) -> Result<Array, Box<EvalAltResult>> {
        let (k, iterations) = (count(k, "kmeans: k")?, count(iterations, "kmeans: iterations")?);
        let points = pool.vectors()?;
        let seed = crate::script::host::session(&ctx)?.with_rng(|r| r.next_u64());
        let clusters = cluster(&points, k.max(1), iterations, seed);
        Ok(clusters.assignment.iter().map(|c| Dynamic::from(*c as INT)).collect())
    }

    /// K-center greedy over the rows' feature vectors (the coreset strategy): `n` row indices,
    /// each the row farthest from those taken before: `pool.kcenter(20)`.
    #[rhai_fn(pure, return_raw)]
    pub fn kcenter(pool: &mut Pool, n: INT) -> Result<Array, Box<EvalAltResult>> {
        let n = count(n, "kcenter: n")?;
        pool.vectors()?;
        let s = Coreset
            .select(&pool.rows, Budget::Count(n), 0)
            .map_err(|e| format!("kcenter: {e}"))?;
        Ok(s.items.iter().map(|i| Dynamic::from(i.index as INT)).collect())
    }
}
