"""The ``skcxr`` command line: ``study``, ``predict``, ``explain``, ``serve``, ``data``.

Bad input (a missing path, an empty folder, an unknown layout, a file that is not
a model) ends with a one-line ``skcxr: error: ...`` and exit status 2, not a
traceback.
"""

import argparse
import csv
import os
import sys
import warnings

import numpy as np

from .study._settings import MASKS

__all__ = ["main", "console_main"]

MODEL_HELP = "a model file saved by 'skcxr study' (models/*.skops) or save_model"
# the folder layouts 'skcxr study' and 'skcxr data describe' read (as
# skcxr.study._readers.LAYOUTS; listed here so that the parser imports neither)
LAYOUTS = (
    "kermany",
    "chestxray14",
    "chexpert",
    "mimic",
    "padchest",
    "rsna",
    "vindr",
    "siim",
)

# glibc returns large tensors' memory to the OS after every free, so eager torch
# on the CPU page-faults the same buffers in again and again: raising these
# thresholds made training and inference 1.2-1.5x faster in benchmarks/.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def _positive_int(text):
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _positive_number(text):
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _fraction(text):
    """An argparse type: a number strictly between 0 and 1."""
    value = _positive_number(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not below 1")
    return value


def _port(text):
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a port number (0 to 65535; 0 picks a free one)"
        )
    return value


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
        choices=LAYOUTS,
        help="folder layout of --data (default: %(default)s)",
    )
    study.add_argument(
        "--external",
        metavar="DIR",
        help="a second data set's folder: every model is also scored there "
        "(external validation; findings matched by their common names)",
    )
    study.add_argument(
        "--external-layout",
        choices=LAYOUTS,
        help="folder layout of --external (default: --layout)",
    )
    study.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    study.add_argument("--random-state", type=int, default=0)
    study.add_argument(
        "--config",
        help="a TOML file of settings (name = value); flags below override it",
    )
    study.add_argument(
        "--size",
        type=_positive_int,
        help="image size in pixels (default: 64 synthetic, the backbone's native "
        "input size, 224 for most, on a real folder)",
    )
    study.add_argument(
        "--backbone", help="pretrained backbone (default: efficientnet_lite0)"
    )
    study.add_argument(
        "--weights",
        help="the backbone's weights: imagenet (default), a state-dict file "
        "(torchvision, torchxrayvision or CheXNet layout) or xrv:<name> "
        "(torchxrayvision's chest X-ray weights from its folder)",
    )
    study.add_argument(
        "--epochs",
        type=_positive_int,
        help="epochs of every network (head, fine-tuning, scratch, autoencoder)",
    )
    study.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    study.add_argument(
        "--target-sensitivity",
        type=_fraction,
        help="sensitivity of 'any finding' the operating threshold reaches on the "
        "validation split, then reported on test (default: 0.95)",
    )
    _add_engine(
        study,
        "for the frozen backbone's features, the embeddings and the PaDiM "
        "detector (default: torch)",
        "calibrated on training images; the report shows what it costs",
    )
    study.add_argument(
        "--max-images",
        type=_positive_int,
        help="study a stratified, patient-grouped subsample of about this many "
        "images (a first run on a large folder)",
    )
    study.add_argument(
        "--log-dir",
        metavar="DIR",
        help="write a TensorBoard run per trained network into DIR "
        "(DIR/<task>/<network>; 'tensorboard --logdir DIR' shows them); needs "
        "'pip install skcxr[tensorboard]'",
    )
    study.add_argument(
        "--streaming",
        choices=("auto", "always", "never"),
        help="read --data images from the files batch by batch instead of loading "
        "them all (auto, the default: when their float32 array would exceed 25%% "
        "of the available memory)",
    )
    study.add_argument(
        "--mask",
        choices=MASKS,
        help="what the images go through before every task: none (the default), "
        "otsu (Otsu's threshold), segmenter (a U-Net trained on the training "
        "images' lung masks, which the synthetic data has) or clahe+segmenter; "
        "the report compares the segmenter's masks with Otsu's and a classifier "
        "on each",
    )

    predict = commands.add_parser(
        "predict",
        help="class probabilities of image files",
        description="Write the class probabilities of image files as CSV.",
    )
    predict.add_argument("model", help=MODEL_HELP)
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM...)")
    predict.add_argument(
        "-o", "--output", default="-", help="CSV file (default: " "standard output)"
    )
    predict.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a Dask scheduler (e.g. tcp://10.0.0.5:8786) whose workers read and "
        "predict the files, chunk by chunk; needs 'pip install skcxr[dask]' and "
        "the files at the same paths on every worker",
    )
    predict.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=256,
        metavar="N",
        help="files read and predicted at a time, here or per Dask task "
        "(default: %(default)s)",
    )
    _add_engine(
        predict,
        "(default: the one the model was saved with, torch)",
        "needs a model fitted with precision int8",
    )
    _add_trust(predict)

    explain = commands.add_parser(
        "explain",
        help="a heatmap of what drives a prediction",
        description="Draw a Grad-CAM (or occlusion) heatmap over one image.",
    )
    explain.add_argument("model", help=MODEL_HELP)
    explain.add_argument("image", help="an image file")
    explain.add_argument("-o", "--output", default="heatmap.png", help="PNG file")
    explain.add_argument(
        "--method", default="grad_cam", choices=["grad_cam", "occlusion"]
    )
    _add_trust(explain)

    serve = commands.add_parser(
        "serve",
        help="a web page that predicts and explains uploaded images",
        description="Serve an upload-and-explain web app for a model saved by "
        "'skcxr study' (Flask app, waitress server). For research use, not a "
        "medical device.",
    )
    serve.add_argument("model", help="a classification model from models/")
    serve.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    serve.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="(default: %(default)s; 0 picks a free port)",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=4,
        help="requests served at once (default: %(default)s)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_positive_number,
        default=20,
        help="largest request (default: %(default)s)",
    )
    serve.add_argument(
        "--max-files",
        type=_positive_int,
        default=100,
        help="most images in one request (default: %(default)s)",
    )
    serve.add_argument(
        "--token", help="require 'Authorization: Bearer TOKEN' on every API request"
    )
    serve.add_argument(
        "--detector", help="an anomaly detector from models/ to score every upload"
    )
    _add_engine(
        serve,
        "(default: the one the model was saved with, torch)",
        "needs a model fitted with precision int8",
    )
    _add_trust(serve)
    _add_data(commands)
    return parser


