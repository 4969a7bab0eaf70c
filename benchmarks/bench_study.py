"""The whole ``skcxr study`` with each CPU inference engine, side by side.

Runs the command-line study on the built-in synthetic data exactly as a user
does, ``python -m skcxr study --out DIR --engine X --random-state N --device
cpu`` (``--device``: where the engines run, also for training), once per
engine (``torch``, ``onnxruntime``, ``openvino``; the engine computes the frozen
backbone's features, the embeddings and the PaDiM detector, training stays in
torch), each process writing into its own temporary folder. The engines are
interleaved over ``--repeats`` rounds (their order rotated from round to round)
and for each one the script reports:

* ``wall s``: wall time of the whole process (interpreter start, imports,
  data, every task, saving the models, writing the report), median over rounds;
* ``CPU s``: user + system CPU time of the process and its children, from
  ``resource.getrusage(RUSAGE_CHILDREN)`` differences, median;
* ``vs torch``: torch's wall time divided by the engine's, median of the
  per-round ratios (> 1 means faster than torch); with two or more rounds,
  also the number of rounds the engine was faster in and the geometric mean
  of the per-round ratios with its 95% confidence interval (Student's t over
  the logarithms of the ratios: the two runs of a round are back to back, so
  the machine's slow drifts cancel within a pair);
* ``max abs diff``: the largest absolute difference of any numeric value of
  ``metrics.csv`` (every metric and its confidence interval bounds) to torch's
  of the same round, and which value it is; for torch itself, to its first
  round (run-to-run determinism). The script exits with status 1 when an
  engine differs by more than ``--atol`` or its rows or text columns differ.
  The default, 1e-3, allows what 32-bit arithmetic in another order gives: the
  engines' features differ from torch's in the sixth digit, a head trained on
  them can then swap two nearly tied test images, and one swapped pair moves
  a ROC AUC (or a bootstrap bound of it) by 1 / (positives x negatives),
  about 1e-4 on the default study's test split.

Per-task seconds come from the study's progress lines on stderr (``[ t s]
step``): each step lasts until the next line, timed as the lines arrive;
``start-up`` is the time before the first line (interpreter, imports) and
``exit`` the time after ``done:`` (the report is written before it).

The ratios mean something only on an otherwise idle machine: the load average
is printed before and after. Engines whose packages are missing are skipped.
Nothing is written outside the temporary folders (the studies run in them).

``--int8`` adds ONNX Runtime with ``--precision int8``: its metrics are expected
to change, so they are listed per model (accuracy and ROC AUC against torch's)
instead of being held to ``--atol``.

Run: ``python benchmarks/bench_study.py [--repeats 3] [--engines torch,openvino]
[--int8]`` (the default study takes
about 3 minutes per run on 2 cores); ``--quick`` passes ``--quick`` to the
study (about a minute per run).
"""

import argparse
import csv
import importlib.util
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.stats import ttest_1samp

ENGINES = ("torch", "onnxruntime", "openvino")
STEP = re.compile(r"^\[\s*[0-9.]+ s\] (.*)$")


def _available(engine):
    return engine == "torch" or bool(
        importlib.util.find_spec(engine) and importlib.util.find_spec("onnx")
    )


def _cli_command():
    """``python -m skcxr`` when it runs, else the console script next to Python."""
    if importlib.util.find_spec("skcxr.__main__") is not None:
        return [sys.executable, "-m", "skcxr"]
    exe = shutil.which("skcxr", path=os.path.dirname(sys.executable))
    if exe is None:
        raise SystemExit("neither 'python -m skcxr' nor the skcxr script found")
    return [exe]


def _label(message):
    """A short name for a progress line: up to its colon, at most 2 words."""
    return " ".join(message.split(":")[0].split()[:2])


