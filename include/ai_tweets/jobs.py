"""Long-running jobs (the classify stream) started and watched by short Airflow tasks.

A task that runs a streaming job to completion would hold an Airflow worker slot forever.
Instead `ensure_job` starts the job as a detached process (its own session, log file and
pid file under DATA_DIR/run) if it is not running, and returns at once; the DAG calls it
every few minutes, so a job that died is restarted, and triggering it twice is harmless
(a file lock makes the check-and-start atomic).

Standard library only at import: the local-stack manager uses `alive` before any virtual
environment exists (pipeline imports go inside functions, as in `ensure_classifier`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ai_tweets.settings import PROJECT_ROOT, Settings, load_settings

log = logging.getLogger(__name__)


def _run_dir(settings: Settings) -> Path:
    path = settings.data_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie still answers kill(0), and counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def job_status(name: str, settings: Settings) -> dict:
    pid_file = _run_dir(settings) / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return {"job": name, "state": "stopped", "pid": None}
    return {"job": name, "state": "running" if alive(pid) else "dead", "pid": pid}


def ensure_job(name: str, argv: list[str], settings: Settings, env: dict[str, str] | None = None) -> dict:
    """Start `argv` detached unless the job is already running; returns its state and pid."""
    run_dir = _run_dir(settings)
    with (run_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = job_status(name, settings)
        if status["state"] == "running":
            return status
        log_file = run_dir.parent / "logs" / f"{name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            out.flush()
            child_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), **(env or {})}
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env=child_env, cwd=PROJECT_ROOT)
        (run_dir / f"{name}.pid").write_text(str(process.pid))
        return {"job": name, "state": "started" if status["state"] == "stopped" else "restarted",
                "pid": process.pid, "log": str(log_file)}


def stop_job(name: str, settings: Settings, timeout: float = 60) -> dict:
    """Stop the job's whole process group (Spark's JVM included): SIGTERM, then SIGKILL."""
    status = job_status(name, settings)
    if status["state"] != "running":
        return status
    with contextlib.suppress(ProcessLookupError):
        os.killpg(status["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(status["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(status["pid"], signal.SIGKILL)
    return {**job_status(name, settings), "state": "stopped"}


def ensure_classifier(retweet: bool = False, serving_wait: float = 60.0) -> dict:
    """The classify stream, running (started if needed); skipped while no champion exists."""
    from ai_tweets.health import ServiceDown, check_model_serving
    from ai_tweets.serving import champion_version

    settings = load_settings()
    version = champion_version(settings)
    if version is None:
        return {"job": "classify", "state": "waiting", "reason": f"no champion of {settings.model_name} yet"}
    argv = [sys.executable, str(PROJECT_ROOT / "spark_jobs" / "classify.py"), *(["--retweet"] if retweet else [])]
    job = ensure_job("classify", argv, settings)
    # The job rides out a model-serving outage by itself (it waits and retries). The task waits
    # a little (a new champion takes seconds to load), then fails, so that the outage shows in
    # Airflow; its retries report when serving is back.
    deadline = time.monotonic() + serving_wait
    while True:
        try:
            serving = check_model_serving(settings)
            break
        except ServiceDown as exc:
            if time.monotonic() >= deadline:
                raise ServiceDown(f"{exc} The classify job (pid {job.get('pid')}) is running and waits for "
                                  f"it; waited {serving_wait:.0f} s.") from exc
            log.warning("model serving not answering yet, retrying in 5 s: %s", exc)
            time.sleep(5)
    return {**job, "champion": version, "serving": serving}
