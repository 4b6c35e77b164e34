//! Snapshot testing for plugin authors: a fixed, seeded pool (and adaptation state), the
//! plugin run through the same C boundary delinea uses, and the result as rows a reader can
//! check, with scores rounded (4 decimals) so a snapshot agrees across thread counts and build
//! profiles.
//!
//! ```
//! use delinea_plugin_api::testing::TestPool;
//! let pool = TestPool::seeded(7, 4, 5); // 4 cases × 5 slices
//! assert_eq!(pool.buffers().rows, 20);
//! // In a plugin's test: insta::assert_yaml_snapshot!(pool.snapshot(&pool.run::<MyPlugin>(6, 0, &json!({}))?));
//! ```

use serde::Serialize;

use crate::abi::{PoolView, StrRef, REASONS};
use crate::pool::PoolBuffers;
use crate::{ffi, AdaptPlugin, Pick, QueryPlugin, Reason};

/// A deterministic pool of `cases × slices` rows with every score column.
#[derive(Debug, Clone)]
pub struct TestPool {
    buffers: PoolBuffers,
}

/// xorshift64*, from `seed`.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rounded to 4 decimals.
pub fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// One selected row as a snapshot shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRow {
    /// 1-based rank.
    pub rank: usize,
    /// Row index.
    pub row: usize,
    /// Case id.
    pub case: String,
    /// Slice.
    pub slice: Option<usize>,
    /// Why.
    pub reason: Reason,
    /// The score the plugin gave, rounded.
    pub score: Option<f64>,
    /// The row's pool scores, rounded (what a reader checks the pick against).
    pub entropy: f64,
    /// Margin.
    pub margin: f64,
    /// STDR distance.
    pub stdr_distance: f64,
}

