"""Helpers of the reliability tests: the suite's size, waiting with progress lines, a
continuous ingest job, and a service restarted while a paced stream is produced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCALE = os.environ.get("RELIABILITY_SCALE", "short")
if SCALE not in ("short", "long"):
    raise ValueError(f"RELIABILITY_SCALE must be 'short' or 'long', got {SCALE!r}")


def sized(short: int, long: int) -> int:
    """The size of a test in the short (make test) or long (make reliability) form."""
    return long if SCALE == "long" else short


def wait_until(condition, timeout: float, what: str, every: float = 1.0, progress_every: float = 15.0):
    """Poll `condition()` until it returns a truthy value; progress lines while waiting."""
    began = time.monotonic()
    next_progress = began + progress_every
    while True:
        value = condition()
        if value:
            return value
        now = time.monotonic()
        if now - began > timeout:
            raise AssertionError(f"{what}: not reached in {timeout:.0f} s")
        if now >= next_progress:
            print(f"  … waiting for {what} ({now - began:.0f} s)", flush=True)
            next_progress = now + progress_every
        time.sleep(every)


def start_ingest(iso, log: Path) -> subprocess.Popen:
    """The continuous ingest job of an isolated topic and table; its output goes to `log`."""
    from capture_helpers import ROOT, python_env

    with log.open("a") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--trigger-seconds", "1"],
                                env=python_env(**iso.env), start_new_session=True, stdout=out, stderr=out)


@dataclass
class Restart:
    rows_before: int  # rows in the raw table when the service was stopped
    seconds: float  # from stopping the service until it was healthy again
    report: object  # the producer's ProduceReport


def kill_9_postgres() -> None:
    """SIGKILL to the whole PostgreSQL server (postmaster and backends): a crash, nothing flushed."""
    from stack_control import ROOT

    pid = int((ROOT / ".local" / "run" / "postgres.pid").read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: subprocess.run(["pgrep", "-g", str(pid)], capture_output=True).returncode != 0, 60,
               "the killed PostgreSQL processes to be gone", every=0.2)


def restart_while_producing(iso, items: list, rate: float, service: str, down_seconds: float,
                            kill_9: bool = False) -> Restart:
    """Produce `items` at `rate` a second; once a tenth is in the raw table, stop `service` (with
    kill_9: kill PostgreSQL with SIGKILL), wait `down_seconds`, start it again; returns when the
    producer has finished."""
    from stack_control import stack

    from ai_tweets.kafka import produce
    from ai_tweets.sources import paced

    reports = []
    producer = threading.Thread(target=lambda: reports.append(produce(paced(items, rate), iso.settings)))
    producer.start()
    wait_until(lambda: iso.counts(iso.raw_table)[0] > len(items) // 10, 180, "the first tweets in the raw table")
    before = iso.counts(iso.raw_table)[0]
    began = time.monotonic()
    if kill_9:
        kill_9_postgres()
    else:
        stack("down", service)
    time.sleep(down_seconds)
    stack("up", service)
    seconds = time.monotonic() - began
    producer.join(900)
    assert reports, "the producer thread failed (see its traceback above)"
    return Restart(before, seconds, reports[0])
