//! End-to-end tests: one binary (each test binary links the whole engine in release).
#![allow(clippy::print_stdout, clippy::type_complexity)] // skip notices; tables of expected values

mod cluster; // experiment --shard K/N and gather: one process's bytes, scheduler variables, exit 75 on SIGTERM
mod dataset; // delinea validate over manifests with every kind of problem
mod dicom; // series in manifests; RTSTRUCT and SEG out: dciodvfy, pydicom readback, a sphere, the real series, refusals
mod experiment; // delinea experiment: outputs, resume, one run redone, changed config, bad input
mod fuzz_corpus; // every committed fuzz input (fuzz/corpus, fuzz/regressions) replayed: no panic, no hang
mod metrics; // delinea metrics / evaluate / compare on small masks, empties, missing predictions
mod models; // model import / export: PyTorch and safetensors in, safetensors and ONNX out, ONNX Runtime
mod plugin; // native plugins in query, adapt and experiment; every bad plugin refused
mod query; // delinea reference then delinea query: selections, dual reference, errors
mod replicates; // experiment --replicates N: replicate 0 unchanged, others differ, jobs and shards, resume
mod script; // Rhai policies in query and experiment, the paper protocol as a script, errors
mod serve; // delinea serve: a Slicer session through the monailabel client, hostile requests, kill -9
mod synth; // delinea synth, then delinea validate on its manifest
mod train; // delinea train, then delinea predict and evaluate on a tiny cohort
mod util;
mod volume_io; // NIfTI reader/writer against nibabel's values, real files, corrupt files
mod watch; // delinea watch: bursts, slow writers, bad files, labels, adaptation, crashes, two watchers
