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
    python benchmarks/bench_stream.py --series 1500 6000 --memory-n 3000
    python benchmarks/bench_stream.py 256 --overlap

Frozen-head fit series (``--series``)
-------------------------------------
Peak memory as the number of files grows: ``TransferClassifier(loader=
ImageLoader(size=S, n_jobs=1))`` (frozen EfficientNet-Lite0, ImageNet
weights, 5 head epochs, batches of 64) fitted on ``N`` paths that list 3,000
distinct 512 x 512 grayscale JPEGs again and again, one fresh process per
``N`` (warm-up twice on 64 files), and the in-memory fit
(``loader.transform`` then ``fit``) of ``--memory-n`` files beside it. No
allocator setting: glibc's defaults, as a user runs it. The goal: from 1,500
to 6,000 files the streaming peak grows by less than 15 % of the added
images' float32 size (4,500 x 224 x 224 x 4 B = 903 MB, so < 135 MB).

What grew with the files: the frozen features were kept as one array per
batch and pooling (64 x 1,280 float32, 327 KB) in lists joined at the end,
so the feature pass held every batch's features and then their
concatenation: twice the features. ``stream_map`` (``predict_proba`` and
``transform`` on files) did the same with its outputs. Now the features go
into one float32 ``(n, C)`` array allocated at the first batch, and without
a cache location (``memory=None``) only the pooling the head trains on is
kept (a cache keeps both, so that either ``pooling`` hits it). The
Python/numpy allocations of the fit, traced with ``tracemalloc`` (1,500
files at 32 px, where the network is cheap):

========================================= ========== ========== ==========
bytes per file                            before     buffers    one pooling
========================================= ========== ========== ==========
peak of the feature pass                  20,512     10,951     5,832
kept at its end                           10,256     10,255     5,136
peak of the whole fit (head training)     20,512     11,018     10,950
========================================= ========== ========== ==========

("buffers": preallocated arrays, both poolings; "one pooling": the final
version). For 4,500 more files the fit's traced peak grows by 49 MB instead
of 92 MB. What is left per file is the head's training: the features
(5,120 B) and, during each epoch, the training/validation split's copy of
them (another 5,120 B).

What does not grow (the fixed cost): importing torch (about 0.5 GB
resident before any fit), the network's activations for one batch of 64
images at 224 px (0.71 GB measured for a single forward pass; 0.26 GB for
16 images) and the decoded batches in flight (12.8 MB each, two per worker
ahead of the network). Other candidates do not grow in the main process:
the paths and labels reach the workers by ``fork`` (and are ~100 B a file),
pinned memory is used only with CUDA, and prefetching is two batches per
worker.

Peak RSS growth of the main process during the measured fit (``--series``),
on a 2-core machine shared with other jobs (load average 5 to 12):

===== ======== ============ ============ ============
size  files    before       buffers      one pooling
===== ======== ============ ============ ============
64    1,500    45.5 MB      11.2 MB      0.1 MB
64    6,000    87.2 MB      106.5 MB     65.9 MB
224   1,500    14.4 MB      106.0 MB     29.0 MB
224   6,000    (not run)    (stopped)    73.6 MB
64    3,000                 92.3 MB in memory (its array: 49.2 MB)
===== ======== ============ ============ ============

(6,000 files at 224 px take 12 to 25 minutes of network time on this
machine; two of those runs did not finish within their time limits.) Rise
from 1,500 to 6,000 files: at 224 px, 44.6 MB with one pooling, 0.049 of
the 903 MB the 4,500 added images take as float32 (goal: < 0.15, 135 MB);
at 64 px, 41.7 MB before, 95.3 MB with the buffers, 65.8 MB with one
pooling. These peaks are above a
warm-up whose own peak holds the transient buffers of one batch (0.7 GB at
224 px), so a run's figure depends on how far its worst batch exceeded that
(at 224 px and 1,500 files the "after" run peaked 92 MB higher than the
"before" one, although its traced allocations are 14 MB smaller): the
series shows the size of the growth, the traced table what the change
removed.
Earlier runs at 224 px, measured from another baseline (their figures
include a fixed ~0.5 GB), found 573, 631, 680 and
1,129 MB at 1,500, 3,000, 6,000 and 9,000 files, and 1,056 MB at 6,000 in
another series; the in-memory fit of 3,000 files grew by 1,267 MB.

