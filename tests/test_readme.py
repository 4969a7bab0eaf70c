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
