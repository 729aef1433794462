"""Capture on the real stack: generator → Kafka → Spark ingest → raw table (exactly once)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from capture_helpers import MALFORMED, Isolated

from ai_tweets.capture import produce_tweets
from ai_tweets.tables import raw_table_name

pytestmark = pytest.mark.usefixtures("local_stack")


def test_20k_generated_tweets_exactly_once_with_quarantine(tmp_path):
    iso = Isolated.create(tmp_path)
    table = raw_table_name(iso.settings)
    report = produce_tweets("generate", count=20_000, seed=11, settings=iso.settings)
    assert report["delivered"] == 20_000

    # 1% malformed messages, after the valid ones, spread over the partitions.
    bad = [MALFORMED[i % len(MALFORMED)] for i in range(200)]
    iso.produce_raw([(f"bad-{i}".encode(), value) for i, (value, _) in enumerate(bad)])
    iso.ingest()

    assert iso.counts(table) == (20_000, 20_000)
    quarantined = iso.query("SELECT reason FROM ingest_quarantine WHERE target_table = %s", (table,))
    assert len(quarantined) == 200
    for _, expected_reason in MALFORMED:
        assert sum(expected_reason in reason for (reason,) in quarantined) == 25, expected_reason
    stored = {bytes(v) for (v,) in iso.query(
        "SELECT message_value FROM ingest_quarantine WHERE target_table = %s", (table,))}
    assert {value for value, _ in MALFORMED} <= stored, "quarantined bytes are kept as they came"

    truncated, expanded = iso.query(
        "SELECT count(*) FILTER (WHERE text LIKE '%%…'), "
        "count(*) FILTER (WHERE jsonb_path_exists(urls, '$[*].expanded_url ? (@ starts with \"http\")')) "
        "FROM {table}", table=table)[0]
    assert truncated == 0, "full text, never the truncated one"
    assert expanded > 1_000, "expanded URLs are kept"

    # Replaying the same tweets adds nothing and changes nothing.
    before = iso.checksum(table)
    produce_tweets("generate", count=20_000, seed=11, settings=iso.settings)
    iso.ingest()
    assert iso.counts(table) == (20_000, 20_000)
    assert iso.checksum(table) == before


def test_sigkill_mid_run_then_restart_loses_and_duplicates_nothing(tmp_path):
    iso = Isolated.create(tmp_path)
    table = raw_table_name(iso.settings)
    produce_tweets("generate", count=20_000, seed=12, settings=iso.settings)

    job = iso.start_ingest("--max-offsets", "2000", "--trigger-seconds", "0.5")
    deadline = time.monotonic() + 300
    rows = 0
    while time.monotonic() < deadline:
        rows = iso.counts(table)[0]
        if rows >= 4_000:
            break
        assert job.poll() is None, job.stderr.read().decode()[-3000:]
        time.sleep(0.5)
    assert 0 < rows < 20_000, f"the kill must land mid-run; the table had {rows} rows"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)

    iso.ingest()
    assert iso.counts(table) == (20_000, 20_000)


def test_dataset_version_1_does_not_touch_version_0(tmp_path):
    v0 = Isolated.create(tmp_path)
    produce_tweets("generate", count=3_000, seed=13, settings=v0.settings)
    v0.ingest()
    table0 = raw_table_name(v0.settings)
    before = v0.checksum(table0)

    v1 = v0.with_version(1)
    produce_tweets("generate", count=1_000, seed=14, settings=v1.settings)
    v1.ingest()
    table1 = raw_table_name(v1.settings)
    assert (table0[-2:], table1[-2:]) == ("_0", "_1")
    assert v1.counts(table1) == (4_000, 4_000), "version 1 reads the whole topic into its own table"
    assert v0.counts(table0) == (3_000, 3_000)
    assert v0.checksum(table0) == before


def test_replay_of_real_v1_tweets(tmp_path, shared_data):
    iso = Isolated.create(tmp_path)
    report = produce_tweets("replay", file=shared_data / "tweets_2020_v1_full.jsonl", settings=iso.settings)
    assert (report["delivered"], report["malformed_forwarded"]) == (1_000, 0)
    iso.ingest()
    table = raw_table_name(iso.settings)
    assert iso.counts(table) == (1_000, 1_000)
    linked = iso.query("SELECT count(*) FROM {table} WHERE jsonb_array_length(urls) > 0", table=table)[0][0]
    assert linked >= 232
    sample = json.loads(iso.query("SELECT tweet::text FROM {table} LIMIT 1", table=table)[0][0])
    assert sample["source"] == "v1.1" and "raw" in sample


def test_x_source_through_kafka_into_the_raw_table(tmp_path):
    """The `x` source end to end, with the local fake X API in place of api.x.com."""
    from tests.fakes.fake_x_api import FakeXApi, v2_tweet

    iso = Isolated.create(tmp_path)
    with FakeXApi() as api:
        for i in range(1, 51):
            api.emit(v2_tweet(10_000 + i, f"Fine-tuning LLMs, part {i} https://t.co/x{i}",
                              urls={f"https://t.co/x{i}": f"https://arxiv.org/abs/{i}"}))
        env = {**iso.env, "X_BEARER_TOKEN": api.bearer_token, "X_API_BASE_URL": api.base_url}
        from stackbase.settings import load_settings

        report = produce_tweets("x", count=50, settings=load_settings(env))
        assert api.rules, "stream rules were created from the keyword list"
    assert report["delivered"] == 50
    iso.ingest()
    table = raw_table_name(iso.settings)
    assert iso.counts(table) == (50, 50)
    expanded = iso.query("SELECT urls->0->>'expanded_url' FROM {table} ORDER BY tweet_id LIMIT 1",
                         table=table)
    assert expanded == [("https://arxiv.org/abs/1",)]


def test_the_airflow_form_refuses_a_replay_file_outside_the_replay_folder(settings):
    """An Airflow user asks `capture_tweets` to replay the worker's `.env` (its lines would be
    quarantined in the database, readable to anyone with SQL): the task refuses at once."""
    from ai_tweets.airflow_api import AirflowClient, AirflowError
    from stackbase.settings import PROJECT_ROOT, environment

    client = AirflowClient(settings.airflow_url, "admin", environment().get("AIRFLOW_ADMIN_PASSWORD", ""))
    client.wait_for_dags({"capture_tweets"})
    client.unpause("capture_tweets")
    hostile = str(PROJECT_ROOT / ".env")
    run = client.trigger("capture_tweets", {"source": "replay", "file": hostile, "count": 0,
                                            "raw_table_prefix": "refused_replay", "dataset_version": 0})
    with pytest.raises(AirflowError, match="is outside REPLAY_DIR"):
        client.wait("capture_tweets", run, timeout=600)
    produce = client.task_instance("capture_tweets", run, "produce")
    assert produce["state"] == "failed" and produce["try_number"] == 1, "a refused file fails fast, not retried"
    assert client.task_states("capture_tweets", run)["ingest"] == "upstream_failed"
