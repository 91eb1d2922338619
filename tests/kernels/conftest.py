"""Interpreted kernel runs happen in one child process (see interpreted.py), so TRITON_INTERPRET never leaks here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("interpreted.py")


@pytest.fixture(scope="session")
def interpreted():
    """Results of every interpreted check: {case: numbers}; fresh random inputs each session."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, str(WORKER)], capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert res.returncode == 0 and lines, f"interpreted checks crashed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULTS "):])
