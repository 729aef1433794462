"""Long-running jobs (the classify stream, a live producer) started and watched by short
Airflow tasks.

A task that runs a streaming job to completion would hold an Airflow worker slot forever.
Instead `ensure_job` starts the job as a detached process (its own session, log file and
pid file under DATA_DIR/run) if it is not running, and returns at once; the DAG calls it
every few minutes, so a job that died is restarted, and triggering it twice is harmless
(a file lock makes the check-and-start atomic).

Liveness is the pid *and* the process's start time (with the boot id), both recorded in the
pid file: after a reboot, or once the job died and its pid was reused, another process with
the same pid does not look like the job. A job that runs but does nothing is caught by
`ensure_classifier`, the watchdog: the classify job is restarted, and the task says so,
when its last batch is older than CLASSIFY_STALL_SECONDS while messages wait in the topic.

A job's output goes through `python -m ai_tweets.jobs run-logged`, which writes it to
DATA_DIR/logs/<job>.log and rotates that file at JOB_LOG_MAX_BYTES, keeping JOB_LOG_BACKUPS
older files: a job that runs for months keeps at most 6 × 20 MiB of logs.

Processes are started, recorded and stopped by `stackbase.processes`, as the local stack's
services and model serving are.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stackbase import processes
from stackbase.settings import PROJECT_ROOT, Settings, load_settings

log = logging.getLogger(__name__)

JOB_LOG_MAX_BYTES = 20 * 1024 * 1024
JOB_LOG_BACKUPS = 5


def _run_dir(settings: Settings) -> Path:
    path = settings.job_run_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_status(name: str, settings: Settings) -> dict:
    return {"job": name, **processes.recorded(settings.job_run_dir / f"{name}.pid")}


def job_log(name: str, settings: Settings) -> Path:
    return settings.data_dir / "logs" / f"{name}.log"


def last_error(name: str, settings: Settings, lines: int = 400) -> str | None:
    """The last `error:` line (what the CLI prints for an expected failure) of a job's log."""
    with contextlib.suppress(OSError):
        with job_log(name, settings).open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 200_000))
            tail = file.read().decode(errors="replace").splitlines()[-lines:]
        return next((line for line in reversed(tail) if line.startswith("error:")), None)
    return None


def ensure_job(name: str, argv: list[str], settings: Settings, env: dict[str, str] | None = None) -> dict:
    """Start `argv` detached unless the job is already running; returns its state and pid (and
    the last error of a job that died)."""
    run_dir = _run_dir(settings)
    with (run_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = job_status(name, settings)
        if status["state"] == "running":
            return status
        log_file = job_log(name, settings)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        previous_error = last_error(name, settings) if status["state"] == "dead" else None
        child_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), **(env or {})}
        wrapper = [sys.executable, "-m", "ai_tweets.jobs", "run-logged", "--log", str(log_file), "--", *argv]
        process = processes.start(wrapper, env=child_env, cwd=PROJECT_ROOT, log=log_file, shown=" ".join(argv),
                                  detached=True, pid_file=run_dir / f"{name}.pid")
        result = {"job": name, "state": "started" if status["state"] == "stopped" else "restarted",
                  "pid": process.pid, "log": str(log_file)}
        if previous_error:
            log.warning("job %s had died; its last error: %s", name, previous_error)
            result["previous_error"] = previous_error
        return result


def stop_job(name: str, settings: Settings, timeout: float = 60) -> dict:
    """Stop the job's whole process group (Spark's JVM included): SIGTERM (and SIGCONT, for a
    stopped process), then SIGKILL."""
    status = job_status(name, settings)
    if status["state"] != "running":
        return status
    processes.stop(status["pid"], signal.SIGTERM, timeout, whole_group=True)
    return {**job_status(name, settings), "state": "stopped"}


# --- the classify job and its watchdog -------------------------------------------------------


def classify_stalled(settings: Settings, status: dict) -> str | None:
    """Why a running classify job counts as stalled, or None: its last batch (or its start, if it
    has written none since) is older than CLASSIFY_STALL_SECONDS while messages wait."""
    from psycopg import sql

    from ai_tweets.classify import checkpoint_dir, query_name
    from ai_tweets.kafka import watermarks
    from ai_tweets.storage import connect, table_exists
    from ai_tweets.stream import StreamOptions, checkpoint_offsets, waiting_messages
    from ai_tweets.tables import BATCHES_TABLE, identifier

    with connect(settings) as conn:
        last = None
        if table_exists(conn, BATCHES_TABLE):
            last = conn.execute(sql.SQL("SELECT extract(epoch FROM max(finished_at)) FROM {table} "
                                        "WHERE query_name = %s").format(table=identifier(BATCHES_TABLE)),
                                (query_name(settings),)).fetchone()[0]
    latest = max(float(last or 0), status.get("started") or 0)
    if not latest:
        return None
    age = time.time() - latest
    if age <= settings.classify_stall_seconds:
        return None
    checkpoint = checkpoint_dir(settings, StreamOptions())
    waiting = waiting_messages(checkpoint_offsets(checkpoint, settings.tweets_topic),
                               watermarks(settings, settings.tweets_topic))
    if not waiting:
        return None
    return (f"no batch for {age:.0f} s (limit CLASSIFY_STALL_SECONDS={settings.classify_stall_seconds}) "
            f"while {waiting:,} messages wait in {settings.tweets_topic}")


