#![no_main]
//! `delinea::fuzz::journal` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::journal(data));
