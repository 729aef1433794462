"""The whole product as a newcomer runs it: `make demo`'s flow through Airflow's API on the
local stack (capture → prepare → annotate → train → live classification)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_demo_drives_every_dag_to_live_classification(local_stack):
    from ai_tweets.demo import run_demo
    from ai_tweets.jobs import stop_job
    from stackbase.settings import load_settings

    try:
        summary = run_demo("generate", count=20_000, live_wait=240)
    finally:
        stop_job("live-producer", load_settings())
    tables = summary["tables"]
    assert tables["raw_tweet_dataset_0"] >= 20_000
    assert tables["test_dataset_0"] == 1_000 and tables["snorkel_train_dataset_0"] == 10_000
    assert summary["weak_ai"] > 0 and summary["weak_not_ai"] > 0
    assert summary["pushed_to_label_studio"] > 0, "the most uncertain tweets reached Label Studio"
    assert summary["champion"].get("version"), "a champion is registered in MLflow"
    assert summary["live_ai_tweets"] > 0, "the live stream is being classified"
    assert tables["tweet_urls"] > 0
