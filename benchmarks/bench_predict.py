"""Predicting over image files with each inference engine, in Python and CLI.

Writes ``--n-images`` synthetic chest X-ray PNG files (``make_chest_xrays`` and
``write_chest_xrays``, ChestX-ray14 layout) at ``--size`` px into a temporary
folder, fits once (``engine="torch"``) the frozen-backbone pipeline::

    make_pipeline(
        ImageLoader(size=224),
        TransferClassifier(backbone="efficientnet_lite0", weights="imagenet",
                           trainable="head", max_epochs=2),
    )

on ``--n-fit`` of them, then times ``predict_proba(paths)`` of that same fitted
pipeline with ``set_params(transferclassifier__engine=...)`` for ``torch``,
``onnxruntime`` and ``openvino``:

* ``first call``: the first ``predict_proba`` with the engine (for the engines,
  the export to ONNX and the engine's compilation included);
* ``steady``: later calls (the runner cached), interleaved over the engines
  ``--repeats`` times, median; images/s and the ratio to torch (median of the
  per-round ratios; > 1 means faster than torch);
* ``export/warm-up``: first call minus the steady median;
* ``max abs diff``: largest difference of the probabilities to torch's;
* ``held-out AUC``: ROC AUC (bacteria vs normal) on the files not fitted on;
* ``onnxruntime int8``: ONNX Runtime with ``precision="int8"``, calibrated on
  32 of the fitted files,
  which the pipeline keeps because it is fitted with ``precision="int8"`` (its
  features are streamed through torch all the same);
* ``(reading only)``: the pipeline's ``ImageLoader.transform(paths)`` alone
  (decoding and resizing the files), interleaved with the rest.

Then (unless ``--no-cli``) the same through the command line, as a user runs it:
the model saved with :func:`skcxr.utils.save_model`, and
``skcxr predict model.skops files... --engine X -o out.csv`` timed as wall time
of the whole process (interpreter start, imports, loading, export, reading the
files, writing the CSV), once per engine, plus the CSV's largest difference to
the in-process torch probabilities; and once with one file and the default
engine, the fixed cost of a run (start, imports, loading the model).

Engines whose packages are missing are skipped. Run:
``python benchmarks/bench_predict.py [--n-images 200 --repeats 3]``;
``--quick`` for a small smoke run (32 images, 1 repeat).
"""

import argparse
import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ENGINES = ("torch", "onnxruntime", "openvino")


def _available(engine):
    return engine == "torch" or bool(
        importlib.util.find_spec(engine) and importlib.util.find_spec("onnx")
    )


def _cli_command():
    exe = shutil.which("skcxr", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "skcxr"]