Decode / inference overlap (``--overlap``)
------------------------------------------
Images per second, in one process run, of decoding alone (what a worker
does, here in the main process), the network alone (pooled features of the
same 64 images again and again), and the frozen-feature pass streaming from
the files with 0 (decoding in turn with the network), 1 and 2 DataLoader
workers. If decoding overlaps the network, streaming runs at the rate of the
slower stage, not at the serial rate ``1 / (1/decode + 1/inference)``.

``--overlap`` with 192 files at 224 px, same machine and load, one run:

============================== ============
stage                          images/s
============================== ============
decode only                    319.6
inference only                 4.18
serial (1 / (1/d + 1/i))       4.12
streaming, 0 workers           4.49
streaming, 1 worker            7.57
streaming, 2 workers           3.90
============================== ============

On CPU the network takes 76 times as long as decoding (224 px from a 512 px
JPEG with draft-mode decoding), so overlapping the two can save at most
1.3 % of the time: the streaming rates (0.9 to 1.8 times the network alone)
move with the machine's load, not with the number of workers. Workers
matter where the network is fast, on a GPU, where decoding a 1024 px PNG
(about 10 ms of a core) is the limit.
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


_FIT_CHILD = r"""
import json, resource, sys, time
import numpy as np
from skcxr import ImageLoader, TransferClassifier

mode, root, n, distinct, size, workers = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
files = [f"{root}/{i:05d}.jpg" for i in range(distinct)]
paths = [files[i % distinct] for i in range(n)]  # the files listed again and again
y = np.array(["normal", "pneumonia"] * n)[:n]
loader = ImageLoader(size=size, n_jobs=workers)
kw = dict(max_epochs=5, batch_size=64, device="cpu", random_state=0)


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fit(paths, y):
    X = loader.transform(paths) if mode == "memory" else paths
    clf = TransferClassifier(loader=loader, **kw).fit(X, y)
    assert clf.used_feature_cache_


fit(paths[:64], y[:64])  # warm-up, twice: the process reaches its steady state
fit(paths[:64], y[:64])
base = peak()
t = time.perf_counter()
fit(paths, y)
print(json.dumps({"s": time.perf_counter() - t, "peak_growth": peak() - base}))
"""

_OVERLAP_CHILD = r"""
import json, sys, time
import numpy as np
import torch
from skcxr import ImageLoader
from skcxr.nn._backbones import build_backbone
from skcxr.nn._streaming import PathReader, iter_batches
from skcxr.nn._transfer_net import pooled_features

root, n, distinct, size = sys.argv[1], *map(int, sys.argv[2:])
files = [f"{root}/{i:05d}.jpg" for i in range(distinct)]
paths = [files[i % distinct] for i in range(n)]
backbone = build_backbone("efficientnet_lite0", weights="imagenet")
backbone = backbone.to(memory_format=torch.channels_last)


def features(images):
    return pooled_features(backbone, None, images, device="cpu", batch_size=64)


def timed(func):
    func(paths[:64])  # warm-up: weights, allocator pools, worker start-up
    t = time.perf_counter()
    func(paths)
    return n / (time.perf_counter() - t)


def decode(paths):  # what the workers do, in this process
    reader = PathReader(ImageLoader(size=size))
    for s in range(0, len(paths), 64):
        reader.read(paths[s : s + 64])


def stream(workers):
    def run(paths):
        reader = PathReader(ImageLoader(size=size))
        reader.num_workers = workers  # 0: decoded in this process, in turn
        for _, images in iter_batches(reader, paths, 64):
            features(images.numpy())

    return run


images = PathReader(ImageLoader(size=size)).read(paths[:64])[0]
rates = {"decode only": timed(decode)}
rates["inference only"] = timed(
    lambda paths: [features(images) for _ in range(0, len(paths), 64)]
)
for workers in (0, 1, 2):
    rates[f"streaming, {workers} worker(s)"] = timed(stream(workers))
print(json.dumps(rates))
"""


