"""Every test in this folder needs the local stack (fixture `local_stack` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stack_control import ROOT, STACK, stack  # noqa: F401  (imported by the test modules)


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)
