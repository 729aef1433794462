"""The pure parts of the annotate stage: uncertainty ordering, task payloads, annotations → gold,
and the retrying transport of the Label Studio client (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from ai_tweets.annotation import (
    CHOICES,
    LABELS,
    Candidate,
    LabelStudioUnavailable,
    RetryingTransport,
    annotation_label,
    gold_from_annotations,
    most_disagreed,
    most_uncertain,
    task_payload,
    uncertainty,
)
from ai_tweets.retrying import Backoff
from ai_tweets.tables import ABSTAIN, AI, NOT_AI


def candidate(tweet_id: int, weak_label: int | None = AI, weak_prob: float | None = 0.6, **extra) -> Candidate:
    fields = {"split": "dev", "text": f"tweet {tweet_id}", "author_handle": "ml_news", "hashtags": ["AI", "ML"],
              "urls": [{"url": "https://t.co/x", "expanded_url": "https://arxiv.org/abs/2004.01234"}]}
    return Candidate(tweet_id=tweet_id, weak_label=weak_label, weak_prob=weak_prob, **{**fields, **extra})


def region(choice: str, from_name: str = "label") -> dict:
    return {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": [choice]}}


def annotation(id_: int, choice: str | None, updated_at: str, cancelled: bool = False, who: int = 1) -> dict:
    return {"id": id_, "result": [region(choice)] if choice else [], "was_cancelled": cancelled,
            "completed_by": who, "updated_at": updated_at, "created_at": "2026-01-01T00:00:00Z"}


def test_label_mapping_is_a_bijection_on_ai_and_not_ai():
    assert CHOICES == {AI: "AI", NOT_AI: "Not AI"}
    assert {LABELS[choice]: choice for choice in LABELS} == CHOICES


def test_uncertainty_peaks_at_one_half():
    assert uncertainty(0.5) == 1.0
    assert uncertainty(0.0) == uncertainty(1.0) == 0.0
    assert uncertainty(0.4) == pytest.approx(uncertainty(0.6)) == pytest.approx(0.8)
    assert uncertainty(None) == 0.0


def test_most_uncertain_orders_by_distance_to_one_half_then_tweet_id():
    items = [candidate(i) for i in range(1, 7)]
    probabilities = [0.9, 0.51, 0.45, 0.55, 0.02, 0.49]
    chosen = most_uncertain(items, probabilities, 4)
    assert [(c.tweet_id, p) for c, p in chosen] == [(2, 0.51), (6, 0.49), (3, 0.45), (4, 0.55)]
    assert most_uncertain(items, probabilities, 0) == []


def test_most_disagreed_puts_different_labels_first_then_the_most_apart():
    items = [candidate(i) for i in range(1, 7)]
    first = [0.90, 0.60, 0.30, 0.80, 0.55, 0.10]  # labels at 0.5: 1 1 0 1 1 0
    second = [0.85, 0.20, 0.35, 0.10, None, 0.45]  # labels at 0.4: 1 0 0 0 - 1
    picks = most_disagreed(items, first, 0.5, second, 0.4)
    assert [p.candidate.tweet_id for p in picks] == [4, 2, 6, 1, 3, 5], \
        "4, 2 and 6 labeled differently (0.70, 0.40, 0.35 apart); 1 and 3 agree; 5 has no second score"
    assert [p.disagreement for p in picks] == pytest.approx([0.70, 0.40, 0.35, 0.05, 0.05, None])
    assert (picks[0].probability, picks[0].threshold) == (0.80, 0.5), "the first judge's probability is shown"
    assert task_payload(picks[0].candidate, picks[0].probability, "v", picks[0].model_probability,
                        picks[0].threshold, picks[0].disagreement)["predictions"][0]["score"] == pytest.approx(0.7)


def test_task_payload_carries_the_tweet_and_the_weak_label_as_prediction():
    task = task_payload(candidate(7, weak_label=NOT_AI, weak_prob=0.4), 0.4, "label-model-v3")
    data = task["data"]
    assert data["tweet_id"] == "7" and data["split"] == "dev" and data["text"] == "tweet 7"
    assert data["author"] == "@ml_news"
    assert data["urls"] == ["https://arxiv.org/abs/2004.01234"] and data["links"] == "https://arxiv.org/abs/2004.01234"
    assert data["hashtags"] == "#AI #ML"
    assert data["weak_prob"] == 0.4 and data["weak"] == "Weak label: Not AI · P(AI) = 0.40"
    [prediction] = task["predictions"]
    assert prediction["model_version"] == "label-model-v3"
    assert prediction["score"] == pytest.approx(0.8)
    assert prediction["result"] == [region("Not AI")]


def test_task_payload_without_weak_label_links_or_hashtags():
    task = task_payload(candidate(8, weak_label=ABSTAIN, weak_prob=0.25, urls=[], hashtags=[], author_handle=None),
                        0.25, "label-model-v3", model_probability=0.7)
    assert task["predictions"][0]["result"] == []  # no pre-selected choice, but a score to sort by
    assert task["predictions"][0]["score"] == pytest.approx(0.5)
    assert task["data"]["links"] == "(no links)" and task["data"]["hashtags"] == "(no hashtags)"
    assert task["data"]["author"] == "(unknown author)"
    assert task["data"]["weak"].endswith("model P(AI) = 0.70")


def test_annotation_label_reads_the_label_choice_only():
    assert annotation_label({"result": [region("AI")]}) == AI
    assert annotation_label({"result": [region("Not AI")]}) == NOT_AI
    assert annotation_label({"result": [region("AI", from_name="other")]}) is None
    assert annotation_label({"result": [region("Maybe")]}) is None
    assert annotation_label({"result": []}) is None


def test_gold_is_the_latest_submitted_annotation():
    annotators = {1: "ann@example.org"}
    gold = gold_from_annotations([annotation(1, "AI", "2026-01-02T10:00:00Z"),
                                  annotation(2, "Not AI", "2026-01-03T10:00:00.123456Z", who=2)], annotators)
    assert gold.label == NOT_AI and gold.labeled_by == "2"
    assert gold.labeled_at == datetime(2026, 1, 3, 10, 0, 0, 123456, tzinfo=UTC)
    edited = gold_from_annotations([annotation(1, "AI", "2026-01-04T10:00:00Z"),
                                    annotation(2, "Not AI", "2026-01-03T10:00:00Z")], annotators)
    assert edited.label == AI and edited.labeled_by == "ann@example.org"


def test_skips_never_become_gold():
    assert gold_from_annotations([], {}) is None
    assert gold_from_annotations([annotation(1, None, "2026-01-02T10:00:00Z", cancelled=True)], {}) is None
    later_skip = gold_from_annotations([annotation(1, "AI", "2026-01-02T10:00:00Z"),
                                        annotation(2, None, "2026-01-05T10:00:00Z", cancelled=True)], {})
    assert later_skip.label == AI


class Script(httpx.BaseTransport):
    """Answers each request with the next step: an exception to raise or a status code."""

    def __init__(self, *steps):
        self.steps, self.requests = list(steps), []

    def handle_request(self, request):
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return httpx.Response(step, json={})


def client(script: Script, sleeps: list[float], attempts: int = 4) -> httpx.Client:
    """`attempts` tries: the waits between them (1 s doubling, at most 3 s) are the budget."""
    budget = sum(min(2.0**i, 3.0) for i in range(attempts - 1))
    wait = Backoff(budget=budget, first=1.0, max_delay=3.0, sleep=sleeps.append)
    return httpx.Client(transport=RetryingTransport("http://ls.test", wait, inner=script))


def test_transport_retries_with_exponential_backoff_until_label_studio_answers():
    sleeps: list[float] = []
    script = Script(httpx.ConnectError("refused"), 503, httpx.ConnectError("refused"), 200)
    assert client(script, sleeps).get("http://ls.test/api/projects").status_code == 200
    assert sleeps == [1.0, 2.0, 3.0]


def test_transport_gives_up_with_a_message_naming_the_url():
    sleeps: list[float] = []
    script = Script(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(LabelStudioUnavailable,
                       match=r"http://ls\.test is not answering .*make up SERVICES=label-studio"):
        client(script, sleeps, attempts=3).get("http://ls.test/api/projects")
    assert len(script.requests) == 3 and sleeps == [1.0, 2.0]


def test_transport_names_the_token_when_refused():
    script = Script(401, 401)
    with pytest.raises(LabelStudioUnavailable, match="refused LABEL_STUDIO_API_KEY"):
        client(script, [], attempts=2).get("http://ls.test/api/projects")


def test_transport_never_repeats_a_post_that_may_have_arrived():
    script = Script(httpx.ReadTimeout("slow"), 200)
    with pytest.raises(LabelStudioUnavailable):
        client(script, []).post("http://ls.test/api/projects/1/import", json=[])
    assert len(script.requests) == 1
    assert client(Script(httpx.ConnectError("refused"), 201), []).post("http://ls.test/x").status_code == 201


def test_the_dag_emits_gold_labels_only_when_gold_labels_arrived():
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException

    from ai_tweets.assets import GOLD_LABELS

    dag = runpy.run_path(str(Path(__file__).parents[2] / "dags" / "annotate.py"))["annotate"]()
    announce = dag.get_task("announce").python_callable
    events = {GOLD_LABELS: SimpleNamespace(extra={})}
    with pytest.raises(AirflowSkipException):
        announce({"dataset_version": 3, "new": 0, "changed": 0}, outlet_events=events)
    announce({"dataset_version": 3, "new": 2, "changed": 1, "unchanged": 5}, outlet_events=events)
    assert events[GOLD_LABELS].extra == {"dataset_version": 3, "new": 2, "changed": 1}
    assert dag.get_task("announce").outlets == [GOLD_LABELS]
    assert dag.get_task("push").upstream_task_ids >= {"pull"}


def test_only_the_listed_annotators_make_gold_labels():
    people = {1: "ann@example.org", 2: "mallory@example.org"}
    mallory_later = [annotation(1, "AI", "2026-01-02T10:00:00Z", who=1),
                     annotation(2, "Not AI", "2026-01-03T10:00:00Z", who=2)]
    assert gold_from_annotations(mallory_later, people).labeled_by == "mallory@example.org"  # no list: anyone
    listed = gold_from_annotations(mallory_later, people, {"ann@example.org"})
    assert (listed.label, listed.labeled_by) == (1, "ann@example.org")
    assert gold_from_annotations(mallory_later[1:], people, {"ann@example.org"}) is None
