"""Fixtures shared by the integration, end-to-end and reliability tests: the local stack,
started by the project's own script if it is not up already, and stopped at the end of the
session if this session started it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "integration"))

from stack_control import ROOT, stack, stack_is_up  # noqa: E402


@pytest.fixture(scope="session")
def local_stack() -> bool:
    """Yields whether the stack was already running before this session."""
    # A stack this session starts holds the DAGs' timed schedules: a test sees only the runs it
    # causes (on a stack that was already up, tests find their runs by the events that made them).
    os.environ.setdefault("AI_TWEETS_TIMED_SCHEDULES", "off")
    # ... and retries a failed task after 5 s, not 30: an outage test need not sit out the
    # production delay (the policy itself, `dag_support.retrying`, is the same).
    os.environ.setdefault("AI_TWEETS_TASK_RETRY_SECONDS", "5")
    was_up = stack_is_up()
    result = stack("up")
    print(result.stdout)
    yield was_up
    state_now = stack_is_up()
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
