//! Query strategies: which target slices (or volumes) to label (METHOD.md step 6 and
//! "Baselines").
//!
//! A [`CandidatePool`] holds one row per slice or volume with the scores a strategy may need;
//! a [`QueryStrategy`] turns it and a budget into a ranked [`Selection`]. Every builtin breaks
//! ties by row index, never selects a row twice, takes the whole pool when the budget is
//! larger, and is deterministic per seed. Strategies are found by name in [`by_name`].
//!
//! ```
//! use delinea::strategy::query::{by_name, Budget, Candidate, CandidatePool, Scores, Unit};
//! let row = |case: &str, entropy| Candidate {
//!     case: case.into(), centre: "C2".into(), slice: Some(0),
//!     scores: Scores { entropy: Some(entropy), ..Scores::default() },
//!     descriptor: vec![], features: vec![],
//! };
//! let pool = CandidatePool { unit: Unit::Slice, rows: vec![row("a", 0.1), row("b", 0.9), row("c", 0.5)] };
//! let picked = by_name("entropy").unwrap().select(&pool, Budget::Count(2), 0).unwrap();
//! let cases: Vec<&str> = picked.items.iter().map(|s| s.case.as_str()).collect();
//! assert_eq!(cases, ["b", "c"]);
//! ```

mod build;
mod builtin;
mod kmeans;
mod pool;
mod reference;
#[cfg(test)]
mod tests;

pub use build::{build_pool, score_volume, PoolOptions};
pub use builtin::{by_name, Coreset, Random, RandomCase, ScoreRank, Stdr, Ugtst, BUILTIN_NAMES};
pub use kmeans::{dist2, kmeans, nearest, Clusters};
pub use pool::{stdr_distance, Aggregate, Candidate, CandidatePool, Scores, Unit};
pub use reference::References;

use serde::{Deserialize, Serialize};

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row lacks a score the strategy ranks by.
    #[error("strategy {strategy}: row {row} (case {case}) has no {score} score")]
    MissingScore {
        /// The strategy.
        strategy: String,
        /// The score.
        score: &'static str,
        /// The row index.
        row: usize,
        /// The row's case.
        case: String,
    },
    /// A score is NaN or infinite.
    #[error("strategy {strategy}: row {row} (case {case}) has a non-finite {score} score ({value})")]
    NonFinite {
        /// The strategy.
        strategy: String,
        /// The score.
        score: &'static str,
        /// The row index.
        row: usize,
        /// The row's case.
        case: String,
        /// The value.
        value: f32,
    },
    /// A budget that is not a count, a fraction in (0, 1] or a percentage.
    #[error("bad budget {0:?}: expected a count (e.g. 12), a fraction (0.2) or a percentage (20%)")]
    BadBudget(String),
    /// A references file that cannot be used.
    #[error("{path}: not a usable references file: {reason}")]
    References {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The references' points and the pool's descriptors come from different grids.
    #[error(
        "the reference points have {references} values ({}) but the pool's descriptors have {descriptors} ({}): \
         compute both with the same descriptor grid (the references file records its own)",
        grid_words(*.references), grid_words(*.descriptors)
    )]
    GridMismatch {
        /// Values per reference point.
        references: usize,
        /// Values per descriptor.
        descriptors: usize,
    },
    /// A script policy failed (syntax, runtime, limits), `path:line:col: message`.
    #[error(transparent)]
    Script(crate::script::ScriptError),
    /// A policy (script or plugin) returned something that breaks a rule.
    #[error("strategy {strategy}: {reason}")]
    Policy {
        /// The strategy.
        strategy: String,
        /// The rule broken.
        reason: String,
    },
    /// A plugin that cannot be used (refused, not found, bad parameters).
    #[error(transparent)]
    Plugin(crate::plugin::PluginError),
    /// No strategy of that name.
    #[error("unknown query strategy {name:?}; builtins: {}", BUILTIN_NAMES.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
}

/// `a 16 × 16 grid` for 256 values, `not a square grid` otherwise.
fn grid_words(values: usize) -> String {
    let side = (values as f64).sqrt().round() as usize;
    if side * side == values {
        format!("a {side} × {side} grid")
    } else {
        "not a square grid".into()
    }
}

/// How much to label: a count of rows or a fraction of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// This many rows.
    Count(usize),
    /// This fraction of the pool, rounded to the nearest row (at least one).
    Fraction(f64),
}

