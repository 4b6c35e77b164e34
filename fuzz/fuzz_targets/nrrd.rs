#![no_main]
//! `delinea::fuzz::nrrd` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::nrrd(data));
