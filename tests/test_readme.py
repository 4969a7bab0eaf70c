"""The README's first two commands are what a newcomer and CI run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^    (python3 -m venv .+)$", text, flags=re.MULTILINE)[:2]


def test_readme_opens_with_the_main_job_and_the_test_command():
    study, tests = readme_commands()
    assert "skcxr study" in study
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == readme_commands()[1]


def test_the_results_table_is_generated_from_the_default_studys_metrics():
    """README.md's results table is docs/update_readme.py's output on the
    metrics.csv of the default study, committed beside the docs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "docs" / "update_readme.py"
    )
    update_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_readme)
    metrics = ROOT / "docs" / "_static" / "default-study-metrics.csv"
    assert update_readme.main([str(metrics), "--check"]) == 0, (
        "README.md's results table is out of date: run "
        "python docs/update_readme.py docs/_static/default-study-metrics.csv"
    )
