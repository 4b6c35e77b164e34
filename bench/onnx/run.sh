#!/usr/bin/env bash
# An exported model against ONNX Runtime, in one run: the paper-size PyTorch model of
# tests/fixtures/pytorch (paper-size.pth) imported with `delinea model import`, exported with
# `delinea model export --format onnx`, then one inference batch timed on each side with the same
# thread count, back to back for each slice size: delinea as `delinea predict` runs it
# (engine/benches/unet.rs, inference only: batch norm folded, one concurrent part of the batch per
# thread) and ONNX Runtime's CPU provider on the exported file (ort_time.py). Prints a table of
# the minimum times and the ratio delinea / ONNX Runtime, and writes it as JSON.
#
#   bash bench/onnx/run.sh [--threads 2] [--sizes "128 256"] [--batch 8] [--reps 3] [--out FILE.json]
#
# Needs python3 with onnxruntime and numpy (pip install onnxruntime numpy). Not a test: timings
# depend on the machine and its load (the load average is recorded with the results).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
threads=2 sizes="128 256" batch=8 reps=3 out="$root/target/bench-onnx.json"
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
python3 -c "import onnxruntime, numpy" || { echo "bench/onnx: needs python3 with onnxruntime and numpy" >&2; exit 2; }

cd "$root"
cargo build --release -p delinea --quiet
bench=$(cargo bench -p delinea --bench unet --no-run --message-format=json 2>/dev/null \
    | python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('executable') and 'unet' in m['executable']][-1])")
work="$root/target/bench-onnx"
rm -rf "$work" && mkdir -p "$work"
./target/release/delinea model import tests/fixtures/pytorch/paper-size.pth --out "$work/model" --quiet
./target/release/delinea model export "$work/model" --format onnx --out "$work/model.onnx" --quiet

rows=()
for size in $sizes; do
    d=$(DELINEA_BENCH_THREADS=$threads DELINEA_BENCH_SIZE=$size DELINEA_BENCH_BATCH=$batch \
        DELINEA_BENCH_REPS=$reps DELINEA_BENCH_TRAIN=0 DELINEA_BENCH_BN=0 RAYON_NUM_THREADS=$threads \
        "$bench" | sed -n 's/^json: //p')
    o=$(OMP_NUM_THREADS=$threads python3 bench/onnx/ort_time.py "$work/model.onnx" --size "$size" \
        --batch "$batch" --threads "$threads" --reps "$reps" | sed -n 's/^json: //p')
    rows+=("{\"delinea\": $d, \"onnxruntime\": $o}")
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '%s\n' "${rows[@]}" | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print('| input | delinea (s) | ONNX Runtime (s) | delinea / ONNX Runtime |')
print('|---|---|---|---|')
for r in rows:
    d, o = r['delinea'], r['onnxruntime']
    print(f\"| [{d['batch']},1,{d['size']},{d['size']}] | {d['infer_min_s']:.3f} | {o['infer_min_s']:.3f} | {d['infer_min_s'] / o['infer_min_s']:.2f} |\")
json.dump({'threads': $threads, 'load_average': '$load', 'rows': rows}, open('$out', 'w'), indent=1)
print('onnxruntime', rows[0]['onnxruntime']['version'], '· $threads threads · load average $load · written to $out')
"
