"""Reference values for engine/src/metrics tests, from medpy, MONAI and scipy.

Builds the same small masks as engine/src/metrics/tests.rs (every mask is defined by
construction below, with the same integer formulas on both sides) and prints each peer's
values. Run: see bench/metrics/README.md (a venv with medpy==0.5.2, monai, torch, scipy).

Arrays are indexed [i, j, k] like delinea's voxels (i fastest on disk); spacing (si, sj, sk) mm.
"""
import json
import sys
import warnings

import numpy as np
import scipy
import scipy.stats
import torch
import monai
from medpy.metric import binary as mb
from monai.metrics import (compute_average_surface_distance, compute_hausdorff_distance,
                           compute_surface_dice)

warnings.filterwarnings("ignore")


def grid(dims):
    return np.indices(dims)  # i, j, k


def box(dims, lo, hi):
    """Voxels with lo <= (i, j, k) < hi."""
    i, j, k = grid(dims)
    return ((i >= lo[0]) & (i < hi[0]) & (j >= lo[1]) & (j < hi[1]) & (k >= lo[2]) & (k < hi[2]))


def ellipsoid(dims, spacing, centre, semi_mm):
    """Voxels with sum(((x - c) * s / a)^2) <= 1, x the voxel index, c in voxels, a in mm."""
    i, j, k = grid(dims)
    acc = np.zeros(dims)
    for x, c, s, a in zip((i, j, k), centre, spacing, semi_mm):
        acc = acc + ((x - c) * s / a) ** 2
    return acc <= 1.0


def cases():
    """(name, dims, spacing, pred, gt). Keep in sync with tests.rs `case()`."""
    out = []
    d, s = (20, 18, 8), (0.5, 0.5, 3.0)
    out.append(("boxes_aniso", d, s, box(d, (6, 3, 1), (15, 11, 5)), box(d, (4, 5, 2), (12, 13, 6))))
    d, s = (24, 24, 24), (1.0, 1.0, 1.0)
    out.append(("sphere_vs_box", d, s, box(d, (5, 6, 4), (18, 19, 17)),
                ellipsoid(d, s, (11.5, 12.0, 11.0), (7.0, 7.0, 7.0))))
    d, s = (10, 12, 5), (0.8, 0.8, 2.5)
    out.append(("border", d, s, box(d, (2, 3, 0), (10, 9, 5)), box(d, (0, 0, 0), (6, 12, 3))))
    d, s = (9, 9, 9), (0.5, 0.5, 3.0)
    out.append(("single_voxels", d, s, box(d, (6, 1, 5), (7, 2, 6)), box(d, (2, 3, 4), (3, 4, 5))))
    d, s = (40, 36, 10), (0.5, 0.5, 3.0)
    pred = ellipsoid(d, s, (22.0, 17.0, 4.6), (7.0, 7.0, 10.0)) | box(d, (2, 2, 8), (4, 4, 10))
    out.append(("ellipsoids_aniso", d, s, pred, ellipsoid(d, s, (20.0, 18.0, 5.0), (8.0, 6.0, 9.0))))
    d, s = (24, 24, 12), (1.0, 1.0, 2.0)
    shell = ellipsoid(d, s, (12.0, 12.0, 6.0), (8.0, 8.0, 8.0)) & ~ellipsoid(d, s, (12.0, 12.0, 6.0), (4.0, 4.0, 4.0))
    out.append(("shell", d, s, ellipsoid(d, s, (12.5, 11.0, 6.0), (7.0, 7.0, 9.0)), shell))
    return out


def monai_values(pred, gt, spacing, tau):
    def onehot(m):
        t = torch.from_numpy(m.astype(np.float32))
        return torch.stack([1 - t, t])[None]
    p, g = onehot(pred), onehot(gt)
    sp = list(spacing)
    return {
        "hd": compute_hausdorff_distance(p, g, spacing=sp).item(),
        "hd95_max": compute_hausdorff_distance(p, g, percentile=95, spacing=sp).item(),
        "assd": compute_average_surface_distance(p, g, symmetric=True, spacing=sp).item(),
        "asd_pred_to_gt": compute_average_surface_distance(p, g, symmetric=False, spacing=sp).item(),
        "nsd": compute_surface_dice(p, g, class_thresholds=[tau], spacing=sp).item(),
    }


