//! `delinea-plugin-api`: write a delinea query or adaptation strategy as a native plugin, in
//! safe Rust, and snapshot-test it.
//!
//! A plugin is a `cdylib` crate with one type implementing [`QueryPlugin`] (rank a pool of
//! candidate slices) or [`AdaptPlugin`] (plan an adaptation), exported with
//! [`export_query_plugin!`] or [`export_adapt_plugin!`]. The macro writes the C ABI ([`abi`]):
//! a descriptor in a named section that delinea reads from the file before loading it (name,
//! version, ABI, SDK version, target, panic strategy, kind, what the plugin reads, its
//! parameters' JSON Schema), and an entry function whose calls catch every panic. The plugin
//! author writes no `unsafe`; [`testing`] runs the plugin through that same boundary on a
//! fixed, seeded pool, for insta snapshot tests.
//!
//! ```
//! use delinea_plugin_api::{Host, Pick, Pool, QueryPlugin, Reason};
//!
//! #[derive(Default)]
//! struct MostUncertain;
//!
//! impl QueryPlugin for MostUncertain {
//!     const NAME: &'static str = "most-uncertain";
//!     const VERSION: &'static str = "0.1.0";
//!     const NEEDS: &'static [&'static str] = &["entropy"];
//!
//!     fn select(&self, pool: &Pool, budget: usize, _seed: u64, _params: &serde_json::Value, _host: &Host)
//!         -> Result<Vec<Pick>, String> {
//!         let entropy = pool.column("entropy").ok_or("no entropy column")?;
//!         let mut rows: Vec<usize> = (0..pool.len()).collect();
//!         rows.sort_by(|a, b| entropy[*b].total_cmp(&entropy[*a]).then(a.cmp(b)));
//!         Ok(rows.into_iter().take(budget).map(|r| Pick::new(r, Reason::Uncertain).score(entropy[r])).collect())
//!     }
//! }
//! // In the plugin crate: delinea_plugin_api::export_query_plugin!(MostUncertain);
//! let pool = delinea_plugin_api::testing::TestPool::seeded(1, 3, 4);
//! let picks = pool.run::<MostUncertain>(2, 0, &serde_json::json!({})).unwrap();
//! assert_eq!(picks.len(), 2);
//! ```

#![allow(unsafe_code)] // the C boundary lives here (and in the host), not in plugins

pub mod abi;
#[doc(hidden)]
pub mod ffi;
mod host;
#[doc(hidden)]
pub mod pool;
pub mod testing;

pub use host::{Host, Volume};
pub use pool::Pool;
pub use serde_json;

/// The SDK's version, recorded in every plugin's descriptor.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a row was picked (the selection file's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Far from the source's reference points.
    Far,
    /// Near them.
    Near,
    /// Among the most uncertain.
    Uncertain,
    /// Represents a cluster or covers the pool.
    Diverse,
    /// Drawn at random.
    Random,
    /// The plugin's own reason.
    Policy,
}

impl Reason {
    fn code(self) -> u8 {
        self as u8
    }
}

/// One selected row, with why and (optionally) the score it was ranked by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    /// The row index in the pool.
    pub row: usize,
    /// Why.
    pub reason: Reason,
    /// The score it was ranked by (finite), if any.
    pub score: Option<f64>,
}

impl Pick {
    /// Row `row`, picked for `reason`.
    pub fn new(row: usize, reason: Reason) -> Pick {
        Pick {
            row,
            reason,
            score: None,
        }
    }

    /// The same pick with the score it was ranked by.
    pub fn score(self, score: f64) -> Pick {
        Pick {
            score: Some(score),
            ..self
        }
    }
}

/// A query strategy: ranks a pool of candidates (one row per slice or volume) for a budget.
pub trait QueryPlugin: Default {
    /// The plugin's name (what `delinea plugins list` shows).
    const NAME: &'static str;
    /// Its version.
    const VERSION: &'static str;
    /// The scores it reads, among `entropy`, `bald`, `margin`, `stdr` and `features`: only
    /// those are computed for its pool.
    const NEEDS: &'static [&'static str] = &[];
    /// The JSON Schema of its parameters.
    const PARAMS_SCHEMA: &'static str = r#"{"type": "object"}"#;

    /// At most `budget` distinct rows of `pool`, best first; `seed` drives any random choice,
    /// `params` are the user's parameters, `host` the engine's services.
    fn select(
        &self,
        pool: &Pool,
        budget: usize,
        seed: u64,
        params: &serde_json::Value,
        host: &Host,
    ) -> Result<Vec<Pick>, String>;
}

/// An adaptation strategy: turns the state (target, labelled selection, schedule) into a plan
/// (`data-schema/adapt-plan.schema.json`), which delinea checks and its trainer executes.
pub trait AdaptPlugin: Default {
    /// The plugin's name.
    const NAME: &'static str;
    /// Its version.
    const VERSION: &'static str;
    /// The JSON Schema of its parameters.
    const PARAMS_SCHEMA: &'static str = r#"{"type": "object"}"#;

    /// The plan for `state` (a JSON object of `target`, `selection`, `schedule`).
    fn plan(
        &self,
        state: &serde_json::Value,
        params: &serde_json::Value,
        host: &Host,
    ) -> Result<serde_json::Value, String>;
}

