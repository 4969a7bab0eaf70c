"""Benchmark: OtsuMasker against a per-image scikit-image loop.

The reference is what one writes by hand: for every image,
``skimage.filters.gaussian`` (``mode="nearest"``, ``truncate=4.0``,
``preserve_range=True``: the same blur as OtsuMasker's scipy call), then
``skimage.filters.threshold_otsu`` and the comparison, then the masking. Both
sides must produce identical masked images (asserted). The two are run
interleaved, several times, and the table reports the median of the per-repeat
ratios (wall clock and process CPU time) -- never a single absolute time.
The CPU-time ratio is the work saved per core; the wall-clock ratio of
``n_jobs=-1`` also counts the threads (scipy's filters and numpy release the
GIL), which only pays off when the cores are not busy with other work.

Run: ``python benchmarks/bench_masker.py [--n-images 200] [--size 256]``
"""

import argparse
import os
import time

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu

from skcxr import OtsuMasker


def make_images(n, size, seed=0):
    """Smooth random 'radiograph-like' images: two dark blobs on a bright field."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n, size, size), dtype=np.float32)
    field = ndimage.gaussian_filter(noise, sigma=(0, size / 16, size / 16))
    field = (field - field.min()) / (field.max() - field.min())
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = np.exp(-(((xx - 0.3) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    lungs += np.exp(-(((xx - 0.7) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    images = 0.8 - 0.5 * lungs[None] + 0.2 * field + 0.05 * noise
    return np.clip(images, 0, 1).astype(np.float32)


def skimage_loop(images, sigma):
    out = np.empty_like(images)
    for i, image in enumerate(images):
        blurred = gaussian(
            image, sigma=sigma, mode="nearest", truncate=4.0, preserve_range=True
        )
        mask = blurred <= threshold_otsu(blurred)
        out[i] = np.where(mask, image, np.float32(0.0))
    return out


def timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    images = make_images(args.n_images, args.size)
    contenders = {
        f"OtsuMasker (n_jobs={n_jobs})": OtsuMasker(sigma=args.sigma, n_jobs=n_jobs)
        for n_jobs in (1, -1)
    }
    for masker in contenders.values():
        masker.fit(images[:1])
    reference = skimage_loop(images, args.sigma)
    for name, masker in contenders.items():
        np.testing.assert_array_equal(masker.transform(images), reference, err_msg=name)

    ratios = {name: ([], []) for name in contenders}
    for _ in range(args.repeats):
        _, ref_wall, ref_cpu = timed(lambda: skimage_loop(images, args.sigma))
        for name, masker in contenders.items():
            _, wall, cpu = timed(lambda m=masker: m.transform(images))
            ratios[name][0].append(ref_wall / wall)
            ratios[name][1].append(ref_cpu / cpu)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.n_images} images of {args.size}x{args.size}, sigma={args.sigma}, "
        f"{args.repeats} interleaved repeats, {os.cpu_count()} CPUs (load average "
        f"{load:.1f}); masks identical"
    )
    print(f"{'contender':26s} {'speed-up (wall)':>16s} {'speed-up (CPU)':>15s}")
    print(f"{'skimage per-image loop':26s} {'1.00x':>16s} {'1.00x':>15s}")
    for name, (wall, cpu) in ratios.items():
        print(f"{name:26s} {np.median(wall):15.2f}x {np.median(cpu):14.2f}x")


if __name__ == "__main__":
    main()