def _add_engine(command, default, int8_note):
    command.add_argument(
        "--engine",
        choices=["torch", "onnxruntime", "openvino"],
        help="CPU inference engine of the network(s): onnxruntime or openvino "
        "(faster on a CPU; need 'pip install skcxr[onnx]' or "
        f"'pip install skcxr[openvino]') {default}",
    )
    command.add_argument(
        "--precision",
        choices=["fp32", "bf16", "int8"],
        help="arithmetic of --engine: fp32 (default), bf16 (openvino, on CPUs "
        "with bfloat16 instructions) or int8 (onnxruntime, 8-bit quantisation: faster, "
        f"outputs a few percent off; {int8_note})",
    )


def _set_engine(model, engine, path, precision=None):
    """Set ``--engine`` (and ``--precision``) on every step of a loaded model."""
    from .nn._engines import set_engine

    if precision is not None and engine is None:
        raise ValueError("--precision sets the arithmetic of --engine: give both.")
    if engine is not None and not set_engine(model, engine, precision):
        print(
            f"skcxr: note: no step of {path} runs a network; --engine {engine} "
            "changes nothing",
            file=sys.stderr,
        )


def _add_trust(command):
    command.add_argument(
        "--trust",
        action="store_true",
        help="also read pickle/joblib model files, which run code while they load: "
        "only for files you made yourself (e.g. a model whose backbone is your own "
        "torch module); the .skops files of 'skcxr study' and save_model need no "
        "--trust",
    )


def _load_model(path, trust=False):
    from sklearn.pipeline import Pipeline

    from .utils._model_io import load_model

    model = load_model(path, trust=trust)
    if not (isinstance(model, Pipeline) and _reads_files(model)):
        raise ValueError(
            f"{path} is not an image-file model; use a file from the models/ folder "
            "that 'skcxr study' writes"
        )
    return model


def _reads_files(pipeline):
    from .preprocessing import ImageLoader

    return isinstance(pipeline.steps[0][1], ImageLoader)


def _check_files(paths):
    for path in paths:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder, not an image file")
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file not found: {path}")
        if not os.path.isfile(path):
            raise ValueError(f"{path} is not a regular file (a pipe or a device)")


def _read_all(loader, paths):
    """Images of the readable files (one parallel pass) and an error message
    per unreadable one, both keyed by input position."""
    from sklearn.base import clone

    reader = clone(loader).set_params(on_error="skip")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images, _ = reader.load(paths)
    except ValueError:  # no file at all could be read
        return {}, {i: _read_error(loader, path) for i, path in enumerate(paths)}
    kept = reader.kept_indices_.tolist()
    reason = dict(zip(reader.failed_paths_, reader.errors_))
    failed = set(range(len(paths))) - set(kept)
    errors = {i: reason[paths[i]].splitlines()[0] for i in sorted(failed)}
    return dict(zip(kept, images)), errors


