"""The ``skcxr`` command line: ``study``, ``predict`` and ``explain``.

Bad input (a missing path, an empty folder, an unknown layout, a file that is not
a model) ends with a one-line ``skcxr: error: ...`` and exit status 2, not a
traceback.
"""

import argparse
import csv
import os
import sys

__all__ = ["main", "console_main"]

# glibc returns large tensors' memory to the OS after every free, so eager torch
# on the CPU page-faults the same buffers in again and again: raising these
# thresholds made training and inference 1.2-1.5x faster in benchmarks/.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def _parser():
    parser = argparse.ArgumentParser(
        prog="skcxr", description="Chest X-ray studies with scikit-learn estimators."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    study = commands.add_parser(
        "study",
        help="run a whole study and write an HTML report",
        description="Run a whole chest X-ray study (classification, embeddings, "
        "anomaly detection, ensembles, explanations) and write report.html, "
        "metrics.csv and the fitted models into --out.",
    )
    study.add_argument(
        "--out", default="skcxr-report", help="output folder " "(default: %(default)s)"
    )
    study.add_argument(
        "--data",
        help="a real data set's folder (default: " "built-in synthetic images)",
    )
    study.add_argument(
        "--layout",
        default="kermany",
        choices=["kermany", "chestxray14"],
        help="folder layout of --data",
    )
    study.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    study.add_argument("--random-state", type=int, default=0)

    predict = commands.add_parser(
        "predict",
        help="class probabilities of image files",
        description="Write the class probabilities of image files as CSV.",
    )
    predict.add_argument("model", help="a .joblib model saved by 'skcxr study'")
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM...)")
    predict.add_argument(
        "-o", "--output", default="-", help="CSV file (default: " "standard output)"
    )

    explain = commands.add_parser(
        "explain",
        help="a heatmap of what drives a prediction",
        description="Draw a Grad-CAM (or occlusion) heatmap over one image.",
    )
    explain.add_argument("model", help="a .joblib model saved by 'skcxr study'")
    explain.add_argument("image", help="an image file")
    explain.add_argument("-o", "--output", default="heatmap.png", help="PNG file")
    explain.add_argument(
        "--method", default="grad_cam", choices=["grad_cam", "occlusion"]
    )
    return parser


def _load_model(path):
    import joblib
    from sklearn.pipeline import Pipeline

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        model = joblib.load(path)
    except Exception as exc:
        raise ValueError(f"{path} is not a model saved by skcxr ({exc})") from exc
    if not (isinstance(model, Pipeline) and hasattr(model, "predict_proba")):
        raise ValueError(
            f"{path} is not an image-file model; use models/binary.joblib or "
            "models/three-class.joblib from 'skcxr study'"
        )
    return model


def _check_files(paths):
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")


def _study(args):
    from .study._run import run_study

    if args.data is not None and not os.path.isdir(args.data):
        raise FileNotFoundError(f"data folder not found: {args.data}")
    path = run_study(
        args.out,
        data=args.data,
        layout=args.layout,
        quick=args.quick,
        random_state=args.random_state,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"report written to {os.path.abspath(path)}")


def _predict(args):
    model = _load_model(args.model)
    _check_files(args.images)
    proba = model.predict_proba(args.images)
    pred = model.classes_[proba.argmax(axis=1)]
    out = sys.stdout if args.output == "-" else open(args.output, "w", newline="")
    try:
        writer = csv.writer(out)
        writer.writerow(["path", "prediction", *[f"p({c})" for c in model.classes_]])
        for path, label, row in zip(args.images, pred, proba):
            writer.writerow([path, label, *(f"{p:.6f}" for p in row)])
    finally:
        if out is not sys.stdout:
            out.close()


def _explain(args):
    from .inspection import HeatmapDisplay

    model = _load_model(args.model)
    _check_files([args.image])
    images = model[:-1].transform([args.image])
    classifier = model[-1]
    label = classifier.predict(images)[0]
    display = HeatmapDisplay.from_estimator(
        classifier, images, method=args.method, titles=[f"predicted: {label}"]
    )
    display.figure_.savefig(args.output, dpi=120, bbox_inches="tight")
    print(f"{args.image}: predicted {label}; heatmap written to {args.output}")


def tune_glibc_malloc():
    """Keep large freed blocks in the process instead of unmapping them.

    Equivalent to ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``. Only
    the command line calls this: importing skcxr changes no process-wide
    setting. Returns whether it applied (False off glibc).
    """
    import ctypes
    import ctypes.util

    if os.environ.get("SKCXR_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def console_main():
    """Entry point of the ``skcxr`` program: tunes malloc, then runs :func:`main`."""
    tune_glibc_malloc()
    return main()


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    command = {"study": _study, "predict": _predict, "explain": _explain}[args.command]
    try:
        command(args)
    except (ValueError, OSError) as exc:
        print(f"skcxr: error: {exc}", file=sys.stderr)
        return 2
    return 0
