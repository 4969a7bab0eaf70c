"""Indexing the public data sets' label files: skcxr's loaders vs torchxrayvision.

The CheXpert case indexes the full 223,414-row ``train.csv`` of CheXpert
(Irvin et al. 2019), shipped in torchxrayvision's wheel, in the data set's
folder layout with only part of the images on disk (a partial download:
every ``--every``-th patient folder, as empty files, which neither library
reads while indexing). It times, interleaved, repeat after repeat:

* torchxrayvision's ``CheX_Dataset`` as constructed with its own defaults
  (``views=["PA"]``, ``unique_patients=True``: it keeps one PA image per
  patient, 20,543 rows), and with ``views=["*"], unique_patients=False`` (every
  row, the work skcxr does). It reads the CSV with pandas, never looks at the
  image files and leaves the labels of all 14 columns as they are;
* ``load_chexpert(root, on_missing="skip")``, twice: with the scan of the
  file's bytes (its path for a label file over a megabyte: the columns every
  row needs are cut out at the commas' positions, the other cells only for
  the rows kept; pandas' C parser reads the columns of a file with quoted
  fields) and with Python's csv module (every cell of every row, the path
  of small files and the reference). Both return every row's view and which
  images are on disk (the paths' first folder level checked on their bytes,
  the rest listed or stat-ed), and for the images on disk the labels of the
  13 findings, patient and study ids, views, sex, age and every column;

then, on the loaded Bunch, which-files-exist by ``os.path.exists`` per row vs
skcxr's choice, and the patient-grouped hold-out splits of all rows
(scikit-learn's ``GroupShuffleSplit`` and skcxr's ``holdout_split``: grouped
for a 2-D label matrix; with ``--stratified`` also grouped and stratified on a
1-D label, the Edema column, which takes minutes). ``--all`` also times ChestX-ray14 (112,120
rows) and PadChest (160,861 rows), both skcxr paths, against
torchxrayvision's ``NIH_Dataset`` and ``PC_Dataset`` (its defaults and every
row); PadChest's label lists are parsed once per distinct string.

Import times are not counted (torchxrayvision imports torch and pandas; skcxr
imports pandas on its first large file). Each ratio is the median of the
per-repeat ratios; the machine's other load shows in the spread and in the
load average printed with each table.

Run::

    python benchmarks/bench_datasets.py            # CheXpert, 5 repeats
    python benchmarks/bench_datasets.py --all      # also ChestX-ray14, PadChest
    python benchmarks/bench_datasets.py --quick    # 3 repeats
    python benchmarks/bench_datasets.py --stratified  # + a stratified split
"""

import argparse
import csv as csv_module
import gc
import gzip
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from skcxr.datasets import _table, load_chestxray14, load_chexpert, load_padchest
from skcxr.datasets._common import present
from skcxr.utils._split import holdout_split


def with_csv_module(loader, *args, **kwargs):
    """``loader(*args, **kwargs)`` with its label files read by Python's csv
    module (as a file under a megabyte is)."""
    saved, _table.PARSER = _table.PARSER, "csv"
    try:
        return loader(*args, **kwargs)
    finally:
        _table.PARSER = saved


def xrv_data():
    import torchxrayvision as xrv

    return xrv, Path(xrv.__file__).parent / "data"


def make_chexpert(folder, data, every):
    """CheXpert-v1.0-small/train.csv and every ``every``-th patient's files."""
    base = Path(folder) / "CheXpert-v1.0-small"
    base.mkdir(parents=True)
    csv = base / "train.csv"
    csv.write_bytes(gzip.decompress((data / "chexpert_train.csv.gz").read_bytes()))
    lines = csv.read_text().splitlines()[1:]
    written = 0
    for line in lines:
        relative = line.split(",", 1)[0].split("/", 1)[1]
        patient = int(relative.split("/")[1][len("patient") :])
        if patient % every == 0:
            path = base / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            written += 1
    return base, len(lines), written