/// The bit of each need in the descriptor.
#[doc(hidden)]
pub const fn needs_mask(needs: &[&str]) -> u32 {
    const NAMES: [&str; 5] = ["entropy", "bald", "margin", "stdr", "features"];
    let mut mask = 0;
    let mut i = 0;
    while i < needs.len() {
        let mut j = 0;
        let mut found = false;
        while j < NAMES.len() {
            if const_eq(needs[i], NAMES[j]) {
                mask |= 1 << j;
                found = true;
            }
            j += 1;
        }
        assert!(found, "NEEDS names entropy, bald, margin, stdr or features");
        i += 1;
    }
    mask
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The descriptor of a plugin (the export macros call this).
#[doc(hidden)]
pub const fn descriptor(
    kind: u32,
    unwind: bool,
    needs: u32,
    name: &str,
    version: &str,
    schema: &str,
) -> abi::Descriptor {
    abi::Descriptor {
        magic: abi::MAGIC,
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        size: std::mem::size_of::<abi::Descriptor>() as u32,
        kind,
        panic_unwind: unwind as u32,
        needs,
        name: abi::FixedStr::join(&[name]),
        version: abi::FixedStr::join(&[version]),
        sdk_version: abi::FixedStr::join(&[SDK_VERSION]),
        target: abi::FixedStr::join(&[std::env::consts::ARCH, "-", std::env::consts::OS]),
        params_schema: abi::FixedStr::join(&[schema]),
    }
}

/// Exports a [`QueryPlugin`] type from a `cdylib` crate: its descriptor (in the section
/// delinea reads before loading) and its entry function.
#[macro_export]
macro_rules! export_query_plugin {
    ($plugin:ty) => {
        #[allow(unsafe_code)]
        #[used]
        #[unsafe(no_mangle)]
        #[cfg_attr(target_vendor = "apple", unsafe(link_section = "__DATA,__delinea"))]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".delinea_plugin"))]
        pub static DELINEA_PLUGIN_DESCRIPTOR: $crate::abi::Descriptor = $crate::descriptor(
            $crate::abi::KIND_QUERY,
            cfg!(panic = "unwind"),
            $crate::needs_mask(<$plugin as $crate::QueryPlugin>::NEEDS),
            <$plugin as $crate::QueryPlugin>::NAME,
            <$plugin as $crate::QueryPlugin>::VERSION,
            <$plugin as $crate::QueryPlugin>::PARAMS_SCHEMA,
        );

        #[allow(unsafe_code)]
        unsafe extern "C" fn __delinea_query(
            call: *const $crate::abi::CallContext,
            pool: *const $crate::abi::PoolView,
            budget: u64,
            seed: u64,
            params: $crate::abi::StrRef,
            out: *mut $crate::abi::QueryAnswer,
        ) -> i32 {
            // SAFETY: the host passes valid pointers for the call (the ABI's contract).
            unsafe { $crate::ffi::query::<$plugin>(call, pool, budget, seed, params, out) }
        }

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn delinea_plugin_entry_v1() -> *const $crate::abi::PluginTable {
            static TABLE: $crate::abi::PluginTable = $crate::abi::PluginTable {
                size: ::std::mem::size_of::<$crate::abi::PluginTable>() as u32,
                abi_major: $crate::abi::ABI_MAJOR,
                kind: $crate::abi::KIND_QUERY,
                query: Some(__delinea_query),
                plan: None,
            };
            &TABLE
        }
    };
}

/// Exports an [`AdaptPlugin`] type from a `cdylib` crate (as [`export_query_plugin!`]).
#[macro_export]
macro_rules! export_adapt_plugin {
    ($plugin:ty) => {
        #[allow(unsafe_code)]
        #[used]
        #[unsafe(no_mangle)]
        #[cfg_attr(target_vendor = "apple", unsafe(link_section = "__DATA,__delinea"))]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".delinea_plugin"))]
        pub static DELINEA_PLUGIN_DESCRIPTOR: $crate::abi::Descriptor = $crate::descriptor(
            $crate::abi::KIND_ADAPT,
            cfg!(panic = "unwind"),
            0,
            <$plugin as $crate::AdaptPlugin>::NAME,
            <$plugin as $crate::AdaptPlugin>::VERSION,
            <$plugin as $crate::AdaptPlugin>::PARAMS_SCHEMA,
        );

        #[allow(unsafe_code)]
        unsafe extern "C" fn __delinea_plan(
            call: *const $crate::abi::CallContext,
            state: $crate::abi::StrRef,
            params: $crate::abi::StrRef,
            out: *mut $crate::abi::PlanAnswer,
        ) -> i32 {
            // SAFETY: the host passes valid pointers for the call (the ABI's contract).
            unsafe { $crate::ffi::plan::<$plugin>(call, state, params, out) }
        }

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn delinea_plugin_entry_v1() -> *const $crate::abi::PluginTable {
            static TABLE: $crate::abi::PluginTable = $crate::abi::PluginTable {
                size: ::std::mem::size_of::<$crate::abi::PluginTable>() as u32,
                abi_major: $crate::abi::ABI_MAJOR,
                kind: $crate::abi::KIND_ADAPT,
                query: None,
                plan: Some(__delinea_plan),
            };
            &TABLE
        }
    };
}