def _read_error(loader, path):
    try:
        loader.transform([path])
    except (ValueError, OSError, ImportError) as exc:
        return str(exc).splitlines()[0]
    return ""


def _output_columns(model):
    """Column names and a function images -> rows of the CSV for any saved model."""
    from .models import GAWeightedVoter, TransferClassifier

    estimator = model[-1]
    if hasattr(estimator, "score_samples") and not hasattr(estimator, "classes_"):
        # an outlier detector: +1 inlier (healthy-looking), -1 outlier
        def rows(images):
            scores = estimator.score_samples(images)
            if hasattr(estimator, "offset_"):  # predict()'s rule, scoring once
                labels = np.where(scores - estimator.offset_ < 0, -1, 1)
            else:
                labels = estimator.predict(images)
            return [
                ["normal" if label == 1 else "anomalous", f"{score:.6f}"]
                for label, score in zip(labels, scores)
            ]

        return ["prediction", "normality score"], rows
    classes = np.asarray(estimator.classes_)
    proba_columns = [f"p({c})" for c in classes]

    # skcxr's classifiers predict from their probabilities: derive the labels
    # from them instead of running the network a second time
    from_proba = isinstance(estimator, (TransferClassifier, GAWeightedVoter))

    def rows(images):
        proba = estimator.predict_proba(images)
        if getattr(estimator, "multilabel_", False):  # every finding above 0.5
            pred = ["|".join(str(c) for c in classes[row > 0.5]) for row in proba]
        elif from_proba:
            pred = classes[np.argmax(proba, axis=1)]
        else:
            pred = estimator.predict(images)
        return [[p, *(f"{v:.6f}" for v in probs)] for p, probs in zip(pred, proba)]

    return ["prediction", *proba_columns], rows


def _csv_rows(model, paths):
    """The CSV cells after the path of each file in ``paths``: the model's
    output and an error message (empty for a readable file).

    ``skcxr predict`` applies it chunk by chunk, here or on Dask workers
    (``--scheduler``), so it lives at module level where workers import it.
    """
    paths = [str(path) for path in paths]
    columns, predict_rows = _output_columns(model)
    images, errors = _read_all(model[0], paths)
    predicted = {}
    if images:
        order = sorted(images)
        stacked = np.stack([images[i] for i in order])
        if len(model) > 2:  # steps between the loader and the model
            stacked = model[1:-1].transform(stacked)
        predicted = dict(zip(order, predict_rows(stacked)))
    rows = np.empty((len(paths), len(columns) + 1), dtype=object)
    for i in range(len(paths)):
        rows[i] = (
            [""] * len(columns) + [errors[i]] if i in errors else [*predicted[i], ""]
        )
    return rows


def _predict(args):
    import contextlib

    from .parallel import connect, map_in_chunks

    model = _load_model(args.model, args.trust)
    _set_engine(model, args.engine, args.model, args.precision)
    _check_files(args.images)
    with contextlib.ExitStack() as stack:
        client = None  # checked before any file is read
        if args.scheduler is not None:
            client = stack.enter_context(connect(args.scheduler))
        columns, _ = _output_columns(model)
        rows = map_in_chunks(
            model,
            args.images,
            method=_csv_rows,
            client=client,
            chunk_size=args.chunk_size,
            # a bar over the files on a terminal, never in a log or a pipe
            progress=len(args.images) > args.chunk_size and sys.stderr.isatty(),
        )
    n_errors = sum(bool(row[-1]) for row in rows)
    out = sys.stdout if args.output == "-" else open(args.output, "w", newline="")
    try:
        writer = csv.writer(out)
        writer.writerow(["path", *columns, "error"])
        for path, row in zip(args.images, rows):
            writer.writerow([path, *row])
    finally:
        if out is not sys.stdout:
            out.close()
    if n_errors:
        print(
            f"skcxr: {n_errors} of {len(args.images)} file(s) could not be read; "
            "see the error column",
            file=sys.stderr,
        )
    return 2 if n_errors == len(args.images) else 0


