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
* ``CNNEmbedder.transform`` (input validation included), with ``engine="torch"``;
* ``onnxruntime by hand`` / ``openvino by hand``: the same backbone (plus global
  average pooling) exported with ``torch.onnx.export`` and run the way their
  documentation shows (an ``InferenceSession`` with ``intra_op_num_threads``; a
  model compiled for "CPU" with ``INFERENCE_PRECISION_HINT="f32"`` and
  ``INFERENCE_NUM_THREADS``), one call per batch;
* ``CNNEmbedder onnxruntime`` / ``CNNEmbedder openvino``: ``transform`` with
  ``engine="onnxruntime"`` / ``"openvino"`` (FP32; the export happens at ``fit``,
  outside the timings, like the hand-written engines' export);
* ``... int8`` (and ``... bf16`` on CPUs with bfloat16 instructions): the same
  with ``precision="int8"``, calibrated on 32 of the images, by hand (the
  quantised graph in a plain loop) and through ``CNNEmbedder``; their
  deviation from FP32 is reported, not checked (``bench_precision.py`` measures
  what it costs in accuracy on held-out images).

The engines are skipped when their packages are missing (``--no-engines`` skips
them anyway). OpenVINO's reduced precision (bf16) needs a CPU with AVX512-BF16
or AMX; the benchmark prints the CPU's ``OPTIMIZATION_CAPABILITIES``.

Each configuration runs in one process, interleaved with the others, ``--repeats``
times; the table reports medians (wall and CPU time) and the median of the
per-round ratios (a ratio > 1 means CNNEmbedder is faster). The whole
measurement is repeated in subprocesses with and without
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (glibc then keeps freed
activation memory instead of returning it to the kernel and faulting it in
again), alternating the two environments; minor page faults per pass are
reported too. Importing skcxr never changes these process-wide settings.

Run: ``python benchmarks/bench_embedder.py [--size 128 --n-images 64 ...]``;
``--size 224 --backbone resnet50 --weights none --processes 1`` for the larger
network (the weights do not change the speed).
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
    from skcxr.utils._random import seed_from

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.random((args.n_images, args.size, args.size), dtype=np.float32)
    bs = args.batch_size

    weights = None if args.weights == "none" else args.weights

    def backbone():
        # weights=None: the random weights CNNEmbedder(random_state=0) draws
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from(0))
            return build_backbone(args.backbone, weights=weights).eval()

    nchw = backbone()
    cl = backbone().to(memory_format=torch.channels_last)

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
    params = dict(
        backbone=args.backbone,
        weights=weights,
        batch_size=bs,
        device="cpu",
        random_state=0,
    )
    embedder = CNNEmbedder(**params).fit(images[:1])
    folded = embedder.module_.network  # the backbone with its batch norms folded
    configs = {
        "torch eager NCHW": plain_eager,
        "torch channels_last": plain_channels_last,
        "torch cl + folded BN": lambda: plain_channels_last(folded),
        "CNNEmbedder": lambda: embedder.transform(images),
    }
    if args.engines:
        configs.update(_engine_configs(args, nchw, images, embedder))
    if args.compile:
        compiled = torch.compile(cl)
        with torch.inference_mode():
            batch = torch.from_numpy(images[:bs])[:, None]
            batch = batch.contiguous(memory_format=torch.channels_last)
            compiled(batch)  # compile outside the timings
            compiled(batch[: len(images) % bs or bs])
        configs["torch.compile"] = lambda: plain_channels_last(compiled)

    reference = plain_eager()
    scale = float(np.abs(reference).max())
    deviation = {}
    for name, run in configs.items():  # warm up, and check they agree
        got = run()
        deviation[name] = float(np.abs(got - reference).max()) / scale
        if " int8" not in name and " bf16" not in name:  # reduced: only reported
            np.testing.assert_allclose(got, reference, rtol=1e-3, atol=1e-3 * scale)
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
    json.dump(
        {"times": times, "cpu": cpu, "faults": faults, "deviation": deviation},
        sys.stdout,
    )


class _Pooled:
    """``backbone`` + global average pooling, as a user would export it."""

    def __new__(cls, backbone):
        import torch

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = backbone

            def forward(self, x):
                return self.backbone(x).mean(dim=(2, 3))

        return Pooled().eval()


