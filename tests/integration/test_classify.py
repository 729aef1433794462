"""Classify on the real stack: Kafka → Spark → model serving (batched) → ai_tweets/tweet_urls,
exactly once, through a model server outage and a champion switch (kill -9 at random moments:
`tests/reliability/test_classify_reliability.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from capture_helpers import ROOT, Isolated, arrow_batch, python_env
from hostile import MESSAGES
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ai_tweets.capture import produce_tweets
from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.train import predict_file
from ai_tweets_devkit.models import ModelServer, free_port, register_model
from stackbase.settings import load_settings

pytestmark = pytest.mark.usefixtures("local_stack")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A model of this module's own (version 1 = champion) served on a port of its own."""
    tmp = tmp_path_factory.mktemp("classify")
    base = Isolated.create(tmp)
    env = {**base.env, "MODEL_NAME": f"test-clf-{uuid.uuid4().hex[:8]}",
           "MODEL_SERVING_URL": f"http://127.0.0.1:{free_port()}",
           "MODEL_SHADOW_URL": ""}  # no shadow scoring: the stack's challenger is another model
    settings = load_settings(env)
    version = register_model(settings, seed=31)
    server = ModelServer(env, tmp / "serving.json")
    server.start()
    yield env, settings, server, version
    server.stop()


def _stream(served, tmp_path, count: int, seed: int):
    """A fresh topic of `count` generated tweets; returns (isolated env, ids, texts)."""
    env, settings, _, _ = served
    tag = uuid.uuid4().hex[:8]
    iso_env = {**env, "TWEETS_TOPIC": f"test-classify-{tag}", "DATA_DIR": str(tmp_path / "data")}
    iso = Isolated(env=iso_env, settings=load_settings(iso_env))
    tweets = [normalize(item.payload) for item in generate(count, seed=seed)]
    produce_tweets("generate", count=count, seed=seed, settings=iso.settings)
    return iso, [t.id for t in tweets], [t.text for t in tweets]


def _predicted_ai(iso: Isolated, tmp_path, ids: list[int], texts: list[str], version: str) -> set[int]:
    """What `ai-tweets predict` says of the same texts with the given version."""
    source, target = tmp_path / f"texts-{version}.jsonl", tmp_path / f"predicted-{version}.csv"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    predict_file(source, target, f"models:/{iso.settings.model_name}/{version}", iso.settings)
    import pandas as pd

    labels = pd.read_csv(target, keep_default_na=False)["label"].tolist()
    return {tweet_id for tweet_id, label in zip(ids, labels, strict=True) if label == 1}


def _classified(iso: Isolated, ids: list[int]) -> dict[int, str]:
    rows = iso.query("SELECT tweet_id, model_version FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))
    return dict(rows)


def _classify(iso: Isolated, *args: str, timeout: float = 600) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), *args],
                            env=python_env(**iso.env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]


def _start_classify(iso: Isolated, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), *args],
                            env=python_env(**iso.env), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_rows(iso: Isolated, ids: list[int], at_least: int, job: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = len(_classified(iso, ids))
        if found >= at_least:
            return found
        assert job.poll() is None, "the classify job exited early"
        time.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} rows after {timeout} s")


