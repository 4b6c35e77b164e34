"""The measurements of bench/serve/run.sh against a running `delinea serve`."""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def call(url, method="GET", body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        data = r.read()
    return time.perf_counter() - start, data


def wait_ready(url):
    for _ in range(600):
        try:
            stats = json.loads(call(url + "/datastore/")[1])
            if stats["total"] > 0:
                return stats
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def next_sample_ms(url, n=50):
    times = []
    for i in range(n):
        body = json.dumps({"client_id": f"bench-{i}"}).encode()
        t, _ = call(url + "/activelearning/stdr", "POST", body, {"content-type": "application/json"})
        times.append(t * 1000)
    return times


def infer_s(url, image):
    return call(url + f"/infer/delinea?image={image}", "POST")[0]


def predict_s(delinea, model, scan, out):
    start = time.perf_counter()
    subprocess.run([delinea, "predict", "--model", str(model), "--input", str(scan), "--out", str(out),
                    "--device", "cpu", "--quiet"], check=True)
    return time.perf_counter() - start


def label(url, work, image):
    label = (Path(work) / "cohort/C2/labels/C2-onc" / f"{image}.nii.gz").read_bytes()
    b = "----bench$"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{"client_id": "bench"}}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="label"; filename="l.nii.gz"\r\n\r\n').encode()
    body += label + f"\r\n--{b}--\r\n".encode()
    call(url + f"/datastore/label?image={image}&tag=final", "PUT", body,
         {"content-type": f"multipart/form-data; boundary={b}"})


def concurrent_ms(url, n=20):
    times, lock = [], threading.Lock()

    def one(i):
        t, _ = call(url + ("/info/" if i % 2 else "/datastore/?output=all"))
        with lock:
            times.append(t * 1000)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def fresh(url, delinea, work, out):
    """Generation 1 (10 steps) predicts an unlabelled scan for /infer; predict with the same model."""
    wait_ready(url)
    call(url + "/train/delinea", "POST", b"{}", {"content-type": "application/json"})
    while True:
        try:
            call(url + "/train/?check_if_running=true")
            time.sleep(0.2)
        except urllib.error.HTTPError:
            break
    result = json.loads(Path(out).read_text())
    cases = sorted(os.listdir(Path(work) / "ds/cases"))
    infer = [infer_s(url, c) for c in cases[-3:]]
    scan = next((Path(work) / "ds/processed").glob(f"{cases[-1]}.*"))
    model = Path(work) / "ds/state/models/gen-0001"
    predict = min(predict_s(delinea, model, scan, Path(work) / "pred") for _ in range(3))
    result["infer_fresh_s"], result["predict_gen1_s"] = min(infer), predict
    print(json.dumps({k: result[k] for k in ("infer_fresh_s", "predict_gen1_s")}, indent=1))
    Path(out).write_text(json.dumps(result, indent=1))


def main(url, delinea, work, out):
    stats = wait_ready(url)
    result = {"images": stats["total"], "cpus": os.cpu_count(), "load": os.getloadavg()}
    al = next_sample_ms(url)
    result["activelearning_ms"] = {"median": statistics.median(al), "max": max(al), "n": len(al)}
    image = "C2-0001" if (Path(work) / "ds/cases/C2-0001").exists() else sorted(os.listdir(Path(work) / "ds/cases"))[0]
    scan = next((Path(work) / "ds/processed").glob(f"{image}.*"))
    cached = min(infer_s(url, image) for _ in range(5))
    predict = min(predict_s(delinea, Path(work) / "model", scan, Path(work) / "pred") for _ in range(3))
    result["infer_cached_s"], result["predict_s"] = cached, predict
    label(url, work, image)
    call(url + "/train/delinea", "POST", b"{}", {"content-type": "application/json"})
    time.sleep(2)
    during = concurrent_ms(url)
    result["concurrent_during_training_ms"] = {"max": max(during), "median": statistics.median(during), "n": len(during)}
    call(url + "/train/", "DELETE")
    print(json.dumps(result, indent=1))
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if "--fresh" in sys.argv:
        fresh(*sys.argv[1:5])
    else:
        main(*sys.argv[1:5])
