"""The local stack for integration tests: started by the project's own script if it is not
up already, and stopped at the end of the session if this session started it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(ROOT / "localstack" / "stack.py")]


def stack(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*STACK, *args], capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        raise AssertionError(f"stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_stack() -> bool:
    """Yields whether the stack was already running before this session."""
    was_up = stack("status", check=False).returncode == 0
    result = stack("up")
    print(result.stdout)
    yield was_up
    state_now = stack("status", check=False).returncode == 0
    if not was_up:
        stack("down")
    elif not state_now:
        stack("up")


@pytest.fixture(scope="session")
def settings(local_stack):
    from ai_tweets.settings import environment, load_settings

    return load_settings(environment(ROOT / ".env"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real 2020 tweets beside the project; tests that need them skip when absent."""
    folder = ROOT.parent / "shared" / "data"
    if not (folder / "tweets_2020_v1_full.jsonl").exists():
        pytest.skip(f"real tweet files not found in {folder} (only present in the development workspace)")
    return folder
