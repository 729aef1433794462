"""Fixtures shared by the integration, end-to-end and reliability tests: the local stack,
started by the project's own script if it is not up already, and stopped at the end of the
session if this session started it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from stack_control import ROOT, stack, stack_is_up


def _hold_for_tests() -> None:
    """The settings of a stack that tests start (the policies are the production ones)."""
    # A stack this session starts holds the DAGs' timed schedules: a test sees only the runs it
    # causes (on a stack that was already up, tests find their runs by the events that made them).
    os.environ.setdefault("AI_TWEETS_TIMED_SCHEDULES", "off")
    # ... and retries a failed task after 5 s, not 30: an outage test need not sit out the
    # production delay (the policy itself, `dag_support.retrying`, is the same).
    os.environ.setdefault("AI_TWEETS_TASK_RETRY_SECONDS", "5")
    # ... and a stage waits 20 s for a service that is down before it fails, not 60 (the same
    # policy, `retrying.Backoff`; the stream jobs' own wait is not shortened).
    os.environ.setdefault("AI_TWEETS_SERVICE_WAIT_SECONDS", "20")


_EARLY_START: dict = {}


def pytest_collection_finish(session):
    """When the run includes tests that need the stack and it is down, start it now, in the
    background, while the fast tests (which need no service) run first."""
    if os.environ.get("AI_TWEETS_EARLY_STACK", "1") != "1":
        return
    if not any(item.get_closest_marker("integration") for item in session.items) or stack_is_up():
        return
    _hold_for_tests()

    def start() -> None:
        began = time.monotonic()
        try:
            _EARLY_START["result"] = stack("up", check=False)
        except Exception as exc:  # reported by the fixture, in the first test that needs the stack
            _EARLY_START["error"] = exc
        _EARLY_START["seconds"] = time.monotonic() - began

    _EARLY_START["thread"] = threading.Thread(target=start, name="stack-up", daemon=True)
    _EARLY_START["thread"].start()


def pytest_sessionfinish(session):
    """A stack started early that no test went on to use is stopped again."""
    early = _EARLY_START.pop("thread", None)
    if early is not None:
        early.join()
        stack("down", check=False)


def _start_stack() -> None:
    early = _EARLY_START.pop("thread", None)
    if early is None:
        print(stack("up").stdout)
        return
    began = time.monotonic()
    early.join()
    if "error" in _EARLY_START:
        raise _EARLY_START["error"]
    result = _EARLY_START["result"]
    print(result.stdout)
    print(f"stack started in the background during the fast tests: {_EARLY_START['seconds']:.0f} s, "
          f"{time.monotonic() - began:.0f} s of it after them")
    if result.returncode != 0:
        raise AssertionError(f"stack up failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def local_stack() -> bool:
    """Yields whether the stack was already running before this session."""
    _hold_for_tests()
    was_up = "thread" not in _EARLY_START and stack_is_up()
    _start_stack()
    yield was_up
    state_now = stack_is_up()
    if not was_up:
        stack("down")
    elif not state_now:
        stack("up")


@pytest.fixture(scope="session")
def settings(local_stack):
    from stackbase.settings import environment, load_settings

    return load_settings(environment(ROOT / ".env"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real 2020 tweets beside the project; tests that need them skip when absent."""
    folder = ROOT.parent / "shared" / "data"
    if not (folder / "tweets_2020_v1_full.jsonl").exists():
        pytest.skip(f"real tweet files not found in {folder} (only present in the development workspace)")
    return folder
