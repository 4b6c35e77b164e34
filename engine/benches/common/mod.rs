//! What the strategy benchmarks share: a seeded pool of `n` slice rows (24 per case) with
//! entropy, margin and STDR distances, the median of repeated timings, and `--repeat N`.

use std::time::Instant;

use delinea::strategy::query::{Candidate, CandidatePool, Scores, Unit};

/// `n` rows with seeded scores.
pub fn pool(n: usize) -> CandidatePool {
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
                margin: Some(next()),
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

/// The median of `repeat` timings of `f`, milliseconds.
pub fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// `--repeat N` from the command line (default 5).
pub fn repeat() -> Result<usize, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Ok(match args.iter().position(|a| a == "--repeat") {
        Some(i) => args.get(i + 1).ok_or("--repeat needs a number")?.parse()?,
        None => 5,
    })
}
