"""The stream skeleton on the real stack: a fuzzed micro-batch written by the ingest job's
partition writer into the real Postgres, statement and lock timeouts, and Kafka data loss
(offsets deleted before the job read them) stopping the job with the lost range, or recorded."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest
from capture_helpers import ROOT, Isolated, arrow_batch, python_env
from hostile import MESSAGES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_tweets.health import ServiceDown, check_stream
from ai_tweets.ingest import ingest_job
from ai_tweets.retrying import Backoff
from ai_tweets.storage import DatabaseUnavailable, connect, ensure_raw_table, in_transaction
from ai_tweets.stream import Message, parse_messages, write_partition
from ai_tweets.tables import GAPS_TABLE, identifier
from stackbase.settings import load_settings

pytestmark = pytest.mark.usefixtures("local_stack")


@pytest.fixture(scope="module")
def fuzz_table(tmp_path_factory):
    iso = Isolated.create(tmp_path_factory.mktemp("fuzz"))
    with connect(iso.settings) as conn:
        ensure_raw_table(conn, iso.raw_table)
    return iso


OFFSETS = iter(range(0, 10**9, 1000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(MESSAGES, min_size=1, max_size=12))
def test_a_fuzzed_micro_batch_is_written_by_the_ingest_job_s_partition_writer(fuzz_table, values):
    iso = fuzz_table
    first = next(OFFSETS)
    topic = iso.settings.tweets_topic
    batch = arrow_batch(topic, values, first)
    expected_rows, expected_bad = parse_messages([Message(topic, 0, first + i, None, v) for i, v in enumerate(values)],
                                                 lambda tweet, message: tweet.id)
    stats = next(write_partition(iter([batch]), iso.settings, ingest_job(iso.raw_table))).to_pydict()
    assert stats["messages"] == [len(values)] and stats["quarantined"] == [len(expected_bad)]
    stored = iso.query("SELECT count(*) FROM ingest_quarantine WHERE target_table = %s AND topic = %s "
                       "AND kafka_offset BETWEEN %s AND %s", (iso.raw_table, topic, first, first + 999))[0][0]
    assert stored == len(expected_bad), "every quarantined message is stored, with its reason"
    found = iso.query("SELECT count(*) FROM {t} WHERE tweet_id = ANY(%s)", (list(expected_rows),), t=iso.raw_table)
    assert found[0][0] == len(expected_rows)


def test_a_lock_wait_and_a_long_statement_time_out_and_name_what_failed(tmp_path):
    iso = Isolated.create(tmp_path)
    env = {**iso.env, "STREAMINGDB_LOCK_TIMEOUT": "1", "STREAMINGDB_STATEMENT_TIMEOUT": "2"}
    timed = load_settings(env)
    with connect(iso.settings) as conn:
        ensure_raw_table(conn, iso.raw_table)
    holder = connect(iso.settings)
    holder.execute(psycopg.sql.SQL("LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE").format(t=identifier(iso.raw_table)))
    try:
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=f"writing to {iso.raw_table} failed 2 times.*lock timeout"):
            in_transaction(timed, lambda conn: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {t}").format(
                t=identifier(iso.raw_table))), f"writing to {iso.raw_table}", wait=Backoff(budget=0.1, first=0.1))
        assert time.monotonic() - began < 15
    finally:
        holder.close()
    with connect(timed) as conn, pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        conn.execute("SELECT pg_sleep(5)")


def _delete_before(iso: Isolated, keep_last: int) -> dict[int, tuple[int, int]]:
    """What Kafka's retention does to old segments: delete every record but the last `keep_last`
    of each partition. Returns the watermarks before."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from ai_tweets.kafka import admin_config, watermarks

    before = watermarks(iso.settings, iso.settings.tweets_topic)
    admin = AdminClient(admin_config(iso.settings))  # deleting records is the admin's, as Kafka's retention is
    futures = admin.delete_records([TopicPartition(iso.settings.tweets_topic, p, high - keep_last)
                                    for p, (_, high) in before.items()])
    for future in futures.values():
        future.result(30)
    return before


def _ingest(iso: Isolated, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--available-now", *args],
                          env=python_env(**iso.env), capture_output=True, text=True, timeout=600)


