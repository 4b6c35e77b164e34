#!/usr/bin/env bash
# Fuzzes targets with the limits of the README's "Reliability" table: each for SECONDS or a
# million inputs, whichever comes first, a 2 GB RSS limit, 1 s per input. The corpus grows in
# fuzz/corpus/<target>; a crash, timeout or out-of-memory input lands in
# fuzz/artifacts/<target>/ and stops that target. Logs: fuzz/logs/<target>.log, with
# libFuzzer's final stats. Needs `cargo install cargo-fuzz` and a nightly toolchain. The
# targets are built once (`cargo fuzz build -O`, AddressSanitizer) and then run as they are,
# so that editing the engine meanwhile does not rebuild them; FUZZ_BIN=DIR runs the binaries
# in DIR instead (a copy) and builds nothing.
#
#   fuzz/run.sh 600                 # every target, 10 minutes each, one after another
#   fuzz/run.sh 600 nifti dicom     # those two
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ $# -eq 0 ]; then
  set -- $(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
# Scratch files on tmpfs when there is one (every target writes its input to a file).
if [ -d /dev/shm ]; then export TMPDIR=${TMPDIR:-/dev/shm}; fi
mkdir -p fuzz/logs
bin=${FUZZ_BIN:-fuzz/target/x86_64-unknown-linux-gnu/release}
if [ -z "${FUZZ_BIN:-}" ]; then cargo +nightly fuzz build -O; fi
for target in "$@"; do
  case $target in
    dicom | model_file | plugin_descriptor) max_len=131072 ;;
    *) max_len=65536 ;;
  esac
  echo "fuzzing $target for ${seconds}s (or 1000000 inputs)" >&2
  mkdir -p "fuzz/artifacts/$target"
  "$bin/$target" -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -runs=1000000 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -timeout=1 -max_len="$max_len" -print_final_stats=1 "fuzz/corpus/$target" \
    >"fuzz/logs/$target.log" 2>&1 || echo "$target: stopped with a finding, see fuzz/logs/$target.log" >&2
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done|^==[0-9]+==|SUMMARY' "fuzz/logs/$target.log" >&2 || true
done
