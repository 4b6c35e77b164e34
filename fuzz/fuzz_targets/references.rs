#![no_main]
//! `delinea::fuzz::references` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::references(data));