impl TestPool {
    /// `cases` cases of `slices` slices (cases `case00`, …), each row with entropy, bald,
    /// margin, tumour_area and stdr_distance drawn from `seed`, and an 8-value descriptor.
    pub fn seeded(seed: u64, cases: usize, slices: usize) -> TestPool {
        let rows = cases * slices;
        let mut d = Draws(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut column = |scale: f64| -> Vec<f64> { (0..rows).map(|_| round(d.next() * scale)).collect() };
        let columns = vec![
            ("entropy".to_string(), column(0.7)),
            ("bald".to_string(), column(0.2)),
            ("margin".to_string(), column(1.0)),
            (
                "tumour_area".to_string(),
                column(400.0).iter().map(|v| v.round()).collect(),
            ),
            ("stdr_distance".to_string(), column(3.0)),
        ];
        let descriptors = (0..rows * 8).map(|_| round(d.next()) as f32).collect();
        TestPool {
            buffers: PoolBuffers {
                rows,
                unit: 0,
                columns,
                case: (0..rows).map(|r| (r / slices) as u32).collect(),
                slice: (0..rows).map(|r| (r % slices) as i64).collect(),
                case_ids: (0..cases).map(|c| format!("case{c:02}")).collect(),
                descriptors,
                descriptor_len: 8,
                metadata: r#"{"unit": "slice", "centres": ["T1"]}"#.into(),
            },
        }
    }

    /// The pool's buffers.
    pub fn buffers(&self) -> &PoolBuffers {
        &self.buffers
    }

    /// Runs plugin `P` on the pool through the C boundary (as the host calls it): its picks,
    /// or its error (a panic included, as its message).
    pub fn run<P: QueryPlugin>(
        &self,
        budget: usize,
        seed: u64,
        params: &serde_json::Value,
    ) -> Result<Vec<Pick>, String> {
        let (view, _columns, _ids) = self.buffers.view();
        let params = params.to_string();
        let mut out = ffi::empty_query_answer();
        // SAFETY: every pointer of `view` points into `self.buffers` (alive for the call);
        // the answer is released below, once.
        let status = unsafe {
            ffi::query::<P>(
                std::ptr::null(),
                &view as *const PoolView,
                budget as u64,
                seed,
                StrRef::new(&params),
                &mut out,
            )
        };
        let result = if status == 0 {
            // SAFETY: the answer's buffers hold `len` entries until released.
            let part = |p: *const u8, size: usize| !p.is_null() && out.len > 0 && size > 0;
            let rows: &[u64] = if part(out.rows as *const u8, 8) {
                unsafe { std::slice::from_raw_parts(out.rows, out.len) }
            } else {
                &[]
            };
            let scores: &[f64] = if part(out.scores as *const u8, 8) {
                unsafe { std::slice::from_raw_parts(out.scores, out.len) }
            } else {
                &[]
            };
            let reasons: &[u8] = if part(out.reasons, 1) {
                unsafe { std::slice::from_raw_parts(out.reasons, out.len) }
            } else {
                &[]
            };
            Ok((0..rows.len())
                .map(|i| Pick {
                    row: rows[i] as usize,
                    reason: reasons.get(i).map_or(Reason::Policy, |c| reason(*c)),
                    score: scores.get(i).copied(),
                })
                .collect())
        } else {
            // SAFETY: as above.
            Err(unsafe { out.error.to_str_lossy() }.into_owned())
        };
        if let Some(release) = out.release {
            // SAFETY: the plugin's own release of its own answer, called once.
            unsafe { release(&mut out) };
        }
        result
    }

    /// `picks` as rows a snapshot shows: rank, row, case, slice, reason, the plugin's score
    /// and the pool's, rounded.
    pub fn snapshot(&self, picks: &[Pick]) -> Vec<SnapshotRow> {
        let col = |name: &str| {
            &self
                .buffers
                .columns
                .iter()
                .find(|(n, _)| n == name)
                .expect("a test pool column")
                .1
        };
        picks
            .iter()
            .enumerate()
            .map(|(i, p)| SnapshotRow {
                rank: i + 1,
                row: p.row,
                case: self.buffers.case_ids[self.buffers.case[p.row] as usize].clone(),
                slice: usize::try_from(self.buffers.slice[p.row]).ok(),
                reason: p.reason,
                score: p.score.map(round),
                entropy: round(col("entropy")[p.row]),
                margin: round(col("margin")[p.row]),
                stdr_distance: round(col("stdr_distance")[p.row]),
            })
            .collect()
    }
}

fn reason(code: u8) -> Reason {
    match REASONS.get(code as usize) {
        Some(&"far") => Reason::Far,
        Some(&"near") => Reason::Near,
        Some(&"uncertain") => Reason::Uncertain,
        Some(&"diverse") => Reason::Diverse,
        Some(&"random") => Reason::Random,
        _ => Reason::Policy,
    }
}

/// A fixed adaptation state: target `T1`, a selection of `selected` slices of 3 cases, and the
/// paper's schedule at 200 iterations.
pub fn adapt_state(selected: usize) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..selected)
        .map(|i| {
            serde_json::json!({"rank": i + 1, "index": i, "case": format!("case{:02}", i % 3), "centre": "T1",
                "slice": i / 3, "score": null, "reason": "random"})
        })
        .collect();
    serde_json::json!({
        "target": "T1",
        "selection": {"strategy": "random", "unit": "slice", "pool_size": 100, "items": items},
        "schedule": {"optimizer": "sgd", "iterations": 200, "batch": 8, "lr": 0.03, "momentum": 0.9,
                     "weight_decay": 0.0001, "poly_power": 0.9, "select": "last", "validate_every": 100}
    })
}

/// Runs adaptation plugin `P` on `state` through the C boundary: its plan, or its error.
pub fn run_plan<P: AdaptPlugin>(
    state: &serde_json::Value,
    params: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let (state, params) = (state.to_string(), params.to_string());
    let mut out = ffi::empty_plan_answer();
    // SAFETY: the strings live for the call; the answer is released below, once.
    let status = unsafe { ffi::plan::<P>(std::ptr::null(), StrRef::new(&state), StrRef::new(&params), &mut out) };
    // SAFETY: the answer's strings are valid until released.
    let result = if status == 0 {
        let json = unsafe { out.json.to_str_lossy() }.into_owned();
        serde_json::from_str(&json).map_err(|e| format!("the plan is not JSON: {e}"))
    } else {
        Err(unsafe { out.error.to_str_lossy() }.into_owned())
    };
    if let Some(release) = out.release {
        // SAFETY: the plugin's own release of its own answer, called once.
        unsafe { release(&mut out) };
    }
    result
}
