"""Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/seed-*: the repository's
fixtures and ../shared/data, in each target's input layout (delinea::fuzz says which: a mode
byte first for the targets with modes, files cut by `--next-file--`). Run once from the
repository root, with target/release/delinea and the plugins built (`cargo build --release
--workspace`) and torch and SimpleITK installed; the seeds it wrote are committed.
"""

import gzip
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared" / "data"
CORPUS = ROOT / "fuzz" / "corpus"
NEXT = b"--next-file--"
DELINEA = ROOT / "target" / "release" / "delinea"


def put(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def zip_form(path):
    """A PyTorch zip as the harness's entry list (mode byte 1)."""
    with zipfile.ZipFile(path) as z:
        pieces = [i.filename.encode() + b"\n" + z.read(i) for i in z.infolist()]
    return b"\x01" + NEXT.join(pieces)


def nifti():
    files = sorted((FIX / "nifti").glob("*.nii*")) + sorted(SHARED.glob("nifti/*.nii*"))
    for f in files:
        data = f.read_bytes()
        if f.suffix == ".gz":
            put("nifti", f.name + "-raw", b"\x02" + data)
            plain = gzip.decompress(data)
            if len(plain) <= 1 << 16:
                put("nifti", f.name + "-inflated", b"\x01" + plain)
        else:
            put("nifti", f.name, b"\x00" + data)
            put("nifti", f.name + "-gz", b"\x01" + data)


def dicom():
    d = FIX / "dicom"
    for f in sorted(d.glob("*.dcm")):
        put("dicom", f.name, f.read_bytes())
    for folder in sorted(p for p in d.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.dcm"))[:4]
        put("dicom", folder.name, NEXT.join(f.read_bytes() for f in files))
    shared = sorted(SHARED.glob("dicom-mr-series/*.dcm"))
    if shared:
        put("dicom", "shared-" + shared[1].name, shared[1].read_bytes())


def rtstruct():
    import SimpleITK as sitk

    sphere = FIX / "dicom" / "sphere"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(sphere)))
        image = reader.Execute()
        mask = sitk.Cast(image > 0.5 * sitk.GetArrayFromImage(image).max(), sitk.sitkUInt8)
        sitk.WriteImage(mask, str(tmp / "mask.nii.gz"))
        for fmt in ["rtstruct", "seg"]:
            out = tmp / f"out.{fmt}.dcm"
            subprocess.run(
                [DELINEA, "convert", tmp / "mask.nii.gz", out, "--reference", sphere, "--format", fmt, "--quiet"],
                check=True,
            )
            put("rtstruct", f"sphere-{fmt}", out.read_bytes())
    put("rtstruct", "not-an-image", (FIX / "dicom" / "not-an-image" / "RS.dcm").read_bytes())


def nrrd():
    for f in sorted((FIX / "nrrd").glob("*.nrrd")):
        put("nrrd", f.name, f.read_bytes())


def configs():
    put("job", "department", (ROOT / "examples" / "jobs" / "department.json").read_bytes())
    put("job", "minimal", b'{"format": "delinea-job", "model": "m", "query": {"budget": "3"}}')
    for f in ["demo-2stage.json", "experiment-all.json", "source-cpu.json"]:
        put("experiment_config", f, (ROOT / "examples" / f).read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [DELINEA, "synth", "--out", tmp, "--quiet", "--centres", "2", "--cases-per-centre", "2",
             "--raters", "2", "--multi-rater-cases", "1", "--size", "16,16,8"],
            check=True,
        )
        put("manifest", "synth", (pathlib.Path(tmp) / "manifest.json").read_bytes())


def journal():
    lines = [
        {"event": "started", "kind": "scan", "input": "a.nii.gz", "time": "2026-12-07T08:00:02Z"},
        {"event": "done", "kind": "scan", "input": "a.nii.gz", "time": "2026-12-07T08:00:09Z",
         "case": "a", "model": 0, "latency_s": 9.0, "infer_s": 6.5},
        {"event": "failed", "kind": "scan", "input": "b.nii.gz", "time": "2026-12-07T08:01:00Z",
         "reason": "corrupt or truncated gzip data"},
        {"event": "done", "kind": "label", "input": "a_R1.nii.gz", "time": "2026-12-07T08:05:00Z",
         "case": "a", "stored": "labels/a_R1.nii.gz"},
        {"event": "adapt-started", "kind": "model", "input": "model-1", "time": "2026-12-07T08:06:00Z"},
        {"event": "adapted", "kind": "model", "input": "model-1", "time": "2026-12-07T08:09:00Z",
         "model": 1, "labels": ["labels/a_R1.nii.gz"]},
    ]
    text = "".join(json.dumps(l) + "\n" for l in lines).encode()
    put("journal", "lines", text)
    put("journal", "torn", text[:-20])


def plugins():
    for name in ["margin_diverse", "scaled_finetune"]:
        lib = ROOT / "target" / "release" / f"lib{name}.so"
        with tempfile.TemporaryDirectory() as tmp:
            small = pathlib.Path(tmp) / "small.so"
            section = pathlib.Path(tmp) / "section.bin"
            subprocess.run(["objcopy", "-j", ".delinea_plugin", lib, small], check=True)
            subprocess.run(["objcopy", "-O", "binary", "-j", ".delinea_plugin", lib, section], check=True)
            put("plugin_descriptor", name + "-section", b"\x00" + section.read_bytes())
            put("plugin_descriptor", name + "-elf", b"\x01" + small.read_bytes())


def models():
    import torch

    p = FIX / "pytorch"
    for f in ["state_dict.pth", "legacy.pth", "model.safetensors", "io.safetensors"]:
        put("model_file", f, b"\x00" + (p / f).read_bytes())
    put("model_file", "state_dict.pth-entries", zip_form(p / "state_dict.pth"))
    with tempfile.TemporaryDirectory() as tmp:
        small = pathlib.Path(tmp) / "small.pth"
        torch.save({"state_dict": {"a.weight": torch.ones(2, 3), "a.n": torch.tensor(3)}}, small)
        put("model_file", "small.pth", b"\x00" + small.read_bytes())
        put("model_file", "small.pth-entries", zip_form(small))
    for f in ["centroids.npy", "centroids64.npy", "centroids.pt"]:
        put("references", f, b"\x00" + (p / f).read_bytes())
    put("references", "centroids.pt-entries", zip_form(p / "centroids.pt"))


def multipart():
    b = b"--delinea-fuzz-boundary"
    params = b'Content-Disposition: form-data; name="params"\r\n\r\n{"client_id": "slicer", "label_info": []}\r\n'
    upload = (
        b'Content-Disposition: form-data; name="label"; filename="case.seg.nrrd"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        + (FIX / "nrrd" / "slicer.seg.nrrd").read_bytes()
        + b"\r\n"
    )
    put("multipart", "params-and-file", b + b"\r\n" + params + b + b"\r\n" + upload + b + b"--\r\n")
    put("multipart", "params", b + b"\r\n" + params + b + b"--\r\n")
    put("multipart", "two-files", b + b"\r\n" + upload + b + b"\r\n" + upload + b + b"--\r\n")


if __name__ == "__main__":
    for step in [nifti, dicom, rtstruct, nrrd, configs, journal, plugins, models, multipart]:
        step()
    for t in sorted(CORPUS.iterdir()):
        print(t.name, len(list(t.iterdir())), "seeds", file=sys.stderr)
