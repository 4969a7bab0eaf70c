"""Bounded concurrent-load test of ``skcxr serve`` on loopback, answers verified.

The app serves a classifier on a pretrained backbone (efficientnet_lite0 with
ImageNet weights, the last block fine-tuned) and a PaDiM anomaly detector under
waitress, in this process, with 1, 4 and 8 server threads in turn. For every
thread count, 16 client threads send ``/api/predict`` requests and then
``/api/explain`` requests (Grad-CAM and occlusion), each with one of the
shipped real chest X-rays. Every answer is compared with the answer a single
client got for the same image and route (probabilities and anomaly score
within 1e-6, heatmaps pixel for pixel): a wrong answer counts as an error,
like a failed request. Reported per thread count: errors (must be 0), p50 /
p95 latency and requests per second, and the throughput relative to one
server thread, measured side by side in one run; then RSS after the runs
relative to RSS after the warm-up, and the hooks on the network (one capture
hook per explained layer, kept; none added per request).

Run: ``python benchmarks/bench_serve.py [--requests 48] [--clients 16]``
"""

import argparse
import io
import json
import os
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from sklearn.pipeline import Pipeline

from skcxr import ImageLoader, ReconstructionAnomalyDetector, TransferClassifier
from skcxr.datasets import load_sample_images, make_chest_xrays
from skcxr.serve import create_app

SERVER_THREADS = (1, 4, 8)
ROUTES = (
    "/api/predict",
    "/api/explain?method=grad_cam&layer=heatmap",
    "/api/explain?method=occlusion&layer=heatmap",
)


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def multipart(path):
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        content = f.read()
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{os.path.basename(path)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def hooks(module):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in module.modules())


def answer(route, body):
    """The numbers a route returned: probabilities and anomaly score, or pixels."""
    if route == "/api/predict":
        result = json.loads(body)["results"][0]
        values = list(result["probabilities"].values()) + [result["anomaly_score"]]
        return np.array(values)
    return np.asarray(Image.open(io.BytesIO(body)), dtype=np.float64)


def models():
    X, y = make_chest_xrays(
        90, classes=("normal", "bacteria", "virus"), size=64, random_state=0
    )
    classifier = TransferClassifier(
        backbone="efficientnet_lite0", trainable=1, max_epochs=2, random_state=0
    ).fit(X, y)
    detector = ReconstructionAnomalyDetector(random_state=0).fit(X[y == "normal"])
    return (
        Pipeline([("load", ImageLoader(size=64)), ("model", classifier)]),
        Pipeline([("load", ImageLoader(size=64)), ("model", detector)]),
    )


def main():
    from waitress.server import create_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="per route")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    model, detector = models()
    module = model[-1].module_
    app = create_app(model, detector=detector)
    paths, _ = load_sample_images()
    bodies = [multipart(p) for p in paths]

    def call(base, route, i):
        body, content_type = bodies[i % len(bodies)]
        request = urllib.request.Request(
            base + route, data=body, headers={"Content-Type": content_type}
        )
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return time.perf_counter() - start, answer(route, response.read())
        except OSError:
            return time.perf_counter() - start, None

    rows, rss_warm = {}, None
    expected = None
    for threads in SERVER_THREADS:
        server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{server.effective_port}"
        if expected is None:  # one client, one request at a time
            expected = {
                (route, i): call(base, route, i)[1]
                for route in ROUTES
                for i in range(len(bodies))
            }
            rss_warm = rss_mib()
        with ThreadPoolExecutor(args.clients) as clients:
            for route in ROUTES:
                start = time.perf_counter()
                results = list(
                    clients.map(
                        lambda i, r=route, b=base: call(b, r, i),
                        range(args.requests),
                    )
                )
                wall = time.perf_counter() - start
                wrong = sum(
                    got is None
                    or got.shape != expected[route, i % len(bodies)].shape
                    or not np.allclose(
                        got, expected[route, i % len(bodies)], rtol=1e-6, atol=1e-6
                    )
                    for i, (_, got) in enumerate(results)
                )
                latency = np.array([t for t, _ in results]) * 1000
                rows[threads, route] = (
                    wrong,
                    np.percentile(latency, 50),
                    np.percentile(latency, 95),
                    args.requests / wall,
                )
        server.close()

    print(
        f"{args.requests} requests per route from {args.clients} clients; an "
        "error is a failed request or an answer that differs from one client's"
    )
    print(
        f"{'threads':>7s}  {'route':44s} {'errors':>6s} {'p50 ms':>8s} "
        f"{'p95 ms':>8s} {'req/s':>7s} {'vs 1':>6s}"
    )
    for (threads, route), (wrong, p50, p95, rate) in rows.items():
        ratio = rate / rows[1, route][3]
        print(
            f"{threads:7d}  {route:44s} {wrong:6d} {p50:8.1f} {p95:8.1f} "
            f"{rate:7.1f} {ratio:6.2f}"
        )
    rss_end = rss_mib()
    print(
        f"RSS after warm-up {rss_warm:.0f} MiB, after the runs {rss_end:.0f} MiB "
        f"(ratio {rss_end / rss_warm:.3f}); hooks on the network: {hooks(module)} "
        "(the Grad-CAM layer's capture hook)"
    )


if __name__ == "__main__":
    main()
