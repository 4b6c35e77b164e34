//! Plugin call overhead (not a test): the builtin `margin` against the `margin-diverse` plugin
//! with no per-case limit (the same ranking) on a 10 000- and a 100 000-row pool, through the
//! strategy each front door gives. Median of `--repeat` runs (default 5), one JSON line each.
//! The plugin must be built first: `cargo build --release -p margin-diverse`.
//!
//! Run: `cargo bench -p delinea --bench plugin -- [--repeat N]`
#![allow(clippy::print_stdout)]

mod common;

use common::{median_ms, pool, repeat};
use std::path::Path;

use delinea::strategy::query::Budget;
use delinea::strategy::Resolver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repeat = repeat()?;
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libmargin_diverse.so");
    if !lib.is_file() {
        return Err(format!("{} is missing: cargo build --release -p margin-diverse", lib.display()).into());
    }
    let r = Resolver::new();
    let builtin = r.resolve_query("margin")?;
    let plugin = r.resolve_query(&format!("plugin:{}?per_case=1000000", lib.display()))?;
    for n in [10_000, 100_000] {
        let p = pool(n);
        let a = builtin.select(&p, Budget::Count(200), 0)?;
        let b = plugin.select(&p, Budget::Count(200), 0)?;
        let rows = |s: &delinea::strategy::query::Selection| s.items.iter().map(|i| i.index).collect::<Vec<_>>();
        assert_eq!(rows(&a), rows(&b), "the same ranking");
        let tb = median_ms(repeat, || drop(builtin.select(&p, Budget::Count(200), 0)));
        let tp = median_ms(repeat, || drop(plugin.select(&p, Budget::Count(200), 0)));
        println!(
            "{{\"rows\": {n}, \"builtin_ms\": {tb:.2}, \"plugin_ms\": {tp:.2}, \"ratio\": {:.2}}}",
            tp / tb
        );
    }
    Ok(())
}
