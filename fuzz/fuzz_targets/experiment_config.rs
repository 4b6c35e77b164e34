#![no_main]
//! `delinea::fuzz::experiment_config` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::experiment_config(data));
