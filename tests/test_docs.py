"""The documentation builds with warnings as errors and runs every gallery example."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_runs_the_gallery(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(ROOT / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    built = tmp_path / "html"
    assert (built / "api.html").exists()
    examples = sorted(ROOT.glob("examples/*/plot_*.py"))
    assert examples
    for example in examples:
        page = built / "auto_examples" / example.parent.name / f"{example.stem}.html"
        assert page.exists(), page
