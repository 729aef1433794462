"""Approved promotions through the real Airflow and MLflow: a version that beat the champion
waits (`model.promote_if_better` with approval, as the train stage calls it); the
`promote_challenger` DAG shows both versions' metrics and the live tweets they disagree on in
an ApprovalOperator request; a reviewer answers through Airflow's REST API, as the Required
Actions page does; the `champion` alias moves on Approve and stays on Reject."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient

from ai_tweets import model as classifier
from ai_tweets.airflow_api import AirflowClient
from ai_tweets.capture import produce_tweets
from ai_tweets_devkit.models import register_model
from stackbase.settings import environment, load_settings

pytestmark = pytest.mark.usefixtures("local_stack")

DAG = "promote_challenger"
READING_SECONDS = 5  # a person reads first (see test_review_queue: an Airflow 3.3.2 race)


@pytest.fixture(scope="module")
def registry(local_stack) -> Iterator[tuple[MlflowClient, str]]:
    """The stack's model name (the DAG's); its aliases are put back afterwards."""
    settings = load_settings(environment())
    client = MlflowClient(settings.mlflow_uri())
    try:
        before = dict(client.get_registered_model(settings.model_name).aliases)
    except Exception:  # noqa: BLE001 - no such model yet
        before = {}
    yield client, settings.model_name
    for alias in ("champion", "challenger"):
        if alias in before:
            client.set_registered_model_alias(settings.model_name, alias, before[alias])
        else:
            try:
                client.delete_registered_model_alias(settings.model_name, alias)
            except Exception:  # noqa: BLE001 - never set
                pass


@pytest.fixture(scope="module")
def versions(registry) -> tuple[str, str]:
    settings = load_settings(environment())
    return register_model(settings, seed=71, epochs=2, champion=False), register_model(settings, seed=72, epochs=1,
                                                                                       champion=False)


@pytest.fixture(scope="module")
def live_topic(local_stack) -> str:
    """Live tweets of a topic of this module's own (the DAG's `topic` parameter)."""
    topic = f"test-promotion-{uuid.uuid4().hex[:8]}"
    produce_tweets("generate", count=600, seed=73, settings=load_settings({**environment(), "TWEETS_TOPIC": topic}))
    return topic


@pytest.fixture
def airflow(human_in_the_loop_dag) -> AirflowClient:
    return human_in_the_loop_dag(DAG)


def waiting_for(registry, champion: str, challenger: str, f1: tuple[float, float]) -> dict:
    """`challenger` beat `champion` (F1 on the same 240 gold rows) and waits for approval."""
    client, name = registry
    client.set_registered_model_alias(name, "champion", champion)
    metrics = {"f1": f1[0], "precision": 0.61, "recall": 0.52}
    decision = classifier.promote_if_better(client, name, challenger, f1[1], "f1", lambda _: metrics,
                                            judged_on="gold", approval=True, compared_rows=240,
                                            new_metrics={"f1": f1[1], "precision": 0.83, "recall": 0.71})
    assert decision["awaiting_approval"] and not decision["promoted"]
    assert client.get_registered_model(name).aliases["champion"] == champion
    return decision


def request_of(client: AirflowClient, run_id: str) -> dict:
    return client.waiting_request(DAG, run_id, "approve", map_index=0, reading_seconds=READING_SECONDS)


def decided(airflow: AirflowClient, run_id: str, answer: str) -> dict[str, str]:
    """Answers the run's request as admin; the task states once the run is over."""
    airflow.respond(DAG, run_id, "approve", [answer], map_index=0)
    airflow.wait(DAG, run_id, timeout=600)
    return airflow.task_states(DAG, run_id)


def review_tags(client: MlflowClient, name: str, version: str) -> tuple[str, str, str]:
    tags = client.get_model_version(name, version).tags
    return tags["promotion.review"], tags["promotion.reviewed_by"], tags["promotion.reason"]


def test_an_approved_challenger_becomes_the_champion(registry, versions, live_topic, airflow):
    client, name = registry
    old, new = versions
    waiting_for(registry, old, new, (0.58, 0.77))

    run = airflow.trigger(DAG, {"model_version": 0, "topic": live_topic, "sample": 500})
    request = request_of(airflow, run)
    assert request["subject"] == f"Promote version {new} of {name} to champion?"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    body = request["body"]
    assert "| f1 | 0.580 | 0.770 |" in body and "| precision | 0.610 | 0.830 |" in body, body
    assert f"champion v{old}" in body and f"challenger v{new}" in body and "240 test tweets" in body
    assert f"**On the latest 500 live tweets** of `{live_topic}`" in body, body
    assert client.get_registered_model(name).aliases["champion"] == old, "nothing moves before the answer"

    states = decided(airflow, run, "Approve")
    assert states["promote"] == "success" and states["keep_champion"] == "skipped", states
    assert client.get_registered_model(name).aliases["champion"] == new
    assert review_tags(client, name, new) == ("approved", "admin", f"approved by admin, replacing version {old}")
    assert classifier.awaiting_approval(client, name, new) is None


def test_a_rejected_challenger_leaves_the_champion_in_place(registry, versions, live_topic, airflow):
    client, name = registry
    old, new = versions
    waiting_for(registry, new, old, (0.70, 0.74))  # the other way round: `old` now challenges `new`

    run = airflow.trigger(DAG, {"model_version": int(old), "topic": live_topic, "sample": 200})
    assert request_of(airflow, run)["subject"] == f"Promote version {old} of {name} to champion?"
    states = decided(airflow, run, "Reject")
    assert states["promote"] == "skipped" and states["keep_champion"] == "success", states
    assert client.get_registered_model(name).aliases["champion"] == new
    assert review_tags(client, name, old) == ("rejected", "admin", "rejected by admin")
    assert classifier.awaiting_approval(client, name, old) is None

    again = airflow.trigger(DAG, {"model_version": int(old), "topic": live_topic, "sample": 200})
    airflow.wait(DAG, again, timeout=600)
    assert airflow.task_states(DAG, again)["request"] == "success", "a decided version is not asked again"
    assert client.get_registered_model(name).aliases["champion"] == new
