#![no_main]
//! `delinea::fuzz::nifti` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::nifti(data));
