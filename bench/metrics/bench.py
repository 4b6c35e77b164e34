"""Benchmark: delinea metrics against medpy 0.5.2 and MONAI on the same mask pairs.

Not a timed test: it prints times and ratios measured in one run on one machine.
Setup (once, outside the repository), as bench/metrics/README.md says:
    python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install medpy==0.5.2 monai torch scipy numpy nibabel
    cargo build --release
    /tmp/pyref/bin/python bench/metrics/bench.py [--delinea target/release/delinea] [--out DIR]

Every tool times compute only (masks already in memory): medpy `dc` + `hd95` + `assd` on
numpy bools; MONAI `DiceMetric` + `compute_hausdorff_distance(percentile=95)` +
`compute_average_surface_distance` on one-hot CPU tensors; delinea `metrics --repeat N --json`
reports its own compute time (every metric at once: overlap, HD, both HD95, ASSD, NSD) with
RAYON_NUM_THREADS=1 and 2. torch is limited to the same thread counts for MONAI.
"""
import argparse
import json
import os
import subprocess
import time

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi
import torch
from medpy.metric import binary as mb
from monai.metrics import DiceMetric, compute_average_surface_distance, compute_hausdorff_distance

DIMS = (512, 512, 40)
SPACING = (0.5, 0.5, 3.0)


def blob(rng, centre_mm, radius_mm, lobes, roughness):
    """An irregular blob: union of ellipsoids around a centre, smoothed and thresholded."""
    i, j, k = np.ogrid[: DIMS[0], : DIMS[1], : DIMS[2]]
    x, y, z = i * SPACING[0], j * SPACING[1], k * SPACING[2]
    mask = np.zeros(DIMS, bool)
    for n in range(lobes):
        off = rng.normal(0, radius_mm * 0.35, 3) if n else np.zeros(3)
        semi = radius_mm * rng.uniform(0.6, 1.0, 3)
        c = np.asarray(centre_mm) + off
        mask |= ((x - c[0]) / semi[0]) ** 2 + ((y - c[1]) / semi[1]) ** 2 + ((z - c[2]) / semi[2]) ** 2 <= 1
    noise = ndi.gaussian_filter(rng.normal(0, 1, DIMS), (6, 6, 1))
    field = ndi.gaussian_filter(mask.astype(np.float32), (2, 2, 0.5)) + roughness * noise
    return field > 0.5


def perturbed(rng, gt, sigma_vox, noise):
    """A plausible prediction of `gt`: its smoothed indicator plus smooth unit-variance noise of
    amplitude `noise` near the object only, thresholded at 0.5."""
    field = ndi.gaussian_filter(gt.astype(np.float32), sigma_vox)
    n = ndi.gaussian_filter(rng.normal(0, 1, DIMS), (8, 8, 1))
    band = ndi.gaussian_filter(gt.astype(np.float32), (10, 10, 2)) > 0.01
    field += noise * band * n / n.std()
    return field > 0.5


def pairs(rng):
    """A tumour-sized pair (~20-40 ml) and an organ-sized one (~500+ ml), DSC about 0.8-0.9."""
    centre = (128.0, 140.0, 60.0)
    out = []
    gt = blob(rng, centre, 17.0, 4, 2.0)
    out.append(("tumour", perturbed(rng, gt, (3, 3, 0.7), 0.25), gt))
    gt = blob(rng, centre, 55.0, 3, 1.0)
    out.append(("organ", perturbed(rng, gt, (4, 4, 1), 0.25), gt))
    return out


def best_of(fn, repeat):
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3, value


def medpy_all(pred, gt):
    return mb.dc(pred, gt), mb.hd95(pred, gt, voxelspacing=SPACING), mb.assd(pred, gt, voxelspacing=SPACING)


def monai_all(p, g):
    dice = DiceMetric(include_background=False)
    d = dice(p, g).item()
    h = compute_hausdorff_distance(p, g, percentile=95, spacing=list(SPACING)).item()
    a = compute_average_surface_distance(p, g, symmetric=True, spacing=list(SPACING)).item()
    return d, h, a


def onehot(m):
    t = torch.from_numpy(m.astype(np.float32))
    return torch.stack([1 - t, t])[None]


def delinea(exe, pred, gt, threads, repeat):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([exe, "metrics", "--pred", pred, "--gt", gt, "--json", "--repeat", str(repeat)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delinea", default="target/release/delinea")
    ap.add_argument("--out", default="/tmp/delinea-bench")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for medpy and MONAI")
    ap.add_argument("--delinea-repeat", type=int, default=20)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    affine = np.diag(list(SPACING) + [1.0])
    results = []
    for name, pred, gt in pairs(rng):
        pf, gf = os.path.join(args.out, f"{name}_pred.nii.gz"), os.path.join(args.out, f"{name}_gt.nii.gz")
        nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), pf)
        nib.save(nib.Nifti1Image(gt.astype(np.uint8), affine), gf)
        vml = np.prod(SPACING) / 1000
        row = {"pair": name, "pred_ml": float(pred.sum() * vml), "gt_ml": float(gt.sum() * vml)}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            t_medpy, v_medpy = best_of(lambda: medpy_all(pred, gt), max(1, args.repeat - 1)) if threads == 1 else (None, None)
            p, g = onehot(pred), onehot(gt)
            t_monai, v_monai = best_of(lambda: monai_all(p, g), args.repeat)
            d = delinea(args.delinea, pf, gf, threads, args.delinea_repeat)
            row[f"threads{threads}"] = {"medpy_ms": t_medpy, "monai_ms": t_monai, "delinea_ms": d["compute_ms"]}
            if threads == 1:
                row["values"] = {"medpy": v_medpy, "monai": v_monai,
                                 "delinea": [d["dsc"], d["hd95"], d["hd95_max"], d["assd"]]}
        results.append(row)
    print(json.dumps(results, indent=1))
    print()
    print(f"{'pair':<8} {'pred ml':>8} {'gt ml':>8} {'thr':>3} {'medpy ms':>9} {'MONAI ms':>9} {'delinea ms':>10} "
          f"{'x medpy':>8} {'x MONAI':>8}")
    medpy1 = {}
    for r in results:
        for threads in (1, 2):
            t = r[f"threads{threads}"]
            m = t["medpy_ms"] if t["medpy_ms"] is not None else r["threads1"]["medpy_ms"]
            print(f"{r['pair']:<8} {r['pred_ml']:>8.1f} {r['gt_ml']:>8.1f} {threads:>3} {m:>9.1f} {t['monai_ms']:>9.1f} "
                  f"{t['delinea_ms']:>10.2f} {m / t['delinea_ms']:>8.1f} {t['monai_ms'] / t['delinea_ms']:>8.1f}")
    print("medpy is single-threaded (timed once, compared with both delinea runs)")


if __name__ == "__main__":
    main()
