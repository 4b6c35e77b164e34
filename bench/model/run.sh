#!/usr/bin/env bash
# The U-Net benchmark in one run: delinea (burn flex, engine/benches/unet.rs) and PyTorch on the
# CPU, same architecture, loss, optimiser (SGD momentum 0.9, dampening 0, weight decay 1e-4) and
# thread count, back to back for each batch size; prints a table of times and ratios
# (delinea / PyTorch, from the minimum of each side's timed repetitions) and writes it as JSON.
# Inference is timed as `delinea predict` runs it (batch norm folded into the convolutions, one
# concurrent part of the batch per thread) and, for comparison, as one whole batch with and
# without the folding; PyTorch runs its ordinary eager eval-mode forward. The training step and
# predict's inference are also timed with burn's own convolution ops (the path before
# delinea's kernels, engine/src/model/kernels/), and a per-op table of a training step is
# printed for both (engine/benches/unet/ops.rs).
#
#   bash bench/model/run.sh [--threads 2] [--sizes "128 256"] [--batch 8] [--reps 3]
#                           [--venv DIR] [--out FILE.json]
#
# --venv: a Python virtual environment with torch; created (python3 -m venv, then pip install
# torch numpy from the package index) when it has no torch. Default: /tmp/pyref when it already
# has torch, else target/bench-venv. Not a test: timings depend on the machine and its load
# (the load average is recorded with the results).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
threads=2 sizes="128 256" batch=8 reps=3 venv="" out="$root/target/bench-model.json"
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --venv) venv="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

has_torch() { [ -x "$1/bin/python" ] && "$1/bin/python" -c "import torch, numpy" 2>/dev/null; }
if [ -z "$venv" ]; then
    if has_torch /tmp/pyref; then venv=/tmp/pyref; else venv="$root/target/bench-venv"; fi
fi
if ! has_torch "$venv"; then
    echo "creating $venv with torch (a large download)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch numpy
fi
py="$venv/bin/python"

# Both sides get the same number of threads, and no library spins up more behind them.
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
export RAYON_NUM_THREADS="$threads"

echo "building the Rust harness (release)" >&2
(cd "$root" && cargo bench -p delinea --bench unet --no-run 2>&1 | tail -1) >&2
bin="$(cd "$root" && cargo bench -p delinea --bench unet --no-run --message-format=json 2>/dev/null \
    | "$py" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "unet" and m.get("executable"):
        print(m["executable"])')"

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for size in $sizes; do
    echo "size $size: delinea, then PyTorch (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    ours="$(DELINEA_BENCH_THREADS="$threads" DELINEA_BENCH_SIZE="$size" DELINEA_BENCH_BATCH="$batch" \
        DELINEA_BENCH_REPS="$reps" DELINEA_BENCH_BN=0 "$bin")"
    peer="$("$py" "$root/bench/model/torch_unet.py" --threads "$threads" --size "$size" --batch "$batch" \
        --reps "$reps")"
    printf '%s\n%s\n' "$ours" "$peer" >&2
    printf '%s\n%s\n' "$ours" "$peer" | sed -n 's/^json: //p' >>"$results"
done

"$py" - "$results" "$out" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc --all)" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, load, cores = sys.argv[2], sys.argv[3], int(sys.argv[4])
goal = {"train": 2.0, "infer": 1.3}
table = []
for size in sorted({r["size"] for r in rows}):
    d = next(r for r in rows if r["size"] == size and r["impl"] == "delinea")
    t = next(r for r in rows if r["size"] == size and r["impl"] == "pytorch")
    for ours, peer, name in (("train", "train", "training step"),
                             ("train_burn_ops", "train", "training step, burn's convolution ops (before)"),
                             ("infer", "infer", "inference batch (as predict runs it)"),
                             ("infer_burn_ops", "infer", "inference as predict runs it, burn's convolution ops (before)"),
                             ("infer_whole", "infer", "inference, whole batch at once"),
                             ("infer_unfolded", "infer", "inference, whole batch, BN not folded")):
        a, b, g = d[f"{ours}_min_s"], t[f"{peer}_min_s"], goal[peer]
        table.append({"batch": [d["batch"], 1, size, size], "what": name, "delinea_s": a, "pytorch_s": b,
                      "ratio": a / b, "goal": g, "met": a / b <= g,
                      "delinea_median_s": d[f"{ours}_median_s"], "pytorch_median_s": t[f"{peer}_median_s"]})
torch_version = next((r.get("version") for r in rows if r["impl"] == "pytorch"), None)
print(f"\nU-Net, CPU, {rows[0]['threads']} threads, minimum of {rows[0]['reps']} reps; PyTorch {torch_version}; "
      f"load average at the end {load} on {cores} cores")
print(f"| batch | | delinea | PyTorch | ratio | goal |\n|---|---|---|---|---|---|")
for r in table:
    b = "[" + ",".join(map(str, r["batch"])) + "]"
    print(f"| `{b}` | {r['what']} | {r['delinea_s']:.3f} s | {r['pytorch_s']:.3f} s | {r['ratio']:.2f}x | "
          f"<= {r['goal']}x {'(met)' if r['met'] else '(not met)'} |")
for size in sorted({r["size"] for r in rows}):
    d = next(r for r in rows if r["size"] == size and r["impl"] == "delinea")
    if d.get("ops_ms"):
        burn, ours = d["ops_ms"]["burn"], d["ops_ms"]["delinea"]
        print(f"\nper op in a training step at [{d['batch']},1,{size},{size}], summed over the network's layers "
              f"(medians, ms)\n| op | burn's ops (before) | delinea's kernels |\n|---|---|---|")
        order = ["convolution forward", "convolution input gradient", "convolution weight + bias gradient",
                 "transposed convolution, forward + backward", "batch norm, forward + backward",
                 "the rest of the step"]
        for op in sorted(burn, key=lambda k: order.index(k) if k in order else len(order)):
            print(f"| {op} | {burn[op]:.1f} | {ours[op]:.1f} |")
with open(out, "w") as f:
    json.dump({"threads": rows[0]["threads"], "reps": rows[0]["reps"], "pytorch": torch_version,
               "load_average": load, "cores": cores, "results": table, "raw": rows}, f, indent=2)
print(f"written {out}")
EOF