def ensure_classifier(retweet: bool = False) -> dict:
    """The classify stream, running and making progress (started, or restarted if it died or
    stalled); skipped while no champion exists. Fails, after the job is running, when model
    serving does not answer or rejected the champion, so that Airflow shows it."""
    from ai_tweets.health import ServiceDown, check_champion, check_model_serving
    from ai_tweets.retrying import retry_call, service_wait
    from ai_tweets.serving import champion_version
    from ai_tweets.spark import submit_command

    settings = load_settings()
    version = champion_version(settings)
    if version is None:
        return {"job": "classify", "state": "waiting", "reason": f"no champion of {settings.model_name} yet"}
    stalled = None
    status = job_status("classify", settings)
    if status["state"] == "running":
        stalled = classify_stalled(settings, status)
        if stalled:
            log.warning("the classify job (pid %s) is stalled: %s; restarting it", status["pid"], stalled)
            stop_job("classify", settings)
    argv = submit_command("classify", ["--retweet"] if retweet else [], settings)
    job = ensure_job("classify", argv, settings)
    if stalled:
        job.update(state="restarted", reason=f"stalled: {stalled}")
    # The job rides out a model-serving outage by itself (it waits and retries). The task waits
    # AI_TWEETS_SERVICE_WAIT_SECONDS (a new champion takes seconds to load), then fails, so that
    # the outage shows in Airflow; its retries report when serving is back.
    # A champion loading is polled for every 2 s at most: doubling delays would overshoot its
    # readiness by up to half the time waited.
    wait = dataclasses.replace(service_wait(settings), max_delay=2.0)

    def gave_up(exc: BaseException, _attempts: int, waited: float) -> ServiceDown:
        return ServiceDown(f"{exc} The classify job (pid {job.get('pid')}) is running and waits for it; "
                           f"waited {waited:.0f} s.")

    serving = retry_call(lambda: check_model_serving(settings), wait,
                         retry_on=lambda exc: isinstance(exc, ServiceDown), what="model serving", give_up=gave_up)
    check_champion(settings)  # a champion that serving rejected fails the task, with what to do
    return {**job, "champion": version, "serving": serving}


# --- run-logged: a job's output, rotated ---------------------------------------------------


class RotatingFile:
    """An append-only log file rotated at `max_bytes`: log → log.1 → … → log.<backups>."""

    def __init__(self, path: Path, max_bytes: int = JOB_LOG_MAX_BYTES, backups: int = JOB_LOG_BACKUPS):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.file = path.open("ab")

    def write(self, data: bytes) -> None:
        if self.file.tell() + len(data) > self.max_bytes and self.file.tell() > 0:
            self.rotate()
        self.file.write(data)
        self.file.flush()

    def rotate(self) -> None:
        self.file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.file = self.path.open("ab")


def run_logged(log_file: Path, argv: list[str], max_bytes: int = JOB_LOG_MAX_BYTES,
               backups: int = JOB_LOG_BACKUPS) -> int:
    """Run `argv` in this process group, its output into a rotated `log_file`; its exit code.
    SIGTERM reaches the job through the group: this process outlives it to log its last words."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: the child gets the defaults back
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = RotatingFile(log_file, max_bytes, backups)
    while chunk := os.read(child.stdout.fileno(), 65536):
        out.write(chunk)
    code = child.wait()
    out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} exited with {code}\n".encode())
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_tweets.jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    logged = commands.add_parser("run-logged", help="run a command, its output in a rotated log file")
    logged.add_argument("--log", type=Path, required=True)
    logged.add_argument("--max-bytes", type=int, default=JOB_LOG_MAX_BYTES)
    logged.add_argument("--backups", type=int, default=JOB_LOG_BACKUPS)
    logged.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return run_logged(args.log, command, args.max_bytes, args.backups)


if __name__ == "__main__":
    sys.exit(main())