def test_offsets_lost_while_the_job_was_down_stop_it_naming_the_range_or_are_recorded(tmp_path):
    from ai_tweets.capture import produce_tweets

    iso = Isolated.create(tmp_path)
    produce_tweets("generate", count=400, seed=81, settings=iso.settings)
    assert _ingest(iso).returncode == 0
    assert iso.counts(iso.raw_table)[0] == 400
    produce_tweets("generate", count=400, seed=82, settings=iso.settings)  # arrives while the job is down
    before = _delete_before(iso, keep_last=10)  # … and expires before it runs again

    failed = _ingest(iso)
    assert failed.returncode == 3, failed.stderr[-3000:]
    message = next(line for line in failed.stderr.splitlines() if line.startswith("error:"))
    lost = [(p, high) for p, (_, high) in sorted(before.items())]
    for partition, high in lost:
        assert f"{iso.settings.tweets_topic} partition {partition}: offsets " in message
        assert f"–{high - 11} (" in message, message
    assert "--on-data-loss record" in message and "Traceback" not in failed.stderr
    assert iso.counts(iso.raw_table)[0] == 400, "nothing was written past the gap"

    recorded = _ingest(iso, "--on-data-loss", "record")
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    assert iso.counts(iso.raw_table)[0] == 400 + 10 * len(before), "the job went on after the gap"
    gaps = iso.query("SELECT kafka_partition, first_offset, last_offset FROM {t} WHERE topic = %s ORDER BY 1",
                     (iso.settings.tweets_topic,), t=GAPS_TABLE)
    assert [(p, last) for p, _, last in gaps] == [(p, high - 11) for p, high in lost]
    try:
        with pytest.raises(ServiceDown, match=f"{iso.settings.tweets_topic} partition"):
            check_stream(iso.settings)
    finally:
        iso.query("DELETE FROM {t} WHERE topic = %s RETURNING 1", (iso.settings.tweets_topic,), t=GAPS_TABLE)
    assert _ingest(iso).returncode == 0, "once recorded, a restart goes on"


def test_offsets_that_expire_under_a_running_job_stop_it(tmp_path):
    """The running query's own guard (failOnDataLoss): its next batch's data is gone."""
    from ai_tweets.capture import produce_tweets

    iso = Isolated.create(tmp_path)
    produce_tweets("generate", count=200, seed=83, settings=iso.settings)
    job = subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--trigger-seconds", "10",
                            "--max-offsets", "100"], env=python_env(**iso.env), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(job.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while iso.counts(iso.raw_table)[0] == 0:
            assert time.monotonic() < deadline and job.poll() is None, "".join(output)[-3000:]
            time.sleep(0.5)
        produce_tweets("generate", count=200, seed=84, settings=iso.settings)
        _delete_before(iso, keep_last=5)
        code = job.wait(300)
    finally:
        if job.poll() is None:
            job.kill()
    reader.join(10)
    assert code != 0, "the job stops instead of skipping data silently"
    assert "lost" in "".join(output).lower()


def test_the_broker_bounds_its_logs_by_time_and_size(settings):
    from confluent_kafka.admin import AdminClient, ConfigResource

    from ai_tweets.kafka import admin_config

    admin = AdminClient(admin_config(settings))
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([broker])[broker].result(30)
    assert int(configs["log.retention.bytes"].value) == 1024**3
    assert int(configs["log.retention.hours"].value) == 24
    assert iso_synchronous(settings) == "on"


def iso_synchronous(settings) -> str:
    with connect(settings) as conn:
        return conn.execute("SHOW synchronous_commit").fetchone()[0]


def test_prune_deletes_stream_logs_past_their_retention_only(tmp_path):
    from ai_tweets.classify import ensure_tables
    from ai_tweets.retention import prune

    iso = Isolated.create(tmp_path)
    topic = iso.settings.tweets_topic
    with connect(iso.settings) as conn:
        ensure_tables(conn)
        for offset, age in ((0, "40 days"), (1, "1 day")):
            conn.execute("INSERT INTO ingest_quarantine (target_table, topic, kafka_partition, kafka_offset, reason, "
                         "quarantined_at) VALUES ('t', %s, 0, %s, 'r', now() - %s::interval)", (topic, offset, age))
            conn.execute("INSERT INTO classify_batches (query_name, batch_id, rows_in, ai_rows, quarantined, requests, "
                         "model_versions, latency_ms, finished_at) VALUES (%s, %s, 0, 0, 0, 0, '{}', 0, "
                         "now() - %s::interval)", (topic, offset, age))
    deleted = prune(load_settings({**iso.env, "BATCH_LOG_RETENTION_DAYS": "30"}))
    assert deleted["ingest_quarantine"] >= 1 and deleted["classify_batches"] >= 1
    assert iso.query("SELECT kafka_offset FROM ingest_quarantine WHERE topic = %s", (topic,)) == [(1,)]
    assert iso.query("SELECT batch_id FROM classify_batches WHERE query_name = %s", (topic,)) == [(1,)]
