"""Times ONNX Runtime (CPU provider) on an ONNX model delinea exported: one inference batch
[batch, 1, size, size] of random slices, `reps` timed runs after one warm-up, `threads` intra-op
threads (inter-op 1, sequential execution). Prints one `json: {...}` line (median and minimum)."""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((a.batch, 1, a.size, a.size)).astype(np.float32)
    session.run(["logits"], {"slices": x})
    times = []
    for _ in range(max(a.reps, 1)):
        start = time.perf_counter()
        session.run(["logits"], {"slices": x})
        times.append(time.perf_counter() - start)
    times.sort()
    print("json: " + json.dumps({"impl": "onnxruntime", "version": ort.__version__, "threads": a.threads,
                                 "batch": a.batch, "size": a.size, "reps": a.reps,
                                 "infer_median_s": times[len(times) // 2], "infer_min_s": times[0]}))


if __name__ == "__main__":
    main()
