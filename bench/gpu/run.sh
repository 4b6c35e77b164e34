#!/usr/bin/env bash
# The GPU path, proven on a GPU. Given a delinea built with `--features cuda`, on the machine with
# the GPU (no network needed):
#   1. `delinea device --device cuda` (on a machine without a GPU, or a binary without CUDA: a
#      clear "no GPU" line and exit 0: nothing else is run);
#   2. a source training, the same seed, on the CPU and on the GPU, and the two loss curves
#      compared step by step;
#   3. the CPU-trained model predicting the target's cases on both devices, the masks compared
#      (DSC of each GPU mask against its CPU twin, by `delinea metrics`);
#   4. an adaptation (finetune+pseudo on a 20 % STDR selection) on both devices, losses compared;
#   5. a training step and an inference batch timed at the paper's size (256 x 256, batch 32, the
#      full U-Net) on the GPU, and on the CPU of the same machine for the ratio.
# Dropout is off in steps 2-4 (`dropout` 0): its masks come from each backend's own random
# stream, so with it on the curves would differ by design, not by error. What remains is
# floating-point order (cuBLAS/cubecl kernels against the CPU's), hence the tolerances:
#   losses: first step within 1e-3 relative, every step within 5e-2 relative (training is
#   chaotic: rounding differences grow over the steps); masks: DSC >= 0.98 for every case.
#
#   bash bench/gpu/run.sh [--bin target/release/delinea] [--device cuda] [--out DIR]
#                         [--size 256] [--batch 32] [--reps 5] [--cpu-reps 1]
#
# Writes DIR/gpu-bench.json (default target/bench-gpu) and prints a summary; exits 1 when a
# check fails. `--device cpu` runs every step CPU against CPU: a dry run of the script itself.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/target/release/delinea" device=cuda out="$root/target/bench-gpu"
size=256 batch=32 reps=5 cpu_reps=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --cpu-reps) cpu_reps="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "no delinea binary at $bin (build it: cargo build --release --features cuda)" >&2; exit 2; }

# 1. The device.
if ! said="$("$bin" device --device "$device" 2>&1)"; then
    echo "no GPU: $said"
    echo "no GPU: nothing was run or timed; run this script again on a machine with one"
    exit 0
fi
echo "device: $said"

work="$out/work"
rm -rf "$work"
mkdir -p "$work"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# 2. Source training on both devices.
log "cohort"
"$bin" synth --out "$work/cohort" --seed 0 --centres 2 --cases-per-centre 8 --size 64,64,12 --quiet
manifest="$work/cohort/manifest.json"
cat > "$work/train.json" <<JSON
{"iterations": 60, "batch": 8, "validate_every": 30, "seed": 0,
 "preprocessing": {"slice_size": 64},
 "model": {"dropout": [0.0, 0.0, 0.0, 0.0, 0.0]}}
JSON
for d in cpu "$device"; do
    log "source training on $d"
    "$bin" train --manifest "$manifest" --centre C1 --config "$work/train.json" --device "$d" \
        --log-every 0 --quiet --out "$work/source-$d"
done

# 3. Prediction with the CPU model on both devices.
for d in cpu "$device"; do
    log "prediction on $d"
    "$bin" predict --model "$work/source-cpu" --input "$manifest" --centre C2 --split test \
        --device "$d" --quiet --out "$work/predict-$d"
done

# 4. Adaptation on both devices, from the CPU source model and one selection.
log "reference points and an STDR selection"
"$bin" reference --model "$work/source-cpu" --manifest "$manifest" --centre C1 --device cpu \
    --quiet --out "$work/refs.json"
"$bin" query --model "$work/source-cpu" --refs "$work/refs.json" --manifest "$manifest" --centre C2 \
    --strategy stdr --budget 20% --device cpu --quiet --out "$work/selection.json"
for d in cpu "$device"; do
    log "adaptation on $d"
    "$bin" adapt --model "$work/source-cpu" --selection "$work/selection.json" --manifest "$manifest" \
        --centre C2 --strategy finetune+pseudo --config "$work/train.json" --iterations 40 \
        --device "$d" --log-every 0 --quiet --out "$work/adapt-$d"
done

# 5. Timings at the paper's size.
log "timing on $device: batch $batch at $size x $size, $reps reps"
"$bin" device --device "$device" --bench --size "$size" --batch "$batch" --reps "$reps" --json \
    > "$work/timing-$device.json"
log "timing on the CPU: $cpu_reps reps"
"$bin" device --device cpu --bench --size "$size" --batch "$batch" --reps "$cpu_reps" --json \
    > "$work/timing-cpu.json"

# The masks' agreement, case by case.
for mask in "$work/predict-cpu"/*.nii.gz; do
    name="$(basename "$mask")"
    "$bin" metrics --pred "$work/predict-$device/$name" --gt "$mask" --json > "$work/agree-$name.json"
done

python3 - "$work" "$device" "$out/gpu-bench.json" <<'PY'
import glob, json, os, sys
work, device, result = sys.argv[1:]

def losses(folder):
    log = json.load(open(os.path.join(work, folder, "training-log.json")))
    return [e["loss"] for e in log["events"] if e.get("event") == "step"]

def compare(name):
    a, b = losses(f"{name}-cpu"), losses(f"{name}-{device}")
    rel = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)]
    ok = len(a) == len(b) > 0 and rel[0] <= 1e-3 and max(rel) <= 5e-2
    return {"steps": len(a), "first_rel": rel[0] if rel else None, "max_rel": max(rel) if rel else None,
            "cpu_last": a[-1] if a else None, device + "_last": b[-1] if b else None, "ok": ok}

checks = {"source training": compare("source"), "adaptation": compare("adapt")}
dsc = []
for f in sorted(glob.glob(os.path.join(work, "agree-*.json"))):
    m = json.load(open(f))
    d = m.get("dsc")
    dsc.append(1.0 if d is None else d)  # both masks empty: they agree
checks["prediction"] = {"cases": len(dsc), "min_dsc": min(dsc) if dsc else None,
                        "ok": bool(dsc) and min(dsc) >= 0.98}
timing = {d: json.load(open(os.path.join(work, f"timing-{d}.json"))) for d in ["cpu", device]}
t, c = timing[device]["timings"], timing["cpu"]["timings"]
report = {"device": device, "checks": checks, "timing": timing,
          "speedup_train_step": c["train_step_min_s"] / t["train_step_min_s"],
          "speedup_inference": c["inference_min_s"] / t["inference_min_s"]}
json.dump(report, open(result, "w"), indent=2)
for name, r in checks.items():
    print(f"{name:16s} {'ok' if r['ok'] else 'FAILED'}  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items() if k != "ok"))
o = t["options"]
print(f"timing, batch [{o['batch']}, 1, {o['size']}, {o['size']}]: training step {t['train_step_min_s']:.4f} s on {device}, "
      f"{c['train_step_min_s']:.3f} s on the CPU ({timing['cpu']['threads']} threads): x{report['speedup_train_step']:.1f}; "
      f"inference batch {t['inference_min_s']:.4f} s against {c['inference_min_s']:.3f} s: x{report['speedup_inference']:.1f}")
print(f"wrote {result}")
sys.exit(0 if all(r["ok"] for r in checks.values()) else 1)
PY
