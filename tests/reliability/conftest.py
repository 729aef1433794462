"""The reliability suite: failures injected into the real local stack (a broker restart,
kill -9 of the classify job, each service down in turn, every DAG re-run).

Short form in `make test`; the long form (`make reliability`, RELIABILITY_SCALE=long) runs
the sizes of the acceptance criteria, such as 100,000 tweets through repeated kill -9.
Each test prints its figures in the session summary and appends them to
`.local/bench/RELIABILITY.md`.

These tests stop and restart services. On a stack that was already running before the
session (someone may be using it) they skip, unless RELIABILITY_ON_RUNNING_STACK=1.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from reliability_helpers import SCALE
from stack_control import ROOT, stack, stack_is_up

_FIGURES: list[tuple[str, str]] = []


def pytest_collection_modifyitems(items):
    for item in items:
        if "reliability" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def figures(request):
    """`figures("what happened, with numbers")` records a line for the session summary."""
    def record(line: str) -> None:
        _FIGURES.append((request.node.name, line))
        print(line, flush=True)
    return record


@pytest.fixture
def disruptive(local_stack, request):
    """Allows a test to stop and restart services; brings every service back afterwards (unless
    nothing runs after it on a stack the session stops anyway)."""
    if local_stack and os.environ.get("RELIABILITY_ON_RUNNING_STACK") != "1":
        pytest.skip("the stack was running before this session (someone may be using it) and this test stops "
                    "services; it runs on a stack the session starts itself, as in CI, or with "
                    "RELIABILITY_ON_RUNNING_STACK=1")
    yield
    last = request.node is request.session.items[-1]
    if (local_stack or not last) and not stack_is_up():
        stack("up")


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section(f"reliability figures ({SCALE} form)")
    for test, line in _FIGURES:
        terminalreporter.write_line(f"{test}: {line}")
    out = ROOT / ".local" / "bench" / "RELIABILITY.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as file:
        file.write(f"\n## {datetime.now().isoformat(timespec='seconds')} ({SCALE} form)\n\n")
        file.writelines(f"- `{test}`: {line}\n" for test, line in _FIGURES)
    terminalreporter.write_line(f"(also appended to {out.relative_to(ROOT)})")
