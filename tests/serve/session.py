"""A labelling session driven by MONAI Label's own Python client (monailabel 0.8.5), the calls
3D Slicer's MONAILabel module makes, against a running `delinea serve`.

    python3 session.py URL LABELS_DIR OUT.json [--clients A,B] [--train]

LABELS_DIR holds `<image id>.nii.gz` expert labels (0/1). Prints nothing on success but writes
what each call returned to OUT.json; any client error raises (a non-zero exit).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from monailabel.client import MONAILabelClient


def session(url, labels, clients, train):
    tmp = tempfile.mkdtemp()
    seen = {"clients": {}}
    first = MONAILabelClient(url, tmpdir=tmp, client_id=clients[0])
    seen["auth_enabled"] = first.auth_enabled()
    info = first.info()
    seen["info"] = info
    model = next(iter(info["models"]))
    strategy = next(iter(info["strategies"]))
    for name in clients:
        c = MONAILabelClient(url, tmpdir=tmp, client_id=name)
        sample = c.next_sample(strategy, {})
        record = {"sample": sample}
        mask, params = c.infer(model, sample["id"], {"result_extension": ".nrrd", "result_dtype": "uint8"})
        record["infer"] = {"file": mask, "params": params, "bytes": Path(mask).stat().st_size}
        label = Path(labels) / f"{sample['id']}.nii.gz"
        saved = c.save_label(sample["id"], str(label), tag="final",
                             params={"label_info": [{"name": "GTV", "idx": 1}], "model": model})
        record["saved"] = saved
        seen["clients"][name] = record
    seen["datastore"] = first.datastore()
    if train:
        seen["train_running_before"] = first.train_status(check_if_running=True)
        seen["train_start"] = first.train_start(model, {})
        deadline = time.time() + 300
        while first.train_status(check_if_running=True):
            assert time.time() < deadline, "training did not finish in 300 s"
            time.sleep(0.5)
        seen["train_status"] = first.train_status()
        sample = seen["clients"][clients[0]]["sample"]
        mask, params = first.infer(model, sample["id"], {"result_extension": ".nrrd"})
        seen["infer_after"] = {"file": mask, "params": params}
        seen["info_after"] = first.info()
    return seen


if __name__ == "__main__":
    url, labels, out = sys.argv[1:4]
    clients = ["annotator-a"]
    if "--clients" in sys.argv:
        clients = sys.argv[sys.argv.index("--clients") + 1].split(",")
    result = session(url, labels, clients, "--train" in sys.argv)
    Path(out).write_text(json.dumps(result, indent=1, default=str))
