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

"rt-utils corrected" is rt-utils with its two geometry rules that differ from the standard
replaced, to show that they account for every voxel it gets wrong: (1) its patient-to-pixel
matrix divides the row direction (along a row: the column index) by PixelSpacing[0], which is
the spacing between rows, and the column direction by PixelSpacing[1]: swapped on anisotropic
pixels (image_helper.get_patient_to_pixel_transformation_matrix); (2) it maps every slice's
points with the one matrix of the first slice, so a slice whose ImagePositionPatient is off the
uniform grid has its points shifted (image_helper.create_series_mask_from_contour_sequence).
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


def rt_utils_corrected(series, rtstruct, reference):
    """rt-utils with PixelSpacing read in its standard order and each slice mapped from its own
    position (see the module's docstring); everything else is rt-utils' own."""
    from rt_utils import image_helper as h

    original = (h.get_patient_to_pixel_transformation_matrix, h.create_series_mask_from_contour_sequence)

    def matrix(series_data, first=None):
        first = first or series_data[0]
        m = original[0](series_data)
        between_rows, between_columns = (float(v) for v in first.PixelSpacing)
        linear = m[:3, :3].astype(float)
        linear[0] *= between_rows / between_columns  # along a row: divide by the column spacing
        linear[1] *= between_columns / between_rows
        m[:3, :3] = linear
        m[:3, 3] = np.array(first.ImagePositionPatient, dtype=float).dot(-linear.T)
        return m

    def series_mask(series_data, contour_sequence):
        mask = h.create_empty_series_mask(series_data)
        for i, one in enumerate(series_data):
            data = h.get_slice_contour_data(one, contour_sequence)
            if len(data):
                mask[:, :, i] = h.get_slice_mask_from_slice_contour_data(one, data, matrix(series_data, one))
        return mask

    h.get_patient_to_pixel_transformation_matrix, h.create_series_mask_from_contour_sequence = matrix, series_mask
    try:
        return rt_utils(series, rtstruct, reference)
    finally:
        h.get_patient_to_pixel_transformation_matrix, h.create_series_mask_from_contour_sequence = original


def best_order(got, want):
    """rt-utils' slice order is ascending along the normal; the series' may be the reverse."""
    return min(counts(got, want), counts(got[::-1], want), key=lambda c: c["missing"] + c["extra"])


def main(series, mask_path, rtstruct, out):
    reference = series_image(series)
    want = on_grid(mask_path, reference)
    result = {"mask_voxels": int(want.sum())}
    result["plastimatch"] = counts(plastimatch(series, rtstruct, reference), want)
    result["rt-utils"] = best_order(rt_utils(series, rtstruct, reference), want)
    result["rt-utils corrected"] = best_order(rt_utils_corrected(series, rtstruct, reference), want)
    print(json.dumps(result))
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])