def make_flat(folder, names, every):
    """Every ``every``-th of ``names`` as an empty file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names[::every]:
        (folder / name).touch()


def compare(runs, repeats):
    """Interleaved wall and CPU times, and the last result of each run."""
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    results = {}
    for _ in range(repeats):
        for name, run in runs.items():
            results.pop(name, None)
            gc.collect()  # no run pays for the garbage of the one before
            start, start_cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the missing-images warning
                results[name] = run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu, results


def _ratio(times, name, other):
    return statistics.median([t / b for t, b in zip(times[name], times[other])])


def report(title, runs, repeats, base, rows_of):
    """Time ``runs`` and print each median with its ratio to each of ``base``.

    ``base`` is a run's name or a list of them (one ratio column each). The
    CPU time (this process, user and system) is printed beside the wall
    time: other work on a shared machine stretches the wall time of a run,
    hardly its CPU time.
    """
    bases = [base] if isinstance(base, str) else list(base)
    load = os.getloadavg()[0]
    times, cpu, results = compare(runs, repeats)
    print(
        f"\n{title} ({repeats} interleaved repeats, load average "
        f"{load:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    print(
        f"{'run':<56}{'rows':>7}{'wall s':>8}{'(min-max)':>13}"
        + "".join(f"{'x run ' + str(k + 1):>9}" for k in range(len(bases)))
        + f"{'CPU s':>8}"
        + "".join(f"{'x run ' + str(k + 1):>9}" for k in range(len(bases)))
    )
    ratios = {}
    for name in runs:
        per = [_ratio(times, name, other) for other in bases]
        per_cpu = [_ratio(cpu, name, other) for other in bases]
        ratios[name] = per[0]
        spread = f"({min(times[name]):.2f}-{max(times[name]):.2f})"
        print(
            f"{name:<56}{rows_of(results[name]):>7}"
            f"{statistics.median(times[name]):>8.3f}{spread:>13}"
            + "".join(f"{r:>8.2f}x" for r in per)
            + f"{statistics.median(cpu[name]):>8.3f}"
            + "".join(f"{r:>8.2f}x" for r in per_cpu)
        )
    print(
        "  (x run k: median of the per-repeat ratios to run "
        + ", ".join(f"{k + 1} = {name}" for k, name in enumerate(bases))
        + ")"
    )
    return times, results, ratios


def bench_chexpert(xrv, data, every, repeats, stratified=False):
    folder = tempfile.mkdtemp()
    try:
        base, n_rows, written = make_chexpert(folder, data, every)
        print(
            f"CheXpert train.csv: {n_rows} rows; {written} image files on disk "
            f"(every {every}th patient)"
        )
        csv = str(base / "train.csv")
        runs = {
            "torchxrayvision CheX_Dataset (its defaults)": lambda: xrv.datasets.CheX_Dataset(
                imgpath=str(base), csvpath=csv
            ),
            "torchxrayvision CheX_Dataset (views=*, every row)": lambda: xrv.datasets.CheX_Dataset(
                imgpath=str(base), csvpath=csv, views=["*"], unique_patients=False
            ),
            "skcxr load_chexpert(on_missing='skip'), scan": lambda: load_chexpert(
                folder, on_missing="skip"
            ),
            "skcxr load_chexpert(on_missing='skip'), csv module": lambda: with_csv_module(
                load_chexpert, folder, on_missing="skip"
            ),
        }

        def rows_of(result):
            return len(result) if hasattr(result, "csv") else len(result.paths)

        times, results, ratios = report(
            "Index CheXpert's train.csv",
            runs,
            repeats,
            list(runs)[:2],
            rows_of,
        )
        loaded = results["skcxr load_chexpert(on_missing='skip'), scan"]
        again = results["skcxr load_chexpert(on_missing='skip'), csv module"]
        assert all(
            np.array_equal(loaded[k], again[k], equal_nan=k == "labels")
            for k in ("paths", "labels", "patient_ids", "views", "sex")
        )
        print(
            f"skcxr: {len(loaded.paths)} images on disk, n_missing="
            f"{loaded.n_missing}, {len(loaded.classes)} classes"
        )

        relpaths = [
            line.split(",", 1)[0].split("/", 1)[1]
            for line in Path(csv).read_text().splitlines()[1:]
        ]
        exists = {
            "os.path.exists per row": lambda: np.fromiter(
                (os.path.exists(os.path.join(str(base), p)) for p in relpaths),
                bool,
                len(relpaths),
            ),
            "skcxr present() (folders listed, then a stat each)": lambda: present(
                str(base), relpaths
            ),
        }
        t_exists, r_exists, _ = report(
            "Which images are on disk",
            exists,
            repeats,
            "os.path.exists per row",
            lambda r: int(r.sum()),
        )
        assert (
            r_exists["os.path.exists per row"]
            == r_exists["skcxr present() (folders listed, then a stat each)"]
        ).all()

        # every row's patient (as load_chexpert names it) and its Edema label
        groups = np.array([p.split("/")[1] for p in relpaths])
        with open(csv, newline="") as fh:
            rows = list(csv_module.reader(fh))
        edema = rows[0].index("Edema")
        y = np.array([row[edema] or "blank" for row in rows[1:]])
        splits = {
            "GroupShuffleSplit(test_size=0.2)": lambda: next(
                GroupShuffleSplit(test_size=0.2, random_state=0).split(
                    groups, groups=groups
                )
            ),
            "skcxr holdout_split(2-D labels: grouped)": lambda: holdout_split(
                np.zeros((len(groups), 2)),
                test_size=0.2,
                groups=groups,
                random_state=0,
            ),
        }
        if stratified:  # StratifiedGroupKFold over 64,540 patients: minutes
            splits["skcxr holdout_split(Edema: grouped, stratified)"] = (
                lambda: holdout_split(y, test_size=0.2, groups=groups, random_state=0)
            )
        report(
            f"Patient-grouped hold-out split of {len(groups)} images, "
            f"{len(set(groups))} patients",
            splits,
            repeats,
            "GroupShuffleSplit(test_size=0.2)",
            lambda r: len(r[1]),
        )
        return times, ratios
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_nih_padchest(xrv, data, every, repeats):
    import pandas as pd

    folder = Path(tempfile.mkdtemp())
    try:
        nih_csv = folder / "nih" / "Data_Entry_2017.csv"
        nih_csv.parent.mkdir()
        nih_csv.write_bytes(
            gzip.decompress((data / "Data_Entry_2017_v2020.csv.gz").read_bytes())
        )
        names = pd.read_csv(nih_csv, usecols=["Image Index"])["Image Index"].tolist()
        make_flat(folder / "nih" / "images", names, every)
        nih = folder / "nih"
        runs = {
            "torchxrayvision NIH_Dataset (its defaults)": lambda: xrv.datasets.NIH_Dataset(
                imgpath=str(nih), csvpath=str(nih_csv)
            ),
            "torchxrayvision NIH_Dataset (views=*, every row)": lambda: xrv.datasets.NIH_Dataset(
                imgpath=str(nih),
                csvpath=str(nih_csv),
                views=["*"],
                unique_patients=False,
            ),
            "skcxr load_chestxray14(on_missing='skip'), scan": lambda: load_chestxray14(
                nih, on_missing="skip"
            ),
            "skcxr load_chestxray14(on_missing='skip'), csv module": lambda: with_csv_module(
                load_chestxray14, nih, on_missing="skip"
            ),
        }
        report(
            "Index ChestX-ray14's Data_Entry_2017.csv",
            runs,
            repeats,
            list(runs)[:2],
            lambda r: len(r) if hasattr(r, "csv") else len(r.paths),
        )

        pc_csv = (
            folder / "padchest" / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
        )
        pc_csv.parent.mkdir()
        pc_csv.write_bytes(
            gzip.decompress(
                (
                    data / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
                ).read_bytes()
            )
        )
        frame = pd.read_csv(pc_csv, usecols=["ImageID"])
        make_flat(folder / "padchest", frame["ImageID"].tolist(), every)
        pc = folder / "padchest"
        runs = {
            "torchxrayvision PC_Dataset (its defaults)": lambda: xrv.datasets.PC_Dataset(
                imgpath=str(pc), csvpath=str(pc_csv)
            ),
            "torchxrayvision PC_Dataset (views=*, every row)": lambda: xrv.datasets.PC_Dataset(
                imgpath=str(pc),
                csvpath=str(pc_csv),
                views=["*"],
                unique_patients=False,
            ),
            "skcxr load_padchest(on_missing='skip'), scan": lambda: load_padchest(
                pc, on_missing="skip"
            ),
            "skcxr load_padchest(on_missing='skip'), csv module": lambda: with_csv_module(
                load_padchest, pc, on_missing="skip"
            ),
        }
        report(
            "Index PadChest's label CSV",
            runs,
            repeats,
            list(runs)[:2],
            lambda r: len(r) if hasattr(r, "csv") else len(r.paths),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--every",
        type=int,
        default=10,
        help="one patient (image) in EVERY has files on disk",
    )
    parser.add_argument(
        "--all", action="store_true", help="also ChestX-ray14 and PadChest"
    )
    parser.add_argument(
        "--stratified",
        action="store_true",
        help="also holdout_split stratified on a label (takes minutes)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    start = time.perf_counter()
    xrv, data = xrv_data()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"torchxrayvision {xrv.__version__} imported in "
        f"{time.perf_counter() - start:.1f} s (not counted)"
    )
    results = {
        "chexpert": bench_chexpert(
            xrv, data, args.every, repeats, stratified=args.stratified
        )
    }
    if args.all:
        bench_nih_padchest(xrv, data, args.every, repeats)
    return results


if __name__ == "__main__":
    main()
