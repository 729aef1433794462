"""The project's own stack script, as the tests call it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STACK = [sys.executable, "-m", "localstack.stack"]  # from ROOT, with include/ on PYTHONPATH


def stack(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run([*STACK, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def stack_is_up() -> bool:
    return stack("status", check=False).returncode == 0