def test_20k_stream_matches_predict_and_a_replay_adds_nothing(served, tmp_path):
    iso, ids, texts = _stream(served, tmp_path, 20_000, seed=41)
    _classify(iso, "--available-now", "--retweet")
    expected = _predicted_ai(iso, tmp_path, ids, texts, served[3])
    classified = _classified(iso, ids)
    assert set(classified) == expected and len(expected) > 1_000
    assert set(classified.values()) == {served[3]}
    urls = iso.query("SELECT u.tweet_id, u.domain, u.canonical_url FROM tweet_urls u WHERE u.tweet_id = ANY(%s)",
                     (ids,))
    assert urls and {row[0] for row in urls} <= expected
    assert not any("utm_" in row[2] for row in urls), "tracking parameters are removed"
    batches = iso.query("SELECT sum(rows_in), sum(requests) FROM classify_batches WHERE query_name = %s",
                        (f"classify_{iso.settings.tweets_topic}".replace("-", "_"),))[0]
    assert batches[0] == 20_000 and batches[1] <= 40, "whole batches per request, never one per row"
    decisions = dict(iso.query("SELECT tweet_id, action FROM retweets WHERE tweet_id = ANY(%s)", (ids,)))
    assert set(decisions) <= expected, "only AI tweets are considered for a retweet"
    assert "would_retweet" in decisions.values() and "retweeted" not in decisions.values(), "dry run by default"
    with_links = {row[0] for row in urls if not row[1].endswith(("twitter.com", "x.com"))}
    assert {t for t, action in decisions.items() if action == "would_retweet"} <= with_links

    produce_tweets("generate", count=20_000, seed=41, settings=iso.settings)
    _classify(iso, "--available-now")
    assert _classified(iso, ids) == classified
    assert iso.query("SELECT count(*) FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))[0][0] == len(classified)


def test_model_server_down_for_30_seconds(served, tmp_path):
    _, _, server, version = served
    iso, ids, texts = _stream(served, tmp_path, 5_000, seed=43)
    expected = _predicted_ai(iso, tmp_path, ids, texts, version)
    job = _start_classify(iso, "--available-now", "--max-offsets", "500")
    _wait_rows(iso, ids, 50, job)
    server.stop()
    time.sleep(30)
    assert job.poll() is None, "the job waits for the model server instead of failing"
    server.start()
    assert job.wait(600) == 0
    assert set(_classified(iso, ids)) == expected


def test_champion_switch_mid_stream(served, tmp_path):
    env, settings, server, first = served
    iso, ids, texts = _stream(served, tmp_path, 5_000, seed=44)
    job = _start_classify(iso, "--max-offsets", "1000", "--trigger-seconds", "0.5")
    try:
        _wait_rows(iso, ids, 100, job)
        second = register_model(settings, seed=45, epochs=1)  # a different model takes the alias
        server.wait_for("serving", version=second, timeout=240)
        more = [normalize(item.payload) for item in generate(5_000, seed=46)]
        produce_tweets("generate", count=5_000, seed=46, settings=iso.settings)
        all_ids = ids + [t.id for t in more]
        all_texts = texts + [t.text for t in more]
        by_first = _predicted_ai(iso, tmp_path, all_ids, all_texts, first)
        by_second = _predicted_ai(iso, tmp_path, all_ids, all_texts, second)
        _wait_rows(iso, [t.id for t in more], len(by_second & {t.id for t in more}), job, timeout=400)
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(60)
    classified = _classified(iso, all_ids)
    assert set(classified.values()) == {first, second}
    for tweet_id, version in classified.items():
        assert tweet_id in (by_first if version == first else by_second), "each row's version called it AI"
    assert by_first & by_second <= set(classified), "what both versions call AI is never lost"
    assert not set(classified) - (by_first | by_second)
    late = {t.id for t in more}
    assert {v for tweet_id, v in classified.items() if tweet_id in late} == {second}


def test_cli_predict_and_the_serving_endpoint_agree(served, tmp_path):
    """`ai-tweets predict` and model serving give the same probabilities for the same texts."""
    import urllib.request

    import numpy as np
    import pandas as pd

    env, settings, server, _ = served
    version = server.state()["version"]  # after the champion switch above, not the first version
    texts = [normalize(item.payload).text for item in generate(200, seed=47)]
    body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()
    request = urllib.request.Request(f"{settings.model_serving_url}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        served_rows = json.loads(response.read())["predictions"]
    source, target = tmp_path / "texts.jsonl", tmp_path / "predicted.csv"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    predict_file(source, target, f"models:/{settings.model_name}/{version}", settings)
    predicted = pd.read_csv(target, keep_default_na=False)
    assert np.allclose(predicted["ai_probability"], [row["ai_probability"] for row in served_rows], atol=1e-6)
    assert predicted["label"].tolist() == [row["label"] for row in served_rows]
    assert {row["model_version"] for row in served_rows} == {version}


# --- issue 14: isolation, side effects after the commit, a bad champion, the watchdog --------


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(st.lists(MESSAGES, min_size=1, max_size=10))
def test_a_fuzzed_micro_batch_is_written_by_the_classify_job_s_partition_writer(served, values):
    from ai_tweets.classify import ClassifyOptions, classify_job, ensure_tables, to_item
    from ai_tweets.storage import connect
    from ai_tweets.stream import Message, parse_messages, write_partition

    env, settings, _, _ = served
    with connect(settings) as conn:
        ensure_tables(conn)
    topic = f"fuzz-classify-{uuid.uuid4().hex[:8]}"
    items, bad = parse_messages([Message(topic, 0, i, None, v) for i, v in enumerate(values)], to_item)
    job = classify_job(settings, ClassifyOptions(max_wait_seconds=60), f"fuzz_{topic.replace('-', '_')}")
    stats = next(write_partition(iter([arrow_batch(topic, values, 0)]), settings, job)).to_pydict()
    assert stats["messages"] == [len(values)] and stats["quarantined"] == [len(bad)]
    iso = Isolated(env=env, settings=settings)
    stored = iso.query("SELECT count(*) FROM ingest_quarantine WHERE target_table = 'ai_tweets' AND topic = %s",
                       (topic,))[0][0]
    assert stored == len(bad)


def test_x_errors_never_fail_a_batch_and_each_process_asks_x_once(served, tmp_path):
    """Live automatic retweets (no review) with X answering 429 to GET /2/users/me: the job classifies
    everything, records the decisions, and its long-lived Retweeters stop asking (no request per batch)."""
    from fakes.fake_x_api import ME_PATH, FakeXApi

    version = served[2].state()["version"]  # after the champion switch above, not the first version
    iso, ids, texts = _stream(served, tmp_path, 5_000, seed=48)
    expected = _predicted_ai(iso, tmp_path, ids, texts, version)
    with FakeXApi() as api:
        api.reject_next("me", 1000, status=429, reset_in=900)
        live = {**iso.env, "X_RETWEET_DRY_RUN": "false", "X_RETWEET_REVIEW": "false", "X_API_KEY": "k",
                "X_API_SECRET": "s", "X_ACCESS_TOKEN": "1000-t", "X_ACCESS_TOKEN_SECRET": "ts",
                "X_API_BASE_URL": api.base_url, "X_RETWEETS_PER_15_MIN": "50", "X_RETWEET_ANY_DOMAIN": "true",
                "X_RETWEET_MIN_PRECISION": "0"}  # this version has no gold labels: no precision limit
        result = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), "--available-now",
                                 "--retweet", "--max-offsets", "500"], env=python_env(**live), capture_output=True,
                                text=True, timeout=600)
        asked = len(api.requests_to("GET", ME_PATH))
    assert result.returncode == 0, result.stderr[-4000:]
    assert set(_classified(iso, ids)) == expected, "every AI tweet is written although X fails"
    batches = iso.query("SELECT count(*) FROM classify_batches WHERE query_name = %s",
                        (f"classify_{iso.settings.tweets_topic}".replace("-", "_"),))[0][0]
    assert batches >= 10 and 1 <= asked <= 4, f"{asked} GET /2/users/me for {batches} batches"
    actions = dict(iso.query("SELECT action, count(*) FROM retweets WHERE tweet_id = ANY(%s) GROUP BY 1", (ids,)))
    assert "pending" not in actions and actions.get("failed", 0) >= 1, actions


