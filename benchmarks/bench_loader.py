"""ImageLoader vs a plain PIL loop on real-size chest X-ray JPEGs.

The 16 real images shipped with skcxr (512 px) are scaled back up to real
sizes (1000-2000 px on the longest side, a different size per copy) and saved
as JPEG in a temporary folder. Both readers turn every file into a
``(size, size)`` float32 image in [0, 1]:

* baseline: ``PIL.Image.open(p).convert("L").resize((size, size))`` / 255, one
  file after the other;
* ``ImageLoader(size=size, n_jobs=n_jobs)``: JPEG draft-mode (DCT-domain)
  downscaling while decoding, and a thread pool.

Repeats are interleaved (baseline, loader, baseline, ...) and the result is the
median of the per-repeat time ratios, printed with the mean absolute
difference between the two outputs.

Run::

    python benchmarks/bench_loader.py            # 200 files, 5 repeats
    python benchmarks/bench_loader.py --quick    # 40 files, 3 repeats
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skcxr import ImageLoader
from skcxr.datasets import load_sample_images


def make_files(folder, n_files, random_state=0):
    """Write ``n_files`` JPEGs of 1000-2000 px made from the shipped sample."""
    rng = np.random.default_rng(random_state)
    sources, _ = load_sample_images()
    paths = []
    for i in range(n_files):
        with Image.open(sources[i % len(sources)]) as im:
            longest = int(rng.integers(1000, 2001))
            scale = longest / max(im.size)
            big = im.resize(
                (round(im.width * scale), round(im.height * scale)),
                Image.Resampling.BICUBIC,
            )
        path = Path(folder) / f"image_{i:04d}.jpeg"
        big.save(path, quality=90)
        paths.append(str(path))
    return paths


def plain_loop(paths, size):
    out = np.empty((len(paths), size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = (
            np.asarray(Image.open(path).convert("L").resize((size, size)), np.float32)
            / 255
        )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 files, 3 repeats")
    parser.add_argument("--n-files", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    n_files = args.n_files or (40 if args.quick else 200)
    repeats = args.repeats or (3 if args.quick else 5)

    loader = ImageLoader(size=args.size, n_jobs=args.n_jobs)
    with tempfile.TemporaryDirectory() as folder:
        print(f"writing {n_files} JPEGs of 1000-2000 px ...", flush=True)
        paths = make_files(folder, n_files)
        plain_loop(paths[:4], args.size)  # warm up the page cache and imports
        loader.transform(paths[:4])
        base_times, loader_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            expected = plain_loop(paths, args.size)
            base_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            images = loader.transform(paths)
            loader_times.append(time.perf_counter() - start)
    ratios = [b / t for b, t in zip(base_times, loader_times)]
    diff = float(np.abs(images - expected).mean())

    print(
        f"\n{n_files} files, size={args.size}, n_jobs={args.n_jobs}, "
        f"{repeats} interleaved repeats"
    )
    print(f"{'reader':<34}{'median s':>10}{'files/s':>10}")
    for name, times in (
        ("PIL open/convert/resize loop", base_times),
        (f"ImageLoader(draft, n_jobs={args.n_jobs})", loader_times),
    ):
        med = statistics.median(times)
        print(f"{name:<34}{med:>10.3f}{n_files / med:>10.1f}")
    print(
        f"\nspeed-up (median of per-repeat ratios): {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )
    print(f"mean |ImageLoader - PIL loop| = {diff:.4f} (intensities in [0, 1])")
    return statistics.median(ratios), diff


if __name__ == "__main__":
    main()
