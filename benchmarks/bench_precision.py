"""Reduced precision in the inference engines: speed, and the accuracy it costs.

Synthetic three-class chest X-rays (``make_chest_xrays``, normal / bacteria /
virus) at ``--size`` px are split into a training and a held-out test set. For
every available engine and precision (torch FP32; ONNX Runtime in FP32 and
INT8; OpenVINO in FP32, and bf16 where the CPU has bfloat16 instructions) a
``CNNEmbedder(backbone=--backbone)`` is fitted on the training images (INT8:
post-training static quantisation calibrated on 32 of them, drawn with
``random_state``, with ONNX Runtime's quantisation tool), both sets are embedded, and a standardised logistic
regression is trained on the training embeddings and scored on the test set.

Reported, per configuration:

* ``img/s`` of ``transform`` over the test images (the export and calibration
  happen at the first call, outside the timings), median of ``--repeats``
  rounds interleaved over the configurations, and the ratio to torch FP32 and
  to the same engine in FP32 (medians of the per-round ratios; > 1 is faster);
* the embeddings' largest deviation from torch FP32, relative to their largest
  value, and their correlation with it;
* the test accuracy and macro one-vs-rest ROC AUC of the logistic regression,
  and the AUC change against the same engine in FP32 with its 95% paired
  bootstrap interval over test images (:func:`skcxr.metrics.paired_bootstrap`).

Run: ``python benchmarks/bench_precision.py`` (efficientnet_lite0 with its
ImageNet weights at 224 px); ``--backbone resnet50 --weights none`` for speed
only (random weights: the accuracy is then that of random features);
``--quick`` for a small smoke run.
"""

import argparse
import importlib.util
import os
import time

import numpy as np


def _configurations():
    configs = [("torch", "fp32")]
    has_onnx = bool(importlib.util.find_spec("onnx"))
    has_ort = has_onnx and bool(importlib.util.find_spec("onnxruntime"))
    has_ov = has_onnx and bool(importlib.util.find_spec("openvino"))
    if has_ort:
        configs += [("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    if has_ov:
        configs.append(("openvino", "fp32"))
        import openvino

        capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        print(f"OpenVINO CPU capabilities: {', '.join(capabilities)}")
        if "BF16" in capabilities:
            configs.append(("openvino", "bf16"))
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.size, args.n_train, args.n_test, args.repeats = 96, 48, 48, 1

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcxr import CNNEmbedder
    from skcxr.datasets import make_chest_xrays
    from skcxr.metrics import paired_bootstrap
    from skcxr.utils._parallel import available_cpus

    torch.set_num_threads(available_cpus())
    X, y = make_chest_xrays(
        args.n_train + args.n_test,
        classes=("normal", "bacteria", "virus"),
        size=args.size,
        random_state=0,
    )
    X = X.astype(np.float32)
    X_train, y_train = X[: args.n_train], y[: args.n_train]
    X_test, y_test = X[args.n_train :], y[args.n_train :]
    weights = None if args.weights == "none" else args.weights
    configs = _configurations()
    print(
        f"{args.backbone} (weights={args.weights}), {args.size} px, "
        f"{args.n_train} training / {args.n_test} test images, batch "
        f"{args.batch_size}, {available_cpus()} threads, load "
        f"{os.getloadavg()[0]:.1f}"
    )

    embedders, test_embeddings, proba, predicted = {}, {}, {}, {}
    for engine, precision in configs:
        embedder = CNNEmbedder(
            backbone=args.backbone,
            weights=weights,
            device="cpu",
            batch_size=args.batch_size,
            engine=engine,
            precision=precision,
            random_state=0,
        ).fit(X_train)
        train = embedder.transform(X_train)  # builds (exports, calibrates) once
        test = embedder.transform(X_test)
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        head.fit(train, y_train)
        embedders[engine, precision] = embedder
        test_embeddings[engine, precision] = test
        proba[engine, precision] = head.predict_proba(test)
        predicted[engine, precision] = head.predict(test)

    seconds = {config: [] for config in configs}
    for _ in range(args.repeats):
        for config in configs:
            start = time.perf_counter()
            embedders[config].transform(X_test)
            seconds[config].append(time.perf_counter() - start)
    seconds = {config: np.array(s) for config, s in seconds.items()}

    def auc(labels, probabilities):
        return roc_auc_score(labels, probabilities, multi_class="ovr")

    reference = test_embeddings["torch", "fp32"]
    header = (
        f"{'engine':<12}{'precision':<10}{'img/s':>8}{'vs torch':>10}"
        f"{'vs fp32':>9}{'max rel dev':>13}{'corr':>8}{'accuracy':>10}"
        f"{'AUC':>7}  AUC change vs fp32 [95% CI]"
    )
    print(header)
    print("-" * len(header))
    for engine, precision in configs:
        s = seconds[engine, precision]
        fp32 = (engine, "fp32")
        emb = test_embeddings[engine, precision]
        deviation = np.abs(emb - reference).max() / np.abs(reference).max()
        correlation = np.corrcoef(emb.ravel(), reference.ravel())[0, 1]
        p = proba[engine, precision]
        accuracy = accuracy_score(y_test, predicted[engine, precision])
        change = ""
        if precision != "fp32":
            result = paired_bootstrap(
                y_test, p, proba[fp32], auc, n_resamples=1000, random_state=0
            )
            change = f"{result.difference:+.3f} [{result.low:+.3f}, {result.high:+.3f}]"
        print(
            f"{engine:<12}{precision:<10}{args.n_test / np.median(s):>8.1f}"
            f"{np.median(seconds['torch', 'fp32'] / s):>9.2f}x"
            f"{np.median(seconds[fp32] / s):>8.2f}x{deviation:>13.2g}"
            f"{correlation:>8.4f}{accuracy:>10.3f}{auc(y_test, p):>7.3f}  {change}"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