def _run_study(command, out_dir):
    """Run one study; returns wall s, CPU s and {step: seconds}."""
    os.makedirs(out_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--out", out_dir],
        cwd=out_dir,  # anything written to the working folder stays in it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log, marks = [], [("start-up", 0.0)]
    for line in process.stdout:
        now = time.perf_counter() - start
        log.append(line)
        match = STEP.match(line)
        if match:
            marks.append((_label(match.group(1)), now))
        elif line.startswith("done: "):
            marks.append(("exit", now))
    process.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        sys.stderr.writelines(log[-30:])
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    steps = {}
    for (name, begin), (_, end) in zip(marks, [*marks[1:], (None, wall)]):
        steps[name] = steps.get(name, 0.0) + end - begin
    return wall, cpu, steps


def _read_metrics(path):
    """``metrics.csv`` as {(task, model): {column: text}}."""
    with open(path, newline="", encoding="utf-8") as f:
        return {(row["task"], row["model"]): row for row in csv.DictReader(f)}


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def _compare(metrics, reference):
    """Largest absolute difference of the numeric values, and where it is.

    Returns ``(diff, where, problems)``: ``problems`` lists rows or text values
    that differ (infinite difference).
    """
    problems = sorted(
        " / ".join(key) + (" missing" if key in reference else " extra")
        for key in set(metrics) ^ set(reference)
    )
    largest, where = 0.0, "-"
    for key in reference.keys() & metrics.keys():
        row, ref = metrics[key], reference[key]
        for column in dict.fromkeys([*ref, *row]):
            got, want = row.get(column) or "", ref.get(column) or ""
            a, b = _number(got), _number(want)
            if a is None or b is None:
                if got != want:
                    problems.append(f"{' / '.join(key)} / {column}: {got!r} {want!r}")
                continue
            diff = 0.0 if math.isnan(a) and math.isnan(b) else abs(a - b)
            if math.isnan(diff):
                diff = math.inf
            if diff > largest:
                largest, where = diff, " / ".join([*key, column])
    return largest, where, problems


def _print_changes(engine, metrics, reference):
    """Accuracy and ROC AUC of every model against torch's (reduced precision)."""
    print(f"\n{engine} against torch (first round), per model:")
    print(f"{'task / model':<48}{'accuracy':>18}{'ROC AUC':>18}")
    for key in [key for key in reference if key in metrics]:
        cells = []
        for column in ("accuracy", "ROC AUC"):
            a, b = _number(metrics[key].get(column) or ""), _number(
                reference[key].get(column) or ""
            )
            cells.append(
                f"{b:>7.3f} -> {a:.3f}" if a is not None and b is not None else "-"
            )
        print(f"{' / '.join(key):<48}" + "".join(f"{c:>18}" for c in cells))


def _print_paired_ratio(engine, torch_seconds, engine_seconds):
    """Rounds faster than torch and the geometric-mean speed-up with its 95% CI."""
    ratios = np.asarray(torch_seconds) / np.asarray(engine_seconds)
    interval = ttest_1samp(np.log(ratios), 0.0).confidence_interval(0.95)
    print(
        f"{engine} vs torch: faster in {int(np.sum(ratios > 1))} of {len(ratios)} "
        f"rounds; geometric mean {np.exp(np.mean(np.log(ratios))):.3f}x, 95% CI "
        f"[{np.exp(interval.low):.3f}, {np.exp(interval.high):.3f}]"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--quick", action="store_true", help="skcxr study --quick")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--size", type=int, help="the study's --size (image px)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="the study's --device (default: cpu, where the engines run)",
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="comma-separated engines to run (default: all; torch is always run, "
        "as the reference)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also run onnxruntime with --precision int8: its metric "
        "changes are reported, not held to --atol",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-3,
        help="largest metric difference to torch's accepted (default 1e-3)",
    )
    args = parser.parse_args()

    chosen = {"torch", *args.engines.split(",")}
    unknown = sorted(chosen - set(ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {ENGINES}")
    engines = [e for e in ENGINES if e in chosen and _available(e)]
    skipped = sorted(e for e in chosen - set(engines))
    if args.int8 and "onnxruntime" in engines:
        engines.append("onnxruntime+int8")  # engine+precision
    command = [*_cli_command(), "study", "--random-state", str(args.random_state)]
    command += ["--device", args.device] + (["--quick"] if args.quick else [])
    command += ["--size", str(args.size)] if args.size else []
    shown = " ".join(os.path.basename(c) for c in command)
    print(
        f"{shown} --engine X, {args.repeats} interleaved round(s), "
        f"CPUs {len(os.sched_getaffinity(0))}, load average before "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else "")
    )
    print("(ratios mean something only on an otherwise idle machine)", flush=True)

    wall = {e: [] for e in engines}
    cpu = {e: [] for e in engines}
    steps = {e: [] for e in engines}
    metrics = {e: [] for e in engines}
    with tempfile.TemporaryDirectory(prefix="bench_study-") as tmp:
        for round_ in range(args.repeats):
            shift = round_ % len(engines)
            for engine in engines[shift:] + engines[:shift]:
                out_dir = os.path.join(tmp, f"{engine}-{round_}")
                name, _, precision = engine.partition("+")
                flags = ["--engine", name] + (
                    ["--precision", precision] * bool(precision)
                )
                seconds, cpu_seconds, timings = _run_study([*command, *flags], out_dir)
                wall[engine].append(seconds)
                cpu[engine].append(cpu_seconds)
                steps[engine].append(timings)
                metrics[engine].append(
                    _read_metrics(os.path.join(out_dir, "metrics.csv"))
                )
                shutil.rmtree(out_dir)
                print(
                    f"  round {round_ + 1}, {engine}: {seconds:.1f} s wall, "
                    f"{cpu_seconds:.1f} s CPU",
                    flush=True,
                )

    print(
        f"\n{'engine':<13}{'wall s':>9}{'CPU s':>9}{'vs torch':>10}"
        f"{'max abs diff':>14}  largest difference in"
    )
    failed = []
    for engine in engines:
        ratio = np.median(np.asarray(wall["torch"]) / np.asarray(wall[engine]))
        if engine == "torch":
            pairs = [(m, metrics["torch"][0]) for m in metrics["torch"][1:]]
        else:
            pairs = list(zip(metrics[engine], metrics["torch"]))
        compared = [_compare(m, ref) for m, ref in pairs]
        if compared:
            diff, where, _ = max(compared, key=lambda c: c[0])
            problems = [p for c in compared for p in c[2]]
            if problems or (diff > args.atol and "+" not in engine):
                failed.append(engine)
            diff_text = f"{diff:>14.1e}" if not problems else f"{'differ':>14}"
            where = "; ".join(problems[:3]) if problems else where
        else:
            diff_text, where = f"{'-':>14}", "(one round: nothing to compare)"
        print(
            f"{engine:<13}{np.median(wall[engine]):>9.1f}"
            f"{np.median(cpu[engine]):>9.1f}{ratio:>9.2f}x{diff_text}  {where}"
        )
    if args.repeats > 1:
        print(
            "wall s per round: "
            + "; ".join(f"{e} {' '.join(f'{t:.1f}' for t in wall[e])}" for e in engines)
        )
        for engine in engines[1:]:
            _print_paired_ratio(engine, wall["torch"], wall[engine])

    for engine in [e for e in engines if "+" in e]:
        _print_changes(engine, metrics[engine][0], metrics["torch"][0])

    names = list(dict.fromkeys(n for e in engines for t in steps[e] for n in t))
    print(f"\nper step, s (median of {args.repeats}; from the progress lines):")
    print(f"{'step':<30}" + "".join(f"{e:>13}" for e in engines))
    for name in names:
        cells = []
        for engine in engines:
            values = [t[name] for t in steps[engine] if name in t]
            cells.append(f"{np.median(values):>13.1f}" if values else f"{'-':>13}")
        print(f"{name:<30}" + "".join(cells))

    print(f"\nload average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failed:
        raise SystemExit(
            f"metrics differ by more than --atol {args.atol:g}: {', '.join(failed)}"
        )
    print(f"metrics agree within --atol {args.atol:g}")


if __name__ == "__main__":
    main()
