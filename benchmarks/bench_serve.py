"""Bounded load test of ``skcxr serve`` on loopback.

The app runs under waitress in this process (4 threads), so the network's hooks
and the process's memory can be inspected. 8 client threads send 200
``/api/predict`` requests, then 50 ``/api/explain`` requests, each with one of
the shipped real chest X-rays. Reported: errors (must be 0), p50 / p95
latency, requests per second, RSS after the run relative to RSS after a
warm-up of 20 requests, and the forward/backward hooks left on the network
(must be none).

Run: ``python benchmarks/bench_serve.py``
"""

import os
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.pipeline import Pipeline

from skcxr import ImageLoader, TransferClassifier
from skcxr.datasets import load_sample_images, make_chest_xrays
from skcxr.serve import create_app

N_CLIENTS, N_PREDICT, N_EXPLAIN, N_WARMUP = 8, 200, 50, 20


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


def main():
    from waitress.server import create_server

    X, y = make_chest_xrays(90, size=64, random_state=0)
    classifier = TransferClassifier(
        backbone="small_cnn",
        weights=None,
        trainable="all",
        max_epochs=3,
        random_state=0,
    ).fit(X, y)
    model = Pipeline([("load", ImageLoader(size=64)), ("model", classifier)])
    server = create_server(create_app(model), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    paths, _ = load_sample_images()
    bodies = [multipart(p) for p in paths]

    def call(i, route):
        body, content_type = bodies[i % len(bodies)]
        request = urllib.request.Request(
            base + route, data=body, headers={"Content-Type": content_type}
        )
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                ok = response.status == 200
        except OSError:
            ok = False
        return time.perf_counter() - start, ok

    hooks_before = hooks(classifier.module_)
    with ThreadPoolExecutor(N_CLIENTS) as clients:
        list(clients.map(lambda i: call(i, "/api/predict"), range(N_WARMUP)))
        rss_warm = rss_mib()
        for route, n in (("/api/predict", N_PREDICT), ("/api/explain", N_EXPLAIN)):
            start = time.perf_counter()
            results = list(clients.map(lambda i, r=route: call(i, r), range(n)))
            wall = time.perf_counter() - start
            latency = np.array([t for t, _ in results]) * 1000
            errors = sum(not ok for _, ok in results)
            print(
                f"{route:13s} {n:4d} requests, {N_CLIENTS} clients: {errors} errors, "
                f"p50 {np.percentile(latency, 50):7.1f} ms, "
                f"p95 {np.percentile(latency, 95):7.1f} ms, {n / wall:6.1f} req/s"
            )
    rss_end = rss_mib()
    print(
        f"RSS after warm-up {rss_warm:.0f} MiB, after the run {rss_end:.0f} MiB "
        f"(ratio {rss_end / rss_warm:.3f})"
    )
    print(
        f"hooks on the network: {hooks_before} before, {hooks(classifier.module_)} after"
    )
    server.close()


if __name__ == "__main__":
    main()