impl Budget {
    /// Parses `"12"`, `"0.2"` or `"20%"`.
    pub fn parse(text: &str) -> Result<Budget, Error> {
        let t = text.trim();
        let bad = || Error::BadBudget(text.to_string());
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if v > 0.0 && v <= 100.0 {
                Ok(Budget::Fraction(v / 100.0))
            } else {
                Err(bad())
            };
        }
        if let Ok(n) = t.parse::<usize>() {
            return Ok(Budget::Count(n));
        }
        match t.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(Budget::Fraction(f)),
            _ => Err(bad()),
        }
    }

    /// Rows to select from a pool of `n` (never more than `n`).
    pub fn resolve(self, n: usize) -> usize {
        match self {
            Budget::Count(c) => c.min(n),
            Budget::Fraction(f) if n > 0 => ((f * n as f64).round() as usize).clamp(1, n),
            Budget::Fraction(_) => 0,
        }
    }
}

/// The scores and vectors a strategy reads, so the engine computes only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// MC-dropout entropy.
    pub entropy: bool,
    /// BALD.
    pub bald: bool,
    /// Margin.
    pub margin: bool,
    /// STDR descriptors and reference distances.
    pub stdr: bool,
    /// Feature vectors for clustering.
    pub features: bool,
}

impl Needs {
    /// Everything that `self` or `other` needs (one pool serves both strategies).
    pub fn or(self, other: Needs) -> Needs {
        Needs {
            entropy: self.entropy || other.entropy,
            bald: self.bald || other.bald,
            margin: self.margin || other.margin,
            stdr: self.stdr || other.stdr,
            features: self.features || other.features,
        }
    }
}

/// How a query is asked, beyond the strategy: how much, of what, and the seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryOptions {
    /// How many rows to select.
    pub budget: Budget,
    /// Rank slices or whole volumes.
    pub unit: Unit,
    /// How a volume's score comes from its slices (volume unit only).
    pub aggregate: Aggregate,
    /// Seed of random choices.
    pub seed: u64,
}

/// Ranks a slice `pool` with `strategy`: fills the STDR distances from `references` (when
/// given), groups the rows into volumes when `options.unit` asks, then selects the budget.
pub fn rank(
    pool: CandidatePool,
    references: Option<&[Vec<f32>]>,
    strategy: &dyn QueryStrategy,
    options: &QueryOptions,
) -> Result<Selection, Error> {
    let mut pool = match references {
        Some(r) => pool.with_reference(r)?,
        None => pool,
    };
    if options.unit == Unit::Volume {
        pool = pool.volumes(options.aggregate);
    }
    strategy.select(&pool, options.budget, options.seed)
}

/// Why a row was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Far from every source reference point: domain-specific.
    Far,
    /// Near a source reference point: domain-invariant.
    Near,
    /// Among the most uncertain.
    Uncertain,
    /// Represents a cluster or covers the pool.
    Diverse,
    /// Drawn at random.
    Random,
    /// Chosen by a script or plugin policy that gave no other reason.
    Policy,
}

/// One selected row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Selected {
    /// 1-based rank in the selection.
    pub rank: usize,
    /// Row index in the pool.
    pub index: usize,
    /// Case id.
    pub case: String,
    /// Centre id.
    pub centre: String,
    /// Slice index (`None` for a volume).
    pub slice: Option<usize>,
    /// The score the strategy ranked by, if any.
    pub score: Option<f32>,
    /// Why it was picked.
    pub reason: Reason,
}

/// A ranked selection (`data-schema/selection.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Selection {
    /// The strategy's name.
    pub strategy: String,
    /// Slices or volumes.
    pub unit: Unit,
    /// Rows in the pool.
    pub pool_size: usize,
    /// The selected rows, best first.
    pub items: Vec<Selected>,
}

/// A query strategy: what it needs, and how it picks.
pub trait QueryStrategy: Send + Sync {
    /// The name it is registered under.
    fn name(&self) -> String;
    /// The scores it reads.
    fn needs(&self) -> Needs;
    /// The ranked selection of `budget` rows of `pool`; `seed` drives any random choice.
    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, Error>;
}

/// Builds a [`Selection`] from `(row, score, reason)` picks in rank order.
pub fn selection(strategy: &str, pool: &CandidatePool, picks: &[(usize, Option<f32>, Reason)]) -> Selection {
    let items = picks
        .iter()
        .enumerate()
        .map(|(r, (i, score, reason))| {
            let row = &pool.rows[*i];
            Selected {
                rank: r + 1,
                index: *i,
                case: row.case.clone(),
                centre: row.centre.clone(),
                slice: row.slice,
                score: *score,
                reason: *reason,
            }
        })
        .collect();
    Selection {
        strategy: strategy.to_string(),
        unit: pool.unit,
        pool_size: pool.rows.len(),
        items,
    }
}