def medpy_values(pred, gt, spacing):
    return {
        "dsc": mb.dc(pred, gt),
        "hd": mb.hd(pred, gt, voxelspacing=spacing),
        "hd95": mb.hd95(pred, gt, voxelspacing=spacing),
        "assd_medpy": mb.assd(pred, gt, voxelspacing=spacing),
        "asd_pred_to_gt": mb.asd(pred, gt, voxelspacing=spacing),
        "asd_gt_to_pred": mb.asd(gt, pred, voxelspacing=spacing),
    }


def wilcoxon_data():
    """Paired samples built from integer formulas (tests.rs `wilcoxon_data()`)."""
    out = {}
    # n = 10, no ties, no zeros -> exact distribution.
    x = [(i * 37 % 101) / 10 for i in range(1, 11)]
    y = [(i * 53 % 97) / 10 + 0.05 for i in range(1, 11)]
    out["no_ties_n10"] = (x, y)
    # n = 20, no ties, no zeros -> exact.
    x = [(i * 37 % 101) / 10 for i in range(1, 21)]
    y = [(i * 53 % 97) / 10 + 0.05 + i / 1000 for i in range(1, 21)]
    out["no_ties_n20"] = (x, y)
    # n = 16 with 3 zeros and ties -> normal approximation (n > 13).
    d = [3, -1, 0, 2, 2, -4, 5, 0, 1, -2, 6, 7, 0, 3, 8, 9]
    out["ties_zeros_n16"] = ([10 + v for v in d], [10] * len(d))
    # n = 9 with 2 zeros and ties -> exact permutation test (n <= 13).
    d = [2, -1, 0, 3, 3, 5, 0, -2, 4]
    out["ties_zeros_n9"] = ([5 + v for v in d], [5] * len(d))
    # n = 60, no ties -> normal approximation (n > 50).
    x = [(i * 37 % 101) / 10 for i in range(1, 61)]
    y = [(i * 53 % 97) / 10 + 0.05 + i / 1000 for i in range(1, 61)]
    out["no_ties_n60"] = (x, y)
    return out


def main():
    print(f"# numpy {np.__version__}, scipy {scipy.__version__}, torch {torch.__version__}, "
          f"monai {monai.__version__}, medpy 0.5.2, python {sys.version.split()[0]}")
    tau = 2.0
    result = {"surface": {}, "wilcoxon": {}}
    for name, dims, spacing, pred, gt in cases():
        result["surface"][name] = {
            "voxels": [int(pred.sum()), int(gt.sum())],
            "medpy": medpy_values(pred, gt, spacing),
            "monai": monai_values(pred, gt, spacing, tau),
        }
    # Empty masks: what MONAI says (medpy raises).
    d, s = (10, 12, 5), (0.8, 0.8, 2.5)
    b, e = box(d, (2, 3, 1), (5, 6, 3)), np.zeros(d, bool)
    result["empty_monai"] = {"pred_empty": monai_values(e, b, s, tau), "gt_empty": monai_values(b, e, s, tau),
                             "both_empty": monai_values(e, e, s, tau)}
    for name, (x, y) in wilcoxon_data().items():
        r = {}
        for zm in ("wilcox", "pratt", "zsplit"):
            w = scipy.stats.wilcoxon(x, y, zero_method=zm)
            r[zm] = [float(w.statistic), float(w.pvalue)]
        w = scipy.stats.wilcoxon(x, y, correction=True, method="asymptotic")
        r["wilcox_asymptotic_corrected"] = [float(w.statistic), float(w.pvalue)]
        w = scipy.stats.wilcoxon(x, y, method="asymptotic")
        r["wilcox_asymptotic"] = [float(w.statistic), float(w.pvalue)]
        result["wilcoxon"][name] = r
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
