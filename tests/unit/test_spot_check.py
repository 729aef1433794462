"""The spot-check's pure parts: the Wilson score interval, and what a task shows people."""

from __future__ import annotations

import pytest

from ai_tweets import spot_check


@pytest.mark.parametrize(("successes", "trials", "expected"), [
    (0, 10, (0.0, 0.2775)),  # all wrong: the interval still says "up to 28 %", not 0
    (10, 10, (0.7225, 1.0)),
    (5, 10, (0.2366, 0.7634)),
    (81, 100, (0.7222, 0.8749)),
])
def test_the_wilson_interval_of_known_proportions(successes, trials, expected):
    assert spot_check.wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-4)


def test_the_interval_narrows_with_labels_and_needs_some():
    few, many = spot_check.wilson_interval(8, 10), spot_check.wilson_interval(80, 100)
    assert few[1] - few[0] > many[1] - many[0] and few[0] < 0.8 < few[1]
    assert spot_check.wilson_interval(0, 0) is None


def test_a_task_shows_the_tweet_and_nothing_of_the_model():
    task = spot_check.task_payload(42, "A new LLM benchmark", "ml_news", ["https://arxiv.org/abs/1"])
    assert task.keys() == {"data"}, "no prediction: people judge the tweet unprimed"
    data = task["data"]
    assert (data["tweet_id"], data["author"], data["links"]) == ("42", "@ml_news", "https://arxiv.org/abs/1")
    assert spot_check._task_tweet(task) == 42
    assert spot_check._task_tweet({"data": {"tweet_id": "42", "split": "test"}}) is None, "an annotate task"