def test_a_champion_that_fails_its_smoke_test_keeps_the_previous_one_serving(served, tmp_path):
    from mlflow import MlflowClient

    from ai_tweets.health import ServiceDown, check_champion
    from ai_tweets_devkit.models import register_broken_model

    env, settings, server, _ = served
    good = server.state()["version"]
    broken = register_broken_model(settings, tmp_path)
    try:
        state = server.wait_for("serving", version=good, timeout=10)
        deadline = time.monotonic() + 300
        while "rejected" not in state:
            assert time.monotonic() < deadline, f"the broken champion was not reported: {state}"
            time.sleep(1)
            state = server.state()
        assert state["version"] == good and state["rejected"]["version"] == broken
        assert "broken on purpose" in state["rejected"]["reason"] or "HTTP" in state["rejected"]["reason"]
        with pytest.raises(ServiceDown, match=f"rejected champion version {broken}.*previous version keeps serving"):
            check_champion(settings)
        iso, ids, texts = _stream(served, tmp_path, 2_000, seed=49)
        _classify(iso, "--available-now")
        assert set(_classified(iso, ids).values()) == {good}, "the stream goes on with the previous version"
    finally:
        MlflowClient(settings.mlflow_uri()).set_registered_model_alias(settings.model_name, "champion", good)


