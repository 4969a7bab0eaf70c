"""CNNEmbedder vs plain PyTorch inference loops, and glibc's allocator settings.

Compares, over the same images, backbone (``efficientnet_lite0`` with its ImageNet
weights), batch size and thread count:

* ``torch eager NCHW``: the usual loop (``model.eval()``, ``torch.no_grad()``,
  contiguous NCHW batches, global average pooling, ``.numpy()``);
* ``torch channels_last``: channels-last model and batches,
  ``torch.inference_mode()``, preallocated output;
* ``torch cl + folded BN``: the same loop over the network CNNEmbedder runs
  (batch norms folded into the convolutions, in-place activations): the best
  plain eager loop found here, so its ratio is CNNEmbedder's own overhead;
* ``torch.compile`` (only with ``--compile``; minutes of compilation on 2 cores,
  excluded from the timings);
* ``CNNEmbedder.transform`` (input validation included).

Each configuration runs in one process, interleaved with the others, ``--repeats``
times; the table reports medians (wall and CPU time) and the median of the
per-round ratios (a ratio > 1 means CNNEmbedder is faster). The whole
measurement is repeated in subprocesses with and without
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (glibc then keeps freed
activation memory instead of returning it to the kernel and faulting it in
again), alternating the two environments; minor page faults per pass are
reported too. Importing skcxr never changes these process-wide settings.

Run: ``python benchmarks/bench_embedder.py [--size 128 --n-images 64 ...]``
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

TUNED_ENV = {
    # glibc caps the mmap threshold at 32 MiB on 64-bit systems
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(16 * 1024**3),
}


def _worker(args):
    import torch

    from skcxr import CNNEmbedder
    from skcxr.nn import build_backbone

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.random((args.n_images, args.size, args.size), dtype=np.float32)
    bs = args.batch_size

    nchw = build_backbone(args.backbone, weights="imagenet").eval()
    cl = build_backbone(args.backbone, weights="imagenet").eval()
    cl = cl.to(memory_format=torch.channels_last)

    def plain_eager():
        out = []
        with torch.no_grad():
            for start in range(0, len(images), bs):
                batch = torch.from_numpy(images[start : start + bs])[:, None]
                out.append(nchw(batch).mean(dim=(2, 3)).numpy())
        return np.concatenate(out)

    def plain_channels_last(model=cl):
        out = np.empty((len(images), model_dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), bs):
                batch = torch.from_numpy(images[start : start + bs])[:, None]
                batch = batch.contiguous(memory_format=torch.channels_last)
                out[start : start + len(batch)] = model(batch).mean(dim=(2, 3)).numpy()
        return out

    model_dim = cl.out_channels
    embedder = CNNEmbedder(
        backbone=args.backbone, weights="imagenet", batch_size=bs, device="cpu"
    ).fit(images[:1])
    folded = embedder.module_.network  # the backbone with its batch norms folded
    configs = {
        "torch eager NCHW": plain_eager,
        "torch channels_last": plain_channels_last,
        "torch cl + folded BN": lambda: plain_channels_last(folded),
        "CNNEmbedder": lambda: embedder.transform(images),
    }
    if args.compile:
        compiled = torch.compile(cl)
        with torch.inference_mode():
            batch = torch.from_numpy(images[:bs])[:, None]
            batch = batch.contiguous(memory_format=torch.channels_last)
            compiled(batch)  # compile outside the timings
            compiled(batch[: len(images) % bs or bs])
        configs["torch.compile"] = lambda: plain_channels_last(compiled)

    reference = plain_eager()
    for name, run in configs.items():  # warm up, and check they agree
        np.testing.assert_allclose(run(), reference, rtol=1e-3, atol=1e-3, err_msg=name)
    times = {name: [] for name in configs}
    cpu = {name: [] for name in configs}
    faults = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, run in configs.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            faults[name].append(
                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            )
    json.dump({"times": times, "cpu": cpu, "faults": faults}, sys.stdout)


def _ratio(default, tuned):
    """default / tuned; inf when the tuned run had none (no page fault at all)."""
    return default / tuned if tuned else float("inf")


def _run_worker(args, tuned):
    env = {k: v for k, v in os.environ.items() if k not in TUNED_ENV}
    if tuned:
        env.update(TUNED_ENV)
    cmd = [sys.executable, __file__, "--worker"] + [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(args).items()
        if k not in ("worker", "processes", "compile")
    ]
    if args.compile:
        cmd.append("--compile")
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbone", "--model", dest="backbone", default="efficientnet_lite0"
    )
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker processes per allocator setting (alternating)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile (slow to compile)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    print(
        f"{args.backbone}, {args.n_images} images of {args.size}x{args.size}, batch "
        f"{args.batch_size}, {args.threads} threads, {args.repeats} interleaved "
        f"repeats x {args.processes} processes per allocator setting\n"
    )
    results = {False: [], True: []}
    for _ in range(args.processes):
        for tuned in (False, True):
            results[tuned].append(_run_worker(args, tuned))

    def collect(tuned, key):
        merged = {}
        for result in results[tuned]:
            for name, values in result[key].items():
                merged.setdefault(name, []).extend(values)
        return {name: np.asarray(v, float) for name, v in merged.items()}

    label = {False: "glibc default", True: "tuned malloc env"}
    names = list(results[False][0]["times"])
    for tuned in (False, True):
        times, cpu, faults = (collect(tuned, key) for key in ("times", "cpu", "faults"))
        emb = times["CNNEmbedder"]
        print(f"== {label[tuned]} ==")
        print(
            f"{'configuration':<22}{'median s':>10}{'CPU s':>8}{'page faults':>13}"
            f"{'CNNEmbedder speed-up':>22}"
        )
        for name in names:
            t = times[name]
            speedup = "" if name == "CNNEmbedder" else f"{np.median(t / emb):.2f}x"
            print(
                f"{name:<22}{np.median(t):>10.3f}{np.median(cpu[name]):>8.3f}"
                f"{np.median(faults[name]):>13.0f}{speedup:>22}"
            )
        print()

    # allocator: each default process is paired with the tuned one run right after it
    print(
        "== tuned malloc env speed-up (default / tuned; median over process pairs) =="
    )
    print(f"{'configuration':<22}{'wall':>8}{'CPU':>8}{'page faults':>13}")
    for name in names:
        ratios = {
            key: np.median(
                [
                    _ratio(np.median(d[key][name]), np.median(t[key][name]))
                    for d, t in zip(results[False], results[True])
                ]
            )
            for key in ("times", "cpu", "faults")
        }
        print(
            f"{name:<22}{ratios['times']:>7.2f}x{ratios['cpu']:>7.2f}x"
            f"{ratios['faults']:>12.2f}x"
        )
    print(f"\nenv: {' '.join(f'{k}={v}' for k, v in TUNED_ENV.items())}")


if __name__ == "__main__":
    main()
