#![no_main]
//! `delinea::fuzz::job` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::job(data));