def _study_settings(args):
    from .study._settings import StudySettings

    settings = StudySettings.quick() if args.quick else StudySettings()
    if args.data is not None:
        settings = settings.for_real_data()
    if args.config is not None:
        settings = StudySettings.from_toml(args.config, base=settings)
    epochs = args.epochs
    flags = {
        "size": args.size,
        "backbone": args.backbone,
        "weights": args.weights,
        "device": args.device,
        "engine": args.engine,
        "precision": args.precision,
        "max_images": args.max_images,
        "streaming": args.streaming,
        "log_dir": args.log_dir,
        "mask": args.mask,
        "target_sensitivity": args.target_sensitivity,
        **{
            name: epochs
            for name in (
                "head_epochs",
                "finetune_epochs",
                "scratch_epochs",
                "anomaly_epochs",
                "segmenter_epochs",
            )
        },
    }
    if args.backbone is not None and args.size is None and args.data is not None:
        settings = settings.updated({"backbone": args.backbone}, source="--backbone")
        settings = settings.for_real_data()
    return settings.updated(flags, source="command line")


def _study(args):
    from .study._run import run_study

    for flag, folder in (("--data", args.data), ("--external", args.external)):
        if folder is not None and not os.path.isdir(folder):
            if os.path.exists(folder):
                raise NotADirectoryError(
                    f"{flag} {folder} is a file; give the data set's folder"
                )
            raise FileNotFoundError(f"data folder not found: {folder}")
    settings = _study_settings(args)
    if settings.log_dir:  # fail now, not after the first network has trained
        from .nn._callbacks import check_tensorboard

        check_tensorboard()
    path = run_study(
        args.out,
        data=args.data,
        layout=args.layout,
        external=args.external,
        external_layout=args.external_layout,
        settings=settings,
        random_state=args.random_state,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"report written to {os.path.abspath(path)}")


def _explain(args):
    from .inspection import HeatmapDisplay

    model = _load_model(args.model, args.trust)
    _check_files([args.image])
    images = model[:-1].transform([args.image])
    estimator = model[-1]
    if not hasattr(estimator, "predict_proba"):
        raise ValueError(
            f"{args.model} is an anomaly detector, not a classifier: it has no class "
            "evidence to explain; 'skcxr predict' gives its normality score"
        )
    if args.method == "grad_cam" and not hasattr(estimator, "module_"):
        raise ValueError(
            f"the last step of {args.model} ({type(estimator).__name__}) is not a "
            "torch network, so it has no image gradient for Grad-CAM; use "
            "--method occlusion, which works with any classifier"
        )
    label = estimator.predict(images)[0]
    display = HeatmapDisplay.from_estimator(
        estimator, images, method=args.method, titles=[f"predicted: {label}"]
    )
    display.figure_.savefig(args.output, dpi=120, bbox_inches="tight")
    print(f"{args.image}: predicted {label}; heatmap written to {args.output}")


def _serve(args):
    from .serve import create_app, serve

    model = _load_model(args.model, args.trust)
    detector = None if args.detector is None else _load_model(args.detector, args.trust)
    _set_engine(model, args.engine, args.model, args.precision)
    if detector is not None:
        _set_engine(detector, args.engine, args.detector, args.precision)
    app = create_app(
        model,
        detector=detector,
        max_upload_mb=args.max_upload_mb,
        max_files=args.max_files,
        token=args.token,
    )
    serve(
        app,
        host=args.host,
        port=args.port,
        threads=args.threads,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )


# ``skcxr data describe``: what a real data set's folder holds (torch-free)


def _add_data(commands):
    data = commands.add_parser(
        "data",
        help="look at a real data set's folder",
        description="Look at the folder of a public chest X-ray data set.",
    )
    actions = data.add_subparsers(dest="data_command", required=True)
    describe = actions.add_parser(
        "describe",
        help="images listed and found, patients, views, sex, age, labels, split",
        description="Summarise a data set's folder on one screen: the images its "
        "label files list and those on disk, patients and studies, views, sex and "
        "age, each finding's positive / negative / unknown labels and the official "
        "split. Reads label files only (no image, no torch).",
    )
    describe.add_argument("folder", metavar="DIR", help="the data set's folder")
    describe.add_argument(
        "--layout", required=True, choices=LAYOUTS, help="its folder layout"
    )


def _data(args):
    from .datasets._describe import LayoutError, describe_dataset, format_description

    if not os.path.isdir(args.folder):
        if os.path.exists(args.folder):
            raise NotADirectoryError(
                f"{args.folder} is a file; give the data set's folder"
            )
        raise FileNotFoundError(f"data folder not found: {args.folder}")
    try:
        summary = describe_dataset(args.folder, args.layout)
    except LayoutError as exc:
        raise ValueError(exc.message(f"--layout {args.layout}")) from None
    print(format_description(summary))


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
    command = {
        "study": _study,
        "predict": _predict,
        "explain": _explain,
        "serve": _serve,
        "data": _data,
    }[args.command]
    try:
        return command(args) or 0
    except (ValueError, OSError, ImportError) as exc:
        print(f"skcxr: error: {exc}", file=sys.stderr)
        return 2