def _engine_configs(args, network, images, embedder):
    """Hand-written ONNX Runtime / OpenVINO loops and CNNEmbedder's engines."""
    import importlib.util
    import io
    import warnings

    import torch
    from sklearn.base import clone

    from skcxr.nn._export import _exportable, calibration_images, quantize_int8

    bs = args.batch_size
    available = [
        name
        for name in ("onnxruntime", "openvino")
        if importlib.util.find_spec(name) and importlib.util.find_spec("onnx")
    ]
    if not available:
        return {}
    probe = torch.from_numpy(images[:2])[:, None]
    # FoldedConv (the gray first convolution) computes its normalisation offset
    # with torch.func, which tracing cannot follow: the offset becomes a constant
    module = _exportable(_Pooled(network), probe)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (probe,),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    onnx_bytes = buffer.getvalue()

    def loop(run):
        return lambda: np.concatenate(
            [
                run(np.ascontiguousarray(images[start : start + bs, None]))
                for start in range(0, len(images), bs)
            ]
        )

    if "openvino" in available:
        import openvino as ov

        print(
            "openvino CPU capabilities:",
            ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
            file=sys.stderr,
        )
    # the INT8 graph by hand is skcxr's quantize_int8 output, calibrated on the
    # images CNNEmbedder keeps: the ratio to CNNEmbedder is its own overhead
    calibration = calibration_images(images, random_state=0)[:, None]
    configs = {}
    pairs = [(engine, "fp32") for engine in available] + _reduced_precisions(available)
    for engine, precision in pairs:
        suffix = "" if precision == "fp32" else f" {precision}"
        model = onnx_bytes
        if precision == "int8":
            model = quantize_int8(onnx_bytes, calibration, engine)
        configs[f"{engine}{suffix} by hand"] = loop(
            _hand_runner(engine, precision, model, args.threads)
        )
        fitted = clone(embedder).set_params(engine=engine, precision=precision)
        fitted.fit(images).transform(images[:1])  # exports (and calibrates) once
        configs[f"CNNEmbedder {engine}{suffix}"] = lambda e=fitted: e.transform(images)
    return configs


def _hand_runner(engine, precision, model, threads):
    """``x -> output`` of ONNX ``model`` run the way each engine's docs show."""
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        session = ort.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(model),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": threads,
        },
    )
    return lambda x: compiled(x)[0]


def _reduced_precisions(available):
    """(engine, precision) pairs this machine can run besides FP32."""
    pairs = []
    if "onnxruntime" in available:
        pairs.append(("onnxruntime", "int8"))
    if "openvino" in available:
        import openvino as ov

        if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            pairs.append(("openvino", "bf16"))
    return pairs


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
        if k not in ("worker", "processes", "compile", "engines")
    ]
    if args.compile:
        cmd.append("--compile")
    if not args.engines:
        cmd.append("--no-engines")
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbone", "--model", dest="backbone", default="efficientnet_lite0"
    )
    parser.add_argument(
        "--weights", default="imagenet", help="imagenet, none or a file"
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
    parser.add_argument(
        "--no-engines",
        dest="engines",
        action="store_false",
        help="skip ONNX Runtime and OpenVINO",
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
    deviation = results[False][0]["deviation"]
    for tuned in (False, True):
        times, cpu, faults = (collect(tuned, key) for key in ("times", "cpu", "faults"))
        emb = times["CNNEmbedder"]
        print(f"== {label[tuned]} ==")
        print(
            f"{'configuration':<32}{'median s':>9}{'img/s':>8}{'CPU s':>8}"
            f"{'faults':>8}{'vs CNNEmbedder':>15}{'vs by hand':>11}{'max rel diff':>13}"
        )
        for name in names:
            t = times[name]
            # > 1: this configuration is faster than CNNEmbedder (engine="torch")
            speedup = f"{np.median(emb / t):.2f}x"
            hand = ""
            if name.startswith("CNNEmbedder ") and f"{name[12:]} by hand" in times:
                # same engine (and precision) run by hand
                hand = f"{np.median(times[f'{name[12:]} by hand'] / t):.2f}x"
            print(
                f"{name:<32}{np.median(t):>9.3f}{args.n_images / np.median(t):>8.1f}"
                f"{np.median(cpu[name]):>8.3f}{np.median(faults[name]):>8.0f}"
                f"{speedup:>15}{hand:>11}{deviation[name]:>13.1e}"
            )
        print()

    # allocator: each default process is paired with the tuned one run right after it
    print(
        "== tuned malloc env speed-up (default / tuned; median over process pairs) =="
    )
    print(f"{'configuration':<32}{'wall':>8}{'CPU':>8}{'page faults':>13}")
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
            f"{name:<32}{ratios['times']:>7.2f}x{ratios['cpu']:>7.2f}x"
            f"{ratios['faults']:>12.2f}x"
        )
    print(f"\nenv: {' '.join(f'{k}={v}' for k, v in TUNED_ENV.items())}")


if __name__ == "__main__":
    main()
