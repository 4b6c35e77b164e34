//! NIfTI read/write timing for bench/io/bench.py (not a test): for each file given, the best
//! of N runs of `read_volume` and of `write_volume` (to .nii.gz), as one JSON line.
//!
//! Run: `cargo bench -p delinea --bench io -- [--repeat N] FILE...`
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use delinea::volume;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut repeat = 5;
    if let Some(i) = args.iter().position(|a| a == "--repeat") {
        repeat = args.get(i + 1).ok_or("--repeat needs a number")?.parse()?;
        args.drain(i..i + 2);
    }
    if args.first().map(String::as_str) == Some("--gunzip-only") {
        // Diagnostic: decompression alone, to see how much of a read it is.
        use std::io::Read;
        for file in &args[1..] {
            let bytes = std::fs::read(file)?;
            let t = Instant::now();
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out)?;
            println!("{{\"file\": {file:?}, \"gunzip_s\": {}}}", t.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("--gzip-levels") {
        // Diagnostic: time and size of each gzip level on the file's decompressed bytes.
        use std::io::{Read, Write};
        for file in &args[1..] {
            let mut raw = Vec::new();
            flate2::read::MultiGzDecoder::new(&std::fs::read(file)?[..]).read_to_end(&mut raw)?;
            for level in 1..=6 {
                let t = Instant::now();
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                enc.write_all(&raw)?;
                let n = enc.finish()?.len();
                let s = t.elapsed().as_secs_f64();
                println!("{{\"file\": {file:?}, \"level\": {level}, \"seconds\": {s}, \"bytes\": {n}}}");
            }
        }
        return Ok(());
    }
    let read_only = args.iter().any(|a| a == "--read-only");
    args.retain(|a| a != "--read-only");
    let out_dir = tempfile::tempdir()?;
    for file in args.iter().map(PathBuf::from) {
        let mut read_s = f64::INFINITY;
        let mut vol = None;
        for _ in 0..repeat {
            let t = Instant::now();
            vol = Some(volume::read_volume(&file)?);
            read_s = read_s.min(t.elapsed().as_secs_f64());
        }
        let vol = vol.ok_or("no run")?;
        if read_only {
            println!("{{\"file\": {:?}, \"read_s\": {read_s}}}", file.display().to_string());
            continue;
        }
        let out = out_dir.path().join("out.nii.gz");
        let mut write_s = f64::INFINITY;
        for _ in 0..repeat {
            let t = Instant::now();
            volume::write_volume(&out, &vol)?;
            write_s = write_s.min(t.elapsed().as_secs_f64());
        }
        let size = std::fs::metadata(&out)?.len();
        println!(
            "{{\"file\": {:?}, \"read_s\": {read_s}, \"write_s\": {write_s}, \"written_bytes\": {size}}}",
            file.display().to_string()
        );
    }
    Ok(())
}
