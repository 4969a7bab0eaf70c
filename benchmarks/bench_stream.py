"""Streaming from files vs the in-memory path: peak memory and throughput.

The workload of the streaming goal: fit a frozen-backbone
``TransferClassifier`` (EfficientNet-Lite0, ImageNet weights, head trained on
the pooled features) and embed the same files with ``CNNEmbedder``, at
224 x 224 pixels, on ``N`` PNG files (256 x 256 8-bit grayscale: the 16 sample
radiographs with a little pixel noise, each file distinct).

* in-memory: ``ImageLoader(size=224, n_jobs=J).transform(paths)`` (timed
  apart as the loading time), then ``fit(images, y)`` and
  ``transform(images)``;
* streaming: ``fit(paths, y)`` and ``transform(paths)`` with
  ``loader=ImageLoader(size=224, n_jobs=J)``: ``J`` DataLoader worker
  processes decode one batch at a time while the network runs.

Each path runs in a fresh subprocess that first warms up twice on 64 files
(imports, weights, allocator pools, worker start-up), with glibc's mmap
threshold fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``) so that freed batch
buffers go back to the system instead of fragmenting the heap; the memory
figure is the growth of the peak resident set (``ru_maxrss``) of the main
process (the decoding workers hold a batch or two each) during the measured
run,
compared with the size of the in-memory float32 array of the same images
(``N x 224 x 224 x 4`` bytes). The throughput ratio compares images per
second of the streaming run with those of the in-memory run *excluding* its
loading time (the speed goal), and *including* it.

Run::

    python benchmarks/bench_stream.py            # N = 4000
    python benchmarks/bench_stream.py 1000       # N = 1000
    python benchmarks/bench_stream.py 200 --workers 1
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
from skcxr import CNNEmbedder, ImageLoader, TransferClassifier

mode, root, n, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
paths = [f"{root}/{i:05d}.png" for i in range(n)]
y = np.array(["normal", "pneumonia"] * n)[:n]
loader = ImageLoader(size=224, n_jobs=workers)
kw = dict(max_epochs=5, batch_size=64, device="cpu", random_state=0)


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(paths, y):
    t0 = time.perf_counter()
    if mode == "memory":
        X = loader.transform(paths)
    else:
        X = paths
    t1 = time.perf_counter()
    clf = TransferClassifier(loader=loader, **kw).fit(X, y)
    t2 = time.perf_counter()
    emb = CNNEmbedder(loader=loader, batch_size=64, device="cpu").fit(X)
    Z = emb.transform(X)
    t3 = time.perf_counter()
    assert Z.shape[0] == len(paths) and clf.used_feature_cache_
    return t1 - t0, t2 - t1, t3 - t2


run(paths[:64], y[:64])  # warm-up, twice: the process reaches its steady state
run(paths[:64], y[:64])
base = peak()
load, fit, embed = run(paths, y)
print(json.dumps({"load": load, "fit": fit, "embed": embed,
                  "peak_growth": peak() - base, "threads": torch.get_num_threads()}))
"""


def write_files(folder, n, side=256, random_state=0):
    """``n`` distinct 8-bit grayscale PNGs: the 16 sample radiographs + noise."""
    from skcxr import ImageLoader
    from skcxr.datasets import load_sample_images

    rng = np.random.default_rng(random_state)
    sample, _ = load_sample_images()
    base = (ImageLoader(size=side).transform(sample) * 255).astype(np.int16)
    paths = []
    for i in range(n):
        noise = rng.integers(-3, 4, size=(side, side), dtype=np.int16)
        pixels = np.clip(base[i % len(base)] + noise, 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"{i:05d}.png")
        Image.fromarray(pixels).save(path, compress_level=6)
        paths.append(path)
    return paths


def measure(mode, folder, n, workers):
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, folder, str(n), str(workers)],
        capture_output=True,
        text=True,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"},
    )
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=4000, help="files")
    parser.add_argument("--workers", type=int, default=1, help="decoding workers")
    args = parser.parse_args(argv)
    n = args.n
    array = n * 224 * 224 * 4
    print(
        f"{n} PNG files (256 px -> 224 px), {args.workers} decoding worker(s), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        write_files(folder, n)
        print(f"wrote the files in {time.perf_counter() - t:.0f} s", flush=True)
        results = {m: measure(m, folder, n, args.workers) for m in ("memory", "stream")}
    mem, st = results["memory"], results["stream"]
    for name, r in results.items():
        print(
            f"{name:>7}: load {r['load']:6.1f} s  fit {r['fit']:6.1f} s  embed "
            f"{r['embed']:6.1f} s  peak RSS growth {r['peak_growth'] / 1e6:7.1f} MB"
        )
    compute = mem["fit"] + mem["embed"]
    streamed = st["fit"] + st["embed"]
    print(f"in-memory float32 images: {array / 1e6:.1f} MB")
    print(
        f"memory ratio (streaming peak growth / float32 array): "
        f"{st['peak_growth'] / array:.3f}  (in-memory path: "
        f"{mem['peak_growth'] / array:.3f})"
    )
    print(
        f"throughput ratio streaming / in-memory: {compute / streamed:.2f} "
        f"excluding its loading time, {(compute + mem['load']) / streamed:.2f} "
        "including it"
    )


if __name__ == "__main__":
    main()
