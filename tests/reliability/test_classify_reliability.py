"""The classify job killed -9 several times at random moments in the middle of a replayed
stream: in the end every AI tweet is there exactly once, with its links, and nothing that
should be there is missing."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from capture_helpers import ROOT, Isolated, python_env
from reliability_helpers import SCALE, sized, wait_until

from ai_tweets.capture import produce_tweets
from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.train import predict_file
from ai_tweets.urls import extract_urls
from ai_tweets_devkit.models import ModelServer, free_port, register_model
from stackbase.settings import load_settings


@pytest.fixture(scope="module")
def served(local_stack, tmp_path_factory):
    """A model of this module's own, the champion, served on a port of its own."""
    tmp = tmp_path_factory.mktemp("reliability-classify")
    env = {**Isolated.create(tmp).env, "MODEL_NAME": f"test-rel-{uuid.uuid4().hex[:8]}",
           "MODEL_SERVING_URL": f"http://127.0.0.1:{free_port()}",
           "MODEL_SHADOW_URL": ""}  # no shadow scoring: the stack's challenger is another model
    version = register_model(load_settings(env), seed=61)
    server = ModelServer(env, tmp / "serving.json")
    server.start()
    yield env, version
    server.stop()


def _classify_job(iso: Isolated, log: Path, *args: str) -> subprocess.Popen:
    """The job in its own process group; its output goes to `log` (a pipe left unread could fill)."""
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), *args],
                                env=python_env(**iso.env), start_new_session=True, stdout=out, stderr=out)


def test_classify_killed_9_at_random_moments_loses_and_duplicates_nothing(served, tmp_path, figures):
    env, version = served
    count, kills = sized(short=20_000, long=100_000), sized(short=3, long=5)
    iso_env = {**env, "TWEETS_TOPIC": f"test-rel-classify-{uuid.uuid4().hex[:8]}", "DATA_DIR": str(tmp_path / "data")}
    iso = Isolated(env=iso_env, settings=load_settings(iso_env))

    # The replay file, and what the served version says of each tweet in it.
    replay = tmp_path / "replay.jsonl"
    tweets = []
    with replay.open("w") as file:
        for generated in generate(count, seed=62):
            file.write(json.dumps(generated.payload) + "\n")
            tweets.append(normalize(generated.payload))
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t.text}) + "\n" for t in tweets))
    predict_file(texts, tmp_path / "predicted.csv", f"models:/{iso.settings.model_name}/{version}", iso.settings)
    labels = pd.read_csv(tmp_path / "predicted.csv", keep_default_na=False)["label"].tolist()
    expected = {t.id for t, label in zip(tweets, labels, strict=True) if label == 1}
    expected_links = {t.id for t in tweets if t.id in expected and extract_urls(t)}
    ids = [t.id for t in tweets]

    def stored() -> tuple[int, int]:
        return iso.query("SELECT count(*), count(DISTINCT tweet_id) FROM ai_tweets WHERE tweet_id = ANY(%s)",
                         (ids,))[0]

    # The stream arrives over about a minute (long form: about two) while the job is killed.
    rate = count / sized(short=60, long=120)
    producer = threading.Thread(target=produce_tweets, kwargs={
        "source": "replay", "file": replay, "rate": rate, "settings": iso.settings})
    # Not `random`'s global state: training the model above seeded it (keras.utils.set_random_seed).
    seed = int(os.environ.get("RELIABILITY_SEED", secrets.randbelow(1_000_000)))
    rng = random.Random(seed)
    began = time.monotonic()
    producer.start()
    moments = []
    log = tmp_path / "classify.log"
    for _ in range(kills):
        job = _classify_job(iso, log, "--max-offsets", "2000", "--trigger-seconds", "0.5")
        at_start = stored()[0]
        wait_until(lambda job=job, at_start=at_start: stored()[0] > at_start or job.poll() is not None, 300,
                   "the restarted job's first rows")
        assert job.poll() is None, f"the classify job exited: {log.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 4.0))
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        rows = stored()[0]
        moments.append((round(time.monotonic() - began, 1), rows))
        assert rows < len(expected), "each kill must land mid-stream"
    producer.join(600)
    assert not producer.is_alive()

    final = _classify_job(iso, log, "--available-now")
    assert final.wait(900) == 0, log.read_text()[-4000:]
    total, distinct = stored()
    found = {row[0] for row in iso.query("SELECT tweet_id FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))}
    url_rows, url_distinct = iso.query("SELECT count(*), count(DISTINCT (tweet_id, canonical_url)) FROM tweet_urls "
                                       "WHERE tweet_id = ANY(%s)", (ids,))[0]
    with_links = {row[0] for row in iso.query("SELECT DISTINCT tweet_id FROM tweet_urls WHERE tweet_id = ANY(%s)",
                                              (ids,))}
    seen = iso.query("SELECT coalesce(sum(rows_in), 0) FROM classify_batches WHERE query_name = %s",
                     (f"classify_{iso.settings.tweets_topic}".replace("-", "_"),))[0][0]
    assert total == distinct, f"{total - distinct} duplicate rows"
    assert found == expected, f"missing {len(expected - found)}, unexpected {len(found - expected)}"
    assert url_rows == url_distinct and with_links == expected_links
    assert seen == count, "every message counted in exactly one committed batch (a replayed batch keeps its id)"
    figures(f"{count:,} replayed tweets at {rate:,.0f}/s, classify killed -9 {kills} times at "
            f"(s, AI rows so far) {moments} (seed {seed}, {SCALE} form); count(*) {total:,} = count(distinct) "
            f"{distinct:,} = expected {len(expected):,}, 0 missing; {url_rows:,} URL rows for "
            f"{len(with_links):,} tweets, none duplicated; classify_batches counts {seen:,} messages, each "
            f"once; {time.monotonic() - began:.0f} s")


def _iso(env: dict, tmp_path: Path, name: str) -> Isolated:
    iso_env = {**env, "TWEETS_TOPIC": f"test-rel-{name}-{uuid.uuid4().hex[:8]}", "DATA_DIR": str(tmp_path / "data"),
               "RAW_TABLE_PREFIX": f"test_rel_{uuid.uuid4().hex[:8]}"}
    return Isolated(env=iso_env, settings=load_settings(iso_env))


def _expected_ai(iso: Isolated, tmp_path: Path, version: str, tweets: list) -> set[int]:
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t.text}) + "\n" for t in tweets))
    predict_file(texts, tmp_path / "predicted.csv", f"models:/{iso.settings.model_name}/{version}", iso.settings)
    labels = pd.read_csv(tmp_path / "predicted.csv", keep_default_na=False)["label"].tolist()
    return {t.id for t, label in zip(tweets, labels, strict=True) if label == 1}


