//! Script policy timing (not a test): each idiom of scripts/README.md ranking a 10 000- and a
//! 100 000-row pool for the top 200 by `0.7·entropy + 0.3·stdr_distance`, through
//! `ScriptQuery::select` as `delinea query` calls it (pool handed over, result checked), beside
//! the builtin `entropy` on the same pool. Median of `--repeat` runs (default 5), one JSON line
//! per idiom and size.
//!
//! Run: `cargo bench -p delinea --bench script -- [--repeat N]`
#![allow(clippy::print_stdout)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::{median_ms, pool, repeat};

use delinea::strategy::query::{by_name, Budget};
use delinea::strategy::Resolver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repeat = repeat()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/script");
    let resolver = Resolver::new();
    for n in [10_000, 100_000] {
        let p = pool(n);
        let builtin = by_name("entropy")?;
        let ms = median_ms(repeat, || {
            builtin
                .select(&p, Budget::Count(200), 0)
                .map(|_| ())
                .unwrap_or_default();
        });
        println!("{{\"idiom\": \"builtin entropy\", \"rows\": {n}, \"median_ms\": {ms:.2}}}");
        for idiom in ["columnar", "per_row", "per_row_push", "maps_sorted"] {
            let name = format!("script:{}", dir.join(format!("{idiom}.rhai")).display());
            let q = resolver.resolve_query(&name)?;
            // The slow idioms once only at 100 000 rows (the map sort takes about a minute).
            let times = if n > 10_000 && idiom != "columnar" && idiom != "per_row" {
                1
            } else {
                repeat
            };
            let start = Instant::now();
            match q.select(&p, Budget::Count(200), 0) {
                Ok(first) => assert_eq!(first.items.len(), 200),
                Err(e) => {
                    let s = start.elapsed().as_secs_f64();
                    println!(
                        "{{\"idiom\": \"{idiom}\", \"rows\": {n}, \"stopped_after_s\": {s:.1}, \"error\": {:?}}}",
                        e.to_string()
                    );
                    continue;
                }
            }
            let ms = median_ms(times, || {
                q.select(&p, Budget::Count(200), 0).map(|_| ()).unwrap_or_default();
            });
            println!("{{\"idiom\": \"{idiom}\", \"rows\": {n}, \"median_ms\": {ms:.2}, \"runs\": {times}}}");
        }
    }
    Ok(())
}