def test_the_watchdog_restarts_a_stalled_classify_job_and_says_so(served, tmp_path, monkeypatch):
    from ai_tweets.jobs import ensure_classifier, job_status, stop_job

    env, settings, _, _ = served
    iso, ids, _ = _stream(served, tmp_path, 2_000, seed=50)
    for key, value in {**iso.env, "CLASSIFY_STALL_SECONDS": "30"}.items():
        monkeypatch.setenv(key, value)
    first = ensure_classifier()
    assert first["state"] == "started"
    try:
        deadline = time.monotonic() + 300
        while iso.query("SELECT coalesce(sum(rows_in), 0) FROM classify_batches WHERE query_name = %s",
                        (f"classify_{iso.settings.tweets_topic}".replace("-", "_"),))[0][0] < len(ids):
            assert time.monotonic() < deadline, "the job did not get through the topic"
            time.sleep(1)
        time.sleep(3)  # the batch's offsets are committed after its log row
        assert ensure_classifier()["state"] == "running", "caught up: nothing waits, so it is not stalled"
        os.killpg(first["pid"], signal.SIGSTOP)  # hung: alive, but no batch any more
        more = [normalize(item.payload).id for item in generate(2_000, seed=51)]
        produce_tweets("generate", count=2_000, seed=51, settings=iso.settings)
        time.sleep(35)  # past the 30 s stall limit
        restarted = ensure_classifier()
        assert restarted["state"] == "restarted" and restarted["pid"] != first["pid"]
        assert restarted["reason"].startswith("stalled: no batch for") and "messages wait" in restarted["reason"]
        deadline = time.monotonic() + 300
        while not set(_classified(iso, more)):
            assert time.monotonic() < deadline, "the restarted job wrote nothing"
            time.sleep(1)
        assert job_status("classify", load_settings())["state"] == "running"
    finally:
        stop_job("classify", load_settings())


def test_a_version_the_pipeline_did_not_register_or_whose_files_changed_is_never_loaded(served, tmp_path):
    """A registry write is code execution (a pyfunc unpickles on load). A version registered with
    the pipeline's MLflow password but not by the pipeline (no record in its database), and a
    recorded version whose files were replaced in the artifact store, are refused by everything
    that loads models: neither is loaded (the model inside raises on every prediction, which the
    smoke test would report), serving keeps the previous version and says why."""
    import mlflow
    from mlflow import MlflowClient

    from ai_tweets.model_files import UntrustedModel, verified
    from ai_tweets_devkit.models import BROKEN_MODEL, register_broken_model
    from localstack.runtime import Context

    _, settings, server, _ = served
    good = server.state()["version"]
    client = MlflowClient(settings.mlflow_uri())
    code = tmp_path / "stranger.py"
    code.write_text(BROKEN_MODEL)
    mlflow.set_tracking_uri(settings.mlflow_uri())
    mlflow.set_experiment("integration-tests")
    with mlflow.start_run():
        stranger = str(mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                               registered_model_name=settings.model_name).registered_model_version)
    tampered = register_broken_model(settings, tmp_path, champion=False)
    source = client.get_model_version(settings.model_name, tampered).source  # models:/m-<logged model id>
    location = client.get_logged_model(source.removeprefix("models:/"))
    store = Context.load().local / "mlflow" / "artifacts"  # the tracking server's artifact store
    files = store / location.artifact_location.removeprefix("mlflow-artifacts:/")
    (files / "MLmodel").write_text((files / "MLmodel").read_text() + "# changed in the artifact store\n")
    refused = {stranger: "not registered by the pipeline", tampered: "changed since the pipeline registered"}
    for version, reason in refused.items():
        uri = f"models:/{settings.model_name}/{version}"
        with pytest.raises(UntrustedModel, match=reason), verified(settings, uri):
            pass
    try:
        for version, reason in refused.items():
            client.set_registered_model_alias(settings.model_name, "champion", version)
            deadline = time.monotonic() + 120
            state = server.state()
            while state.get("rejected", {}).get("version") != version:
                assert time.monotonic() < deadline, f"version {version} was not refused: {state}"
                time.sleep(1)
                state = server.state()
            assert state["version"] == good and reason in state["rejected"]["reason"], state
            assert "broken on purpose" not in state["rejected"]["reason"]
    finally:
        client.set_registered_model_alias(settings.model_name, "champion", good)