def test_postgres_killed_9_during_classify_loses_no_acknowledged_row(served, disruptive, tmp_path, figures):
    from reliability_helpers import kill_9_postgres
    from stack_control import stack

    env, version = served
    count = sized(short=20_000, long=100_000)
    iso = _iso(env, tmp_path, "pgkill")
    # fresh tweet ids per run: ai_tweets is shared, and rows of an earlier run would count
    tweets = [normalize(generated.payload) for generated in generate(count, seed=secrets.randbelow(50_000))]
    expected = _expected_ai(iso, tmp_path, version, tweets)
    ids = [t.id for t in tweets]

    def stored() -> tuple[int, int]:
        return iso.query("SELECT count(*), count(DISTINCT tweet_id) FROM ai_tweets WHERE tweet_id = ANY(%s)",
                         (ids,))[0]

    rate = count / 40
    from ai_tweets.kafka import produce
    from ai_tweets.sources import paced

    # The job first gets through a few tweets (Spark starts slowly on a busy machine), then the
    # stream arrives over 40 s, so that the crash (after a fifth of it) lands while it flows.
    warm, rest = tweets[:200], tweets[200:]
    producer = threading.Thread(target=produce, args=(paced(rest, rate), iso.settings))
    log = tmp_path / "classify.log"
    job = _classify_job(iso, log, "--max-offsets", "2000", "--trigger-seconds", "0.5")
    produce(warm, iso.settings)
    try:
        wait_until(lambda: stored()[0] > 0 or job.poll() is not None, 600, "the job's first AI rows")
        producer.start()
        wait_until(lambda: stored()[0] > len(expected) // 5, 300, "a fifth of the AI rows")
        before = stored()[0]
        began = time.monotonic()
        kill_9_postgres()
        time.sleep(3)
        stack("up", "postgres")
        back = time.monotonic() - began
        producer.join(600)

        def seen() -> int:
            return iso.query("SELECT coalesce(sum(rows_in), 0) FROM classify_batches WHERE query_name = %s",
                             (f"classify_{iso.settings.tweets_topic}".replace("-", "_"),))[0][0]

        wait_until(lambda: (stored()[0] >= len(expected) and seen() >= count) or job.poll() is not None, 600,
                   "every message classified")
        assert job.poll() is None, f"the classify job must ride out the crash:\n{log.read_text()[-3000:]}"
        retried = log.read_text().count("PostgreSQL went away") + log.read_text().count("PostgreSQL not answering")
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(60)
    total, distinct = stored()
    found = {row[0] for row in iso.query("SELECT tweet_id FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))}
    assert before < len(expected), "the crash must land mid-stream"
    assert total == distinct and found == expected, f"missing {len(expected - found)}"
    assert seen() == count, "every message in exactly one committed batch"
    figures(f"{count:,} tweets at {rate:,.0f}/s; PostgreSQL killed -9 after {before:,} AI rows, back in {back:.0f} s; "
            f"the classify job kept running ({retried} retried writes or connections); count(*) {total:,} = "
            f"count(distinct) {distinct:,} = expected "
            f"{len(expected):,}, 0 missing; classify_batches counts {seen():,} messages, each once")


def test_1000_hostile_messages_in_20000_tweets_both_jobs_keep_running(served, tmp_path, figures):
    from hostile import hostile_messages

    from ai_tweets.classify import query_name

    env, version = served
    count, bad = sized(short=20_000, long=100_000), sized(short=1_000, long=5_000)
    iso = _iso(env, tmp_path, "hostile")
    tweets = [normalize(generated.payload) for generated in generate(count, seed=secrets.randbelow(50_000))]
    hostile = hostile_messages(bad, seed=65, first_id=9 * 10**17)
    reasons = {value: reason for reason, value in hostile}
    rng = random.Random(66)
    messages = [(str(t.id).encode(), t.to_json()) for t in tweets] + [(None, value) for _, value in hostile]
    rng.shuffle(messages)
    expected = _expected_ai(iso, tmp_path, version, tweets)
    log_ingest, log_classify = tmp_path / "ingest.log", tmp_path / "classify.log"
    from reliability_helpers import start_ingest

    ingest = start_ingest(iso, log_ingest)
    classify = _classify_job(iso, log_classify, "--max-offsets", "5000", "--trigger-seconds", "1")
    began = time.monotonic()
    try:
        iso.produce_raw(messages)
        name = query_name(iso.settings)
        wait_until(lambda: iso.counts(iso.raw_table)[0] >= count and iso.query(
            "SELECT coalesce(sum(rows_in), 0) FROM classify_batches WHERE query_name = %s", (name,))[0][0]
            >= count + bad or ingest.poll() is not None or classify.poll() is not None, 900,
            "both jobs through the whole topic")
        assert ingest.poll() is None, f"the ingest job died:\n{log_ingest.read_text()[-3000:]}"
        assert classify.poll() is None, f"the classify job died:\n{log_classify.read_text()[-3000:]}"
        seconds = time.monotonic() - began
    finally:
        for job in (ingest, classify):
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
    rows, distinct = iso.counts(iso.raw_table)
    assert rows == distinct == count, "every valid tweet once"
    for target in (iso.raw_table, "ai_tweets"):
        quarantined = iso.query("SELECT message_value, reason FROM ingest_quarantine WHERE target_table = %s "
                                "AND topic = %s", (target, iso.settings.tweets_topic))
        assert len(quarantined) == bad, f"{target}: every hostile message quarantined"
        wrong = [(reasons[None if value is None else bytes(value)], reason) for value, reason in quarantined
                 if not reason.startswith(reasons[None if value is None else bytes(value)])]
        assert not wrong, wrong[:5]
    found = {row[0] for row in iso.query("SELECT tweet_id FROM ai_tweets WHERE tweet_id = ANY(%s)",
                                         ([t.id for t in tweets],))}
    assert found == expected
    kinds = len(set(reasons.values()))
    figures(f"{count:,} tweets with {bad:,} hostile messages of {kinds} kinds (NUL in text/links, dates past 9999 "
            f"in UTC or before 2006, lone surrogates escaped and raw, 1e400, ids past int64, wrong types, nesting "
            f"100,000 deep, oversize, empty, not an object) shuffled in; ingest and classify both still running; "
            f"{rows:,} raw rows = distinct = expected; {bad:,} quarantined with the expected reason by each job; "
            f"AI rows = predict ({len(expected):,}); {seconds:.0f} s")
