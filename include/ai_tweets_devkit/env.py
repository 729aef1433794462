"""Environments for child processes that import this checkout's pipeline package."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process that imports this checkout's package."""
    path = os.pathsep.join(p for p in (str(ROOT / "include"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
