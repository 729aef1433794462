"""PostgreSQL restarted under a running capture, then down while a stage runs.

The continuous ingest job rides out the restart (the interrupted transaction is rolled back
and written again), and every tweet lands exactly once. A stage started while PostgreSQL
stays down retries with backoff, then fails with a message that names the database's
address; the same command (what Airflow's retry runs) succeeds once it is back.

Runs last: stopping PostgreSQL also stops what keeps its state there (Airflow, MLflow); the
`disruptive` fixture brings the whole stack back up afterwards.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time

from capture_helpers import Isolated, python_env
from reliability_helpers import restart_while_producing, sized, start_ingest, wait_until
from stack_control import stack

from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.tables import split_table_name


def _ingesting(tmp_path, seed: int):
    """A dataset version of its own, the tweets to send in 40 s, and its ingest job running."""
    count = sized(short=20_000, long=100_000)
    iso = Isolated.create(tmp_path, version=900_000 + secrets.randbelow(100_000))
    tweets = [normalize(generated.payload) for generated in generate(count, seed=seed)]
    log = tmp_path / "ingest.log"
    return count, count / 40, iso, tweets, {tweet.id for tweet in tweets}, log, start_ingest(iso, log)


def test_postgres_restart_during_capture_then_down_during_a_stage(disruptive, tmp_path, figures):
    count, rate, iso, tweets, ids, log, job = _ingesting(tmp_path, seed=71)
    try:
        restart = restart_while_producing(iso, tweets, rate, "postgres", down_seconds=10)
        assert restart.report.failed == 0, restart.report.line()
        back = time.monotonic()
        wait_until(lambda: iso.counts(iso.raw_table) == (len(ids), len(ids)), 600,
                   f"{len(ids):,} distinct tweets in {iso.raw_table}")
        caught_up = time.monotonic() - back
        assert job.poll() is None, f"the ingest job must ride out the restart:\n{log.read_text()[-3000:]}"
        retried = len(re.findall(r"PostgreSQL at \S+ (?:went away|not answering)", log.read_text()))
        assert retried > 0, "the job reports the outage while it retries"
    finally:
        job.terminate()
        job.wait(60)
    assert restart.rows_before < len(ids), "the restart must land while tweets are still arriving"

    prepare = [sys.executable, "-m", "ai_tweets.cli", "prepare", "--test-size", "500", "--dev-size", "250",
               "--snorkel-train-size", "5000"]
    stack("down", "postgres")
    try:
        began = time.monotonic()
        failed = subprocess.run(prepare, env=python_env(**iso.env), capture_output=True, text=True, timeout=600)
        gave_up = time.monotonic() - began
    finally:
        stack("up", "postgres")
    assert failed.returncode != 0
    assert f"PostgreSQL at {iso.settings.streamingdb_url}" in failed.stderr, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr, "a clear message, not a stack trace"
    message = next(line for line in failed.stderr.splitlines() if line.startswith("error:"))
    again = subprocess.run(prepare, env=python_env(**iso.env), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = iso.query("SELECT count(*) FROM {t}", t=split_table_name("test", iso.settings))[0][0]
    assert rows == 500
    figures(f"{count:,} tweets at {rate:,.0f}/s; PostgreSQL restarted after {restart.rows_before:,} rows (down 10 s, "
            f"back in {restart.seconds:.0f} s); ingest retried {retried} times and kept running; {len(ids):,} rows "
            f"= distinct = expected, 0 missing, {caught_up:.0f} s after the producer ended. `ai-tweets prepare` with "
            f"PostgreSQL down gave up after {gave_up:.0f} s of retries with {message[:160]!r}; the same "
            f"command succeeded once it was back")


def test_postgres_killed_9_during_ingest_loses_no_acknowledged_row(disruptive, tmp_path, figures):
    """SIGKILL, not a fast shutdown: nothing is flushed. With synchronous_commit on, every
    transaction the job saw committed (and whose offsets Spark then committed) survives."""
    count, rate, iso, tweets, ids, log, job = _ingesting(tmp_path, seed=72)
    try:
        restart = restart_while_producing(iso, tweets, rate, "postgres", down_seconds=3, kill_9=True)
        assert restart.report.failed == 0, restart.report.line()
        wait_until(lambda: iso.counts(iso.raw_table) == (len(ids), len(ids)), 600,
                   f"{len(ids):,} distinct tweets in {iso.raw_table}")
        assert job.poll() is None, f"the ingest job must ride out the crash:\n{log.read_text()[-3000:]}"
    finally:
        job.terminate()
        job.wait(60)
    assert restart.rows_before < len(ids), "the crash must land while tweets are still arriving"
    synchronous = iso.query("SHOW synchronous_commit")[0][0]
    assert synchronous == "on"
    figures(f"{count:,} tweets at {rate:,.0f}/s; PostgreSQL killed -9 after {restart.rows_before:,} rows, up again "
            f"in {restart.seconds:.0f} s (crash recovery); synchronous_commit={synchronous}; ingest kept running; "
            f"{len(ids):,} rows = distinct = expected, 0 missing")
