"""Reads an RTSTRUCT that delinea wrote back with two tools physicists use, and counts the
voxels each gets wrong against the mask delinea wrote it from.

    python3 readback.py SERIES_DIR MASK.nii.gz RTSTRUCT.dcm OUT.json

- plastimatch (Debian's, the engine behind SlicerRT's conversions): `plastimatch convert
  --input RTSTRUCT --referenced-ct SERIES --output-prefix DIR --prefix-format nii.gz`;
- rt-utils (PyPI): `RTStructBuilder.create_from(SERIES, RTSTRUCT).get_roi_mask_by_name(ROI)`,
  rows × columns × slices in its own slice order (ascending position along the normal).
The mask is resampled (nearest neighbour, an identity transform: the grids are the same) onto
the series as SimpleITK reads it, so every array is in DICOM (slice, row, column) order.
Prints and writes {tool: {"voxels", "missing", "extra"}} plus the mask's voxel count.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def series_image(series):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    return reader.Execute()


def on_grid(path, reference):
    image = sitk.ReadImage(str(path))
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(resampled) > 0


def counts(got, want):
    return {"voxels": int(got.sum()), "missing": int((want & ~got).sum()), "extra": int((got & ~want).sum())}


def plastimatch(series, rtstruct, reference):
    out = Path(tempfile.mkdtemp())
    subprocess.run(["plastimatch", "convert", "--input", str(rtstruct), "--referenced-ct", str(series),
                    "--output-prefix", str(out), "--prefix-format", "nii.gz"],
                   check=True, capture_output=True)
    files = sorted(out.glob("*.nii.gz"))
    return on_grid(files[0], reference)


def rt_utils(series, rtstruct, reference):
    from rt_utils import RTStructBuilder
    rt = RTStructBuilder.create_from(dicom_series_path=str(series), rt_struct_path=str(rtstruct))
    mask = np.transpose(rt.get_roi_mask_by_name(rt.get_roi_names()[0]), (2, 0, 1))
    # rt-utils 1.2.7 allocates Columns x Rows per slice but fills (row, column): on a non-square
    # image it keeps only the first min(Rows, Columns) columns. Put what it gives on the grid.
    n, rows, cols = sitk.GetArrayFromImage(reference).shape
    got = np.zeros((n, rows, cols), dtype=bool)
    r, c = min(rows, mask.shape[1]), min(cols, mask.shape[2])
    got[:, :r, :c] = mask[:, :r, :c]
    return got


def main(series, mask_path, rtstruct, out):
    reference = series_image(series)
    want = on_grid(mask_path, reference)
    result = {"mask_voxels": int(want.sum())}
    result["plastimatch"] = counts(plastimatch(series, rtstruct, reference), want)
    got = rt_utils(series, rtstruct, reference)
    flipped = got[::-1]
    result["rt-utils"] = min(counts(got, want), counts(flipped, want), key=lambda c: c["missing"] + c["extra"])
    print(json.dumps(result))
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])
