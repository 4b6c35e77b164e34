//! Script policy timing (not a test): each idiom of scripts/README.md ranking a 10 000- and a
//! 100 000-row pool for the top 200 by `0.7·entropy + 0.3·stdr_distance`, through
//! `ScriptQuery::select` as `delinea query` calls it (pool handed over, result checked), beside
//! the builtin `entropy` on the same pool. Median of `--repeat` runs (default 5), one JSON line
//! per idiom and size.
//!
//! Run: `cargo bench -p delinea --bench script -- [--repeat N]`
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use delinea::strategy::query::{by_name, Budget, Candidate, CandidatePool, Scores, Unit};
use delinea::strategy::Resolver;

fn pool(n: usize) -> CandidatePool {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32
    };
    let rows = (0..n)
        .map(|i| Candidate {
            case: format!("case{}", i / 24),
            centre: "C2".into(),
            slice: Some(i % 24),
            scores: Scores {
                entropy: Some(next()),
                stdr_distance: Some(next() * 10.0),
                ..Scores::default()
            },
            descriptor: vec![],
            features: vec![],
        })
        .collect();
    CandidatePool {
        unit: Unit::Slice,
        rows,
    }
}

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..repeat)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let repeat = match args.iter().position(|a| a == "--repeat") {
        Some(i) => args.get(i + 1).ok_or("--repeat needs a number")?.parse()?,
        None => 5,
    };
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
