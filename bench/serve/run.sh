#!/usr/bin/env bash
# `delinea serve` under load, in one run (not a test: timings depend on the machine):
#   1. /activelearning latency over a datastore of N images (default 1000; goal <= 50 ms);
#   2. /infer against `delinea predict` on the same scan and model (goal <= 1.05x): served from
#      the prediction made on arrival, and predicted fresh by a new generation (a 10-step one);
#   3. 20 concurrent /info/ and /datastore/ requests while a training runs (goal: none > 100 ms).
# Scans are the synthetic cohort's at --size (default 64,64,16), the model the tiny U-Net the
# tests use. Prints the numbers and writes them as JSON.
#
#   bash bench/serve/run.sh [--images 1000] [--size 64,64,16] [--out FILE.json]
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
images=1000 size=64,64,16 out="$root/target/bench-serve.json"
while [ $# -gt 0 ]; do
    case "$1" in
        --images) images="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
delinea="$root/target/release/delinea"
[ -x "$delinea" ] || cargo build --release -p delinea --manifest-path "$root/Cargo.toml"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
side="${size%%,*}"
"$delinea" synth --out cohort --seed 1 --centres 2 --cases-per-centre "$images" --multi-rater-cases 0 --size "$size" --quiet
echo "{\"batch\": 4, \"preprocessing\": {\"slice_size\": $side}, \"model\": {\"features\": [4, 8, 16], \"dropout\": [0.05, 0.1, 0.2]}}" > model.json
"$delinea" train --manifest cohort/manifest.json --centre C1 --config model.json --iterations 20 --device cpu --out model --quiet
"$delinea" reference --model model --manifest cohort/manifest.json --centre C1 --k 6 --device cpu --out refs.json --quiet
cat > job.json <<JOB
{"format": "delinea-job", "name": "bench", "model": "model", "device": "cpu", "prediction": {"mc_samples": 2},
 "query": {"strategy": "stdr", "references": "refs.json"},
 "adaptation": {"every_labels": 1000000, "iterations": 100000, "batch": 4}}
JOB
mkdir in && cp cohort/C2/images/* in/
"$delinea" watch --job job.json --inbox in --outbox ds --once --stable 0.2 2>/dev/null
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$delinea" serve --job job.json --datastore ds --bind "127.0.0.1:$port" 2>serve.log &
python3 "$root/bench/serve/load.py" "http://127.0.0.1:$port" "$delinea" "$work" "$out"
# A short adaptation, then /infer predicted fresh by generation 1 against predict with it.
kill %1 && wait %1 || true
sed -i 's/"iterations": 100000/"iterations": 10/' job.json
"$delinea" serve --job job.json --datastore ds --bind "127.0.0.1:$port" 2>>serve.log &
python3 "$root/bench/serve/load.py" "http://127.0.0.1:$port" "$delinea" "$work" "$out" --fresh
