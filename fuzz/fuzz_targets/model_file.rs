#![no_main]
//! `delinea::fuzz::model_file` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::model_file(data));
