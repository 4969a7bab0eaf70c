"""Write the README's results table from a study's ``metrics.csv``.

The table the README shows is generated, never typed: run the default study,
then this script on its ``metrics.csv``::

    skcxr study --out skcxr-report
    cp skcxr-report/metrics.csv docs/_static/default-study-metrics.csv
    python docs/update_readme.py docs/_static/default-study-metrics.csv

It rewrites the lines between ``<!-- results:start -->`` and
``<!-- results:end -->`` of README.md. ``--check`` only says whether they are
up to date (exit status 1 when not).
"""

import argparse
import csv
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
# the rows shown, in this order: (task, model prefix); the main task is the
# one with most classes in the file
SHOWN = (
    ("main", "frozen"),
    ("main", "fine-tuned"),
    ("main", "small CNN"),
    ("main", "KNN"),
    ("ensemble", "uniform average"),
    ("ensemble", "GA-weighted"),
    ("anomaly", "PaDiM"),
    ("anomaly", "autoencoder"),
    ("anomaly", "baseline: CNN embedding + Ledoit-Wolf"),
)
COLUMNS = ("accuracy", "macro F1", "ROC AUC", "ECE", "ECE calibrated")
_WORDS = {"binary": 2, "three": 3, "four": 4, "five": 5}


def _n_classes(task):
    """2 for "binary", 3 for "three-class", 14 for "14-class"."""
    head = task.split("-")[0]
    return _WORDS.get(head) or int(head)


def _cell(row, name):
    value = row.get(name, "")
    if value in ("", None) or math.isnan(float(value)):
        return ""
    return (
        f"{float(value):.3f} [{float(row[name + ' CI low']):.3f}, "
        f"{float(row[name + ' CI high']):.3f}]"
    )


def results_block(rows):
    """The Markdown of the results table and the ensemble comparison."""
    tasks = [
        r["task"] for r in rows if r["task"] == "binary" or r["task"].endswith("-class")
    ]
    main = max(tasks, key=_n_classes)
    lines = [
        "| task | model | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for task, prefix in SHOWN:
        task = main if task == "main" else task
        row = next(
            r for r in rows if r["task"] == task and r["model"].startswith(prefix)
        )
        model = row["model"].removeprefix("baseline: ")
        cells = " | ".join(_cell(row, c) for c in COLUMNS)
        lines.append(f"| {task} | {model} | {cells} |")
    paired = next(r for r in rows if r["model"].startswith("GA-weighted minus"))
    difference = float(paired["macro F1 difference"])
    low = float(paired["macro F1 difference CI low"])
    high = float(paired["macro F1 difference CI high"])
    verdict = "beats" if low > 0 else "loses to" if high < 0 else "ties with"
    lines += [
        "",
        f"GA weighting {verdict} uniform averaging by {difference:+.3f} macro F1 "
        f"(paired bootstrap 95% CI [{low:+.3f}, {high:+.3f}]). ECE: top-label "
        "calibration error before and after temperature scaling on the validation "
        "split; the ECE of a resample, whose repeated images fill fewer bins more "
        "unevenly, is biased upwards, so its percentile interval sits high and can "
        "miss a small estimate. Synthetic images are for mechanics and method "
        "comparisons, not for transfer to real radiographs.",
    ]
    return "\n".join(lines)


def updated(readme, block):
    """``readme`` with the text between the markers replaced by ``block``."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("metrics", help="a study's metrics.csv")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with open(args.metrics, newline="", encoding="utf-8") as f:
        block = results_block(list(csv.DictReader(f)))
    readme = Path(args.readme).read_text(encoding="utf-8")
    new = updated(readme, block)
    if args.check:
        return 0 if new == readme else 1
    Path(args.readme).write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
