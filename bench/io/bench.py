"""NIfTI .nii.gz read and write: delinea against nibabel on the same files, in one run.

Setup (once, outside the repository):  python3 -m venv /tmp/nib && /tmp/nib/bin/pip install nibabel numpy
Run from the repository root:          /tmp/nib/bin/python bench/io/bench.py [--repeat 5]

Both sides read to float32 voxels (nibabel: get_fdata(dtype=float32)) and write float32
.nii.gz, each at its default gzip level (nibabel: zlib level 1; delinea: zlib-rs level 2); the
last column compares the file sizes. Best of N runs each. delinea is timed by
engine/benches/io.rs, built in release; RAYON_NUM_THREADS=1 and 2 are reported separately.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import nibabel as nib
import numpy as np


def make_files(folder):
    rng = np.random.default_rng(0)
    files = {}
    for name, shape, dtype, spacing in [
        ("t1_int16_256x256x40", (256, 256, 40), np.int16, (0.9, 0.9, 4.0)),
        ("t1_int16_512x512x40", (512, 512, 40), np.int16, (0.45, 0.45, 4.0)),
        ("prob_float32_256x256x40", (256, 256, 40), np.float32, (0.9, 0.9, 4.0)),
        ("mask_uint8_512x512x40", (512, 512, 40), np.uint8, (0.45, 0.45, 4.0)),
    ]:
        x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
        head = (x**2 + y**2 < 0.8).astype(np.float32)
        if dtype == np.uint8:
            data = ((x - 0.1) ** 2 + y**2 + z**2 < 0.05).astype(np.uint8)
        else:
            smooth = 800 + 400 * np.sin(3 * x) * np.cos(2 * y) + 200 * z
            data = (head * smooth + rng.normal(0, 30, shape)).astype(dtype)
            if dtype == np.float32:
                data = (data / data.max()).astype(np.float32)
        path = os.path.join(folder, name + ".nii.gz")
        nib.save(nib.Nifti1Image(data, np.diag(list(spacing) + [1.0])), path)
        files[name] = path
    return files


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def nibabel_times(path, out, repeat):
    read = best(lambda: nib.load(path).get_fdata(dtype=np.float32), repeat)
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)

    def write():
        nib.save(nib.Nifti1Image(data, img.affine), out)

    return read, best(write, repeat), os.path.getsize(out)


def delinea_times(paths, repeat, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = ["cargo", "bench", "-q", "-p", "delinea", "--bench", "io", "--", "--repeat", str(repeat)] + paths
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return {json.loads(line)["file"]: json.loads(line) for line in out.splitlines() if line.startswith("{")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        files = make_files(d)
        ours = {t: delinea_times(list(files.values()), args.repeat, t) for t in (1, 2)}
        print(f"nibabel {nib.__version__}, numpy {np.__version__}; best of {args.repeat}; seconds")
        print(f"{'file':28} {'nib read':>9} {'ours 1t':>8} {'ratio':>6} {'ours 2t':>8} {'ratio':>6} | "
              f"{'nib write':>9} {'ours 1t':>8} {'ratio':>6} {'ours 2t':>8} {'ratio':>6} | {'size nib/ours':>13}")
        for name, path in files.items():
            nr, nw, nsize = nibabel_times(path, os.path.join(d, "nib_out.nii.gz"), args.repeat)
            o1, o2 = ours[1][path], ours[2][path]
            print(f"{name:28} {nr:9.4f} {o1['read_s']:8.4f} {o1['read_s']/nr:6.2f} {o2['read_s']:8.4f} {o2['read_s']/nr:6.2f} | "
                  f"{nw:9.4f} {o1['write_s']:8.4f} {o1['write_s']/nw:6.2f} {o2['write_s']:8.4f} {o2['write_s']/nw:6.2f} | "
                  f"{nsize/o1['written_bytes']:13.3f}")


if __name__ == "__main__":
    main()
