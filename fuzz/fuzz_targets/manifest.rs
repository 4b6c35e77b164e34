#![no_main]
//! `delinea::fuzz::manifest` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::manifest(data));