def write_jpegs(folder, n, side=512, random_state=0):
    """``n`` distinct 8-bit grayscale JPEGs: the 16 sample radiographs + noise."""
    from skcxr import ImageLoader
    from skcxr.datasets import load_sample_images

    rng = np.random.default_rng(random_state)
    sample, _ = load_sample_images()
    base = (ImageLoader(size=side).transform(sample) * 255).astype(np.int16)
    for i in range(n):
        noise = rng.integers(-3, 4, size=(side, side), dtype=np.int16)
        pixels = np.clip(base[i % len(base)] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def _child(script, *args):
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def series(args):
    """The frozen-head fit on more and more files: peak RSS growth per size."""
    sizes, size, distinct = args.series, args.size, args.distinct
    print(
        f"frozen-head fit, {size} px, {distinct} distinct 512 px JPEGs listed "
        f"{max(sizes) / distinct:.1f} times at most, {args.workers} worker(s), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        write_jpegs(folder, distinct)
        rows = [("memory", args.memory_n)] if args.memory_n else []
        rows += [("stream", n) for n in sizes]
        growth = {}
        for mode, n in rows:
            r = _child(_FIT_CHILD, mode, folder, n, distinct, size, args.workers)
            growth[mode, n] = r["peak_growth"]
            array = n * size * size * 4
            print(
                f"{mode:>7} {n:6d} files: peak RSS growth "
                f"{r['peak_growth'] / 1e6:7.1f} MB ({r['peak_growth'] / array:.3f} "
                f"of the float32 images), fit {r['s']:6.1f} s",
                flush=True,
            )
    low, high = min(sizes), max(sizes)
    if low < high:
        extra = (high - low) * size * size * 4
        rise = growth["stream", high] - growth["stream", low]
        print(
            f"streaming growth {low} -> {high} files: {rise / 1e6:.1f} MB, "
            f"{rise / extra:.3f} of those {high - low} images' float32 size "
            f"({extra / 1e6:.0f} MB)"
        )


def overlap(args):
    """Images/s of decoding alone, the network alone and streaming, side by side."""
    n, size, distinct = args.n, args.size, args.distinct
    print(
        f"{n} files of {distinct} distinct 512 px JPEGs, {size} px, "
        f"efficientnet_lite0, batches of 64, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        write_jpegs(folder, min(n, distinct))
        rates = _child(_OVERLAP_CHILD, folder, n, min(n, distinct), size)
    both = 1 / (1 / rates["decode only"] + 1 / rates["inference only"])
    for name, rate in rates.items():
        print(f"{name:>24}: {rate:7.1f} images/s")
    print(f"{'no overlap would give':>24}: {both:7.1f} images/s (1 / (1/d + 1/i))")
    best = min(rates["decode only"], rates["inference only"])
    for workers in (0, 1, 2):
        rate = rates[f"streaming, {workers} worker(s)"]
        print(
            f"{workers} worker(s): {rate / both:.2f} x the serial rate, "
            f"{rate / best:.2f} x the slower stage alone"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=4000, help="files")
    parser.add_argument("--workers", type=int, default=1, help="decoding workers")
    parser.add_argument(
        "--series",
        type=int,
        nargs="+",
        help="frozen-head fit on these numbers of files",
    )
    parser.add_argument(
        "--memory-n", type=int, default=3000, help="in-memory fit beside the series"
    )
    parser.add_argument("--distinct", type=int, default=3000, help="distinct JPEGs")
    parser.add_argument("--size", type=int, default=224, help="image side (pixels)")
    parser.add_argument(
        "--overlap", action="store_true", help="decode / inference / streaming rates"
    )
    args = parser.parse_args(argv)
    if args.series:
        return series(args)
    if args.overlap:
        return overlap(args)
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