def _read_csv(path):
    """The ``p(class)`` columns of ``skcxr predict``'s CSV (6 decimals)."""
    with open(path, newline="") as f:
        header, *rows = csv.reader(f)
    columns = [i for i, name in enumerate(header) if name.startswith("p(")]
    return np.array([[float(row[i]) for i in columns] for row in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--n-fit", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", dest="cli", action="store_false")
    parser.add_argument("--quick", action="store_true", help="32 images, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.n_fit, args.repeats = 32, 16, 1

    import torch
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline

    from skcxr import ImageLoader, TransferClassifier
    from skcxr.datasets import make_chest_xrays, write_chest_xrays
    from skcxr.utils import save_model

    engines = [e for e in ENGINES if _available(e)]
    skipped = sorted(set(ENGINES) - set(engines))
    if "onnxruntime" in engines:  # INT8: "engine int8"
        engines.append("onnxruntime int8")
    print(
        f"{args.backbone} ({args.weights}), {args.n_images} PNG files of "
        f"{args.size}x{args.size}, fit on {args.n_fit}, {args.repeats} interleaved "
        f"repeats, torch threads {torch.get_num_threads()}, "
        f"CPUs {len(os.sched_getaffinity(0))}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else "")
    )

    with tempfile.TemporaryDirectory() as tmp:
        X, y = make_chest_xrays(
            args.n_images, classes=["normal", "bacteria"], size=args.size,
            random_state=0,
        )  # fmt: skip
        paths = list(
            write_chest_xrays(
                tmp, X, y, layout="chestxray14", fmt="png", random_state=0
            )
        )
        del X
        model = make_pipeline(
            ImageLoader(size=args.size),
            TransferClassifier(
                backbone=args.backbone,
                weights=None if args.weights == "none" else args.weights,
                trainable="head",
                max_epochs=2,
                random_state=0,
            ),
        )

        def settings(config):
            engine, _, precision = config.partition(" ")
            return {
                "transferclassifier__engine": engine,
                "transferclassifier__precision": precision or "fp32",
            }

        if "onnxruntime int8" in engines:
            # keeps calibration images (the features are streamed by torch)
            model.set_params(**settings("onnxruntime int8"))
        start = time.perf_counter()
        model.fit(paths[: args.n_fit], y[: args.n_fit])
        print(f"fit ({args.n_fit} files): {time.perf_counter() - start:.1f} s\n")

        def predict(engine):
            model.set_params(**settings(engine))
            start = time.perf_counter()
            proba = model.predict_proba(paths)
            return time.perf_counter() - start, proba

        def read():  # the loader alone: reading and resizing the files
            start = time.perf_counter()
            model[0].transform(paths)
            return time.perf_counter() - start

        first, proba = {}, {}
        for engine in engines:
            first[engine], proba[engine] = predict(engine)
        steady = {engine: [] for engine in engines}
        reading = []
        for _ in range(args.repeats):
            reading.append(read())
            for engine in engines:
                seconds, got = predict(engine)
                steady[engine].append(seconds)
                np.testing.assert_array_equal(got, proba[engine])  # deterministic
        steady = {e: np.asarray(t) for e, t in steady.items()}

        n = args.n_images
        held_out = slice(args.n_fit, None)  # files the model was not fitted on
        positive = model.classes_ == "bacteria"
        print("== in process: pipeline.predict_proba(paths) ==")
        print(
            f"{'engine':<18}{'first call s':>13}{'export/warm-up s':>17}"
            f"{'steady s':>10}{'img/s':>8}{'vs torch':>10}{'max abs diff':>14}"
            f"{'held-out AUC':>14}"
        )
        for engine in engines:
            median = np.median(steady[engine])
            ratio = np.median(steady["torch"] / steady[engine])
            diff = np.abs(proba[engine] - proba["torch"]).max()
            auc = roc_auc_score(
                y[held_out] == "bacteria", proba[engine][held_out][:, positive][:, 0]
            )
            print(
                f"{engine:<18}{first[engine]:>13.2f}{first[engine] - median:>17.2f}"
                f"{median:>10.2f}{n / median:>8.1f}{ratio:>9.2f}x{diff:>14.1e}"
                f"{auc:>14.3f}"
            )
        median = np.median(reading)
        print(
            f"{'(reading only)':<18}{'':>13}{'':>17}{median:>10.2f}{n / median:>8.1f}"
        )
        print(
            "steady runs (s): "
            + "; ".join(
                f"{e} {' '.join(f'{t:.2f}' for t in steady[e])}" for e in engines
            )
        )

        if not args.cli:
            return
        model.set_params(**settings("torch"))
        model_path = os.path.join(tmp, "model.skops")
        save_model(model, model_path)
        command = _cli_command()
        wall = {}
        print(
            f"\n== command line: {' '.join(os.path.basename(c) for c in command)} "
            f"predict model.skops <{n} files> --engine X -o out.csv =="
        )
        print(
            f"{'engine':<18}{'wall s':>8}{'img/s':>8}{'vs torch':>10}{'max abs diff':>14}"
        )
        for engine in engines:
            out = os.path.join(tmp, f"{engine.replace(' ', '-')}.csv")
            name, _, precision = engine.partition(" ")
            flags = ["--engine", name] + ["--precision", precision] * bool(precision)
            cmd = [*command, "predict", model_path, *paths, *flags]
            start = time.perf_counter()
            subprocess.run([*cmd, "-o", out], check=True)
            wall[engine] = time.perf_counter() - start
            got = _read_csv(out)
            diff = np.abs(got - proba["torch"]).max()
            print(
                f"{engine:<18}{wall[engine]:>8.2f}{n / wall[engine]:>8.1f}"
                f"{wall['torch'] / wall[engine]:>9.2f}x{diff:>14.1e}"
            )
        # the fixed cost of a run: start, imports, loading the model, one file
        out = os.path.join(tmp, "one.csv")
        start = time.perf_counter()
        subprocess.run(
            [*command, "predict", model_path, paths[0], "-o", out], check=True
        )
        print(f"{'torch, 1 file':<18}{time.perf_counter() - start:>8.2f}")


if __name__ == "__main__":
    main()
