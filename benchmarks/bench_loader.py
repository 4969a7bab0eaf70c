"""ImageLoader vs a plain PIL loop on real-size chest X-ray files.

Two cases, each in its own temporary folder:

* ``jpeg``: the 16 real images shipped with skcxr (512 px) scaled back up to
  real sizes (1000-2000 px on the longest side, a different size per copy)
  and saved as JPEG. ImageLoader uses JPEG draft-mode (DCT-domain)
  downscaling while decoding.
* ``png``: 8-bit grayscale 1024 x 1024 PNGs, the format of NIH ChestX-ray14
  (Wang et al. 2017), made from the same images with a little pixel noise
  (~500 KB each, as real ones). Draft mode does not apply to PNG; ImageLoader
  decodes them with OpenCV when ``opencv-python-headless`` is installed (else
  Pillow) and shrinks them with ``Image.reduce`` before the bicubic resize.

Every reader turns every file into a ``(size, size)`` float32 image in
[0, 1]. The baseline is ``PIL.Image.open(p).convert("L").resize((size,
size))`` / 255, one file after the other. The PNG case also times that loop on
``n_jobs`` threads with ``reducing_gap=2.0`` (what ImageLoader does, without
its checks), and ImageLoader with Pillow only (as without OpenCV). Repeats are interleaved (baseline,
loader, ..., baseline, loader, ...) and each speed-up is the median of the
per-repeat time ratios, printed with the mean and largest absolute difference
from the baseline's output, and with the CPU time per file (all threads
together) and its ratio to the baseline's. On a machine shared with other
work, threads help only as far as cores are free: each case first measures
the speed-up its threads get on work that releases the GIL, and the wall-clock
speed-up cannot exceed that times the CPU-time ratio.

Run::

    python benchmarks/bench_loader.py              # both cases
    python benchmarks/bench_loader.py --case png   # 1024 px PNG only
    python benchmarks/bench_loader.py --quick      # fewer files and repeats
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from skcxr import ImageLoader
from skcxr.datasets import load_sample_images
from skcxr.preprocessing import _loader


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


def make_png_files(folder, n_files, side=1024, random_state=0):
    """Write ``n_files`` 8-bit grayscale ``side`` x ``side`` PNGs."""
    rng = np.random.default_rng(random_state)
    sources, _ = load_sample_images()
    paths = []
    for i in range(n_files):
        with Image.open(sources[i % len(sources)]) as im:
            big = im.convert("L").resize((side, side), Image.Resampling.BICUBIC)
        noisy = np.asarray(big, np.float32) + rng.normal(0.0, 2.0, (side, side))
        path = Path(folder) / f"image_{i:04d}.png"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "L").save(path)
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


def bare_threads(paths, size, n_jobs):
    """The plain loop on ``n_jobs`` threads, with ``reducing_gap=2.0``."""

    def read(path):
        with Image.open(path) as im:
            small = im.convert("L").resize((size, size), reducing_gap=2.0)
        return np.asarray(small, np.float32) / 255

    with ThreadPoolExecutor(n_jobs) as pool:
        return np.stack(list(pool.map(read, paths)))


@contextlib.contextmanager
def pillow_only():
    """Make ImageLoader decode PNG with Pillow, as without OpenCV installed."""
    saved, _loader._cv2 = _loader._cv2, None
    try:
        yield
    finally:
        _loader._cv2 = saved


def pillow_only_reader(loader):
    def read(paths):
        with pillow_only():
            return loader.transform(paths)

    return read


def thread_headroom(n_jobs, repeats=3):
    """Speed-up ``n_jobs`` threads get right now on work that releases the GIL.

    About ``n_jobs`` on free cores; about 1 when other processes keep the cores
    busy. No reader can beat a plain loop by more than its CPU-time ratio
    times this.
    """
    data = zlib.compress(np.random.default_rng(0).integers(0, 8, 2**20, np.uint8))

    def work(_):
        for _ in range(10):
            zlib.decompress(data)

    ratios = []
    with ThreadPoolExecutor(n_jobs) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(2 * n_jobs):
                work(i)
            one = time.perf_counter() - start
            start = time.perf_counter()
            list(pool.map(work, range(2 * n_jobs)))
            ratios.append(one / (time.perf_counter() - start))
    return statistics.median(ratios)


def compare(readers, paths, repeats):
    """Interleaved wall and CPU times, and the last output, of each reader."""
    for read in readers.values():  # warm up the page cache and imports
        read(paths[:4])
    wall = {name: [] for name in readers}
    cpu = {name: [] for name in readers}
    outputs = {}
    for _ in range(repeats):
        for name, read in readers.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = read(paths)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return wall, cpu, outputs


def report(title, readers, paths, repeats, size, n_jobs):
    headroom = thread_headroom(n_jobs)
    wall, cpu, outputs = compare(readers, paths, repeats)
    names = list(readers)
    base = names[0]
    n_files = len(paths)
    print(
        f"\n{title}: {n_files} files, size={size}, {repeats} interleaved repeats; "
        f"{n_jobs} threads get {headroom:.2f}x on GIL-free work now "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{'reader':<38}{'median s':>9}{'files/s':>8}{'speed-up':>9}{'(min-max)':>12}"
        f"{'CPU ms/file':>12}{'CPU ratio':>10}{'mean |diff|':>12}{'max |diff|':>11}"
    )
    ratios = {}
    for name in names:
        med = statistics.median(wall[name])
        per_repeat = [b / t for b, t in zip(wall[base], wall[name])]
        ratios[name] = statistics.median(per_repeat)
        cpu_ratio = statistics.median([b / t for b, t in zip(cpu[base], cpu[name])])
        cpu_ms = 1e3 * statistics.median(cpu[name]) / n_files
        diff = np.abs(outputs[name] - outputs[base])
        spread = f"({min(per_repeat):.2f}-{max(per_repeat):.2f})"
        print(
            f"{name:<38}{med:>9.3f}{n_files / med:>8.1f}{ratios[name]:>8.2f}x"
            f"{spread:>12}{cpu_ms:>12.2f}{cpu_ratio:>9.2f}x"
            f"{float(diff.mean()):>12.5f}{float(diff.max()):>11.4f}"
        )
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("jpeg", "png", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="fewer files, 3 repeats")
    parser.add_argument("--n-files", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    size, n_jobs = args.size, args.n_jobs
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PNG decoder: "
        f"{'OpenCV' if _loader._png_decoder() is not None else 'Pillow'}"
    )
    results = {}
    if args.case in ("jpeg", "all"):
        n_files = args.n_files or (40 if args.quick else 200)
        with tempfile.TemporaryDirectory() as folder:
            print(f"writing {n_files} JPEGs of 1000-2000 px ...", flush=True)
            paths = make_files(folder, n_files)
            readers = {
                "PIL open/convert/resize loop": lambda p: plain_loop(p, size),
                f"ImageLoader(draft, n_jobs={n_jobs})": ImageLoader(
                    size=size, n_jobs=n_jobs
                ).transform,
            }
            results["jpeg"] = report(
                "JPEG 1000-2000 px", readers, paths, repeats, size, n_jobs
            )
    if args.case in ("png", "all"):
        n_files = args.n_files or (32 if args.quick else 60)
        with tempfile.TemporaryDirectory() as folder:
            print(f"\nwriting {n_files} 8-bit PNGs of 1024 x 1024 px ...", flush=True)
            paths = make_png_files(folder, n_files)
            kilobytes = np.mean([os.path.getsize(p) for p in paths]) / 1e3
            print(f"mean file size {kilobytes:.0f} KB")
            one, many = ImageLoader(size=size), ImageLoader(size=size, n_jobs=n_jobs)
            readers = {
                "PIL open/convert/resize loop": lambda p: plain_loop(p, size),
                f"same, {n_jobs} threads, reducing_gap=2": lambda p: bare_threads(
                    p, size, n_jobs
                ),
                "ImageLoader(n_jobs=1)": one.transform,
                f"ImageLoader(n_jobs={n_jobs})": many.transform,
            }
            if _loader._png_decoder() is not None:  # what it does without OpenCV
                readers["ImageLoader(n_jobs=1), Pillow only"] = pillow_only_reader(one)
                readers[f"ImageLoader(n_jobs={n_jobs}), Pillow only"] = (
                    pillow_only_reader(many)
                )
            results["png"] = report(
                "PNG 1024 x 1024, 8-bit", readers, paths, repeats, size, n_jobs
            )
    return results


if __name__ == "__main__":
    main()
