"""Write tiny NIfTI fixtures with nibabel and record what nibabel reads back from them.

Run: python bench/io/make_fixtures.py   (needs nibabel and numpy; see bench/io/README.md)
Writes tests/fixtures/nifti/*.nii[.gz] and tests/fixtures/nifti/nibabel.json, which
tests/e2e/volume_io.rs compares delinea's reader against.
"""
import json
import pathlib

import nibabel as nib
import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "nifti"
OUT.mkdir(parents=True, exist_ok=True)
shape = (3, 4, 5)
base = np.arange(np.prod(shape)).reshape(shape, order="F")


def save(name, data, affine=None, *, qform=None, sform=None, slope=None, inter=None, big=False, zooms=None):
    hdr = nib.Nifti1Header(endianness=">" if big else "<")
    img = nib.Nifti1Image(data, affine, header=hdr)
    if zooms is not None:
        img.header.set_zooms(zooms)
    if qform is not None:
        img.set_qform(qform[0], code=qform[1])
    if sform is not None:
        img.set_sform(sform[0], code=sform[1])
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
        img.header.set_data_dtype(data.dtype)
    path = OUT / name
    nib.save(img, path)
    back = nib.load(path)
    fdata = back.get_fdata()
    return name, {
        "shape": list(back.shape),
        "zooms": [float(z) for z in back.header.get_zooms()[:3]],
        "affine": back.affine.tolist(),
        "axcodes": "".join(nib.aff2axcodes(back.affine)),
        "dtype": str(back.get_data_dtype().newbyteorder("=")),
        "sum": float(np.nansum(fdata)),
        "first": float(fdata.reshape(-1, order="F")[0]),
        "last": float(fdata.reshape(-1, order="F")[-1]),
        "at_1_2_3": float(fdata[1, 2, 3, ...].reshape(-1)[0]),
    }


theta = np.deg2rad(25)
rot = np.array([[np.cos(theta), -np.sin(theta), 0, 10], [np.sin(theta), np.cos(theta), 0, -20], [0, 0, 1, 30], [0, 0, 0, 1]])
rot_scaled = rot @ np.diag([0.8, 0.8, 3.0, 1.0])
results = dict(
    [
        save("int16_big_scaled.nii", base.astype(">i2"), np.diag([0.5, 0.5, 3.0, 1.0]), slope=0.5, inter=-7.0, big=True),
        save("uint16.nii.gz", (base * 1000).astype(np.uint16), np.diag([1.0, 1.0, 2.0, 1.0])),
        save("float64.nii", base.astype(np.float64) / 3.0, np.diag([1.0, 2.0, 3.0, 1.0])),
        save("int64.nii", base.astype(np.int64) - 30, np.eye(4)),
        save("uint32_big.nii", base.astype(">u4"), np.eye(4), big=True),
        save("int8.nii", (base - 30).astype(np.int8), np.eye(4)),
        save("qform_only_rotated.nii", base.astype(np.float32), None, qform=(rot_scaled, 1), sform=(None, 0)),
        save("no_xform.nii", base.astype(np.float32), None, qform=(None, 0), sform=(None, 0), zooms=(0.7, 0.9, 2.5)),
        save("singleton_4d.nii", base.astype(np.float32)[..., None], np.diag([1.0, 1.0, 1.0, 1.0])),
        save("sform_sheared.nii", base.astype(np.float32), np.array([[1, 0.2, 0, 5], [0, 1, 0, 6], [0, 0, 2, 7], [0, 0, 0, 1.0]])),
        save("mask_float.nii.gz", (base % 4 == 0).astype(np.float32), np.diag([0.5, 0.5, 3.0, 1.0])),
    ]
)
(OUT / "nibabel.json").write_text(json.dumps({"nibabel": nib.__version__, "numpy": np.__version__, "files": results}, indent=1))
print(json.dumps(results, indent=1))
