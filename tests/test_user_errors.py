"""Mistakes a new user makes, run through the real command line and pipeline."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_grindwatch_runs_cli():
    result = subprocess.run(
        [sys.executable, "-m", "grindwatch", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("grindwatch ")
