"""The one retry policy: delays doubling up to a cap, a waiting budget, fast failure on errors
that retrying cannot fix, and the caller's own error when the budget is spent."""

from __future__ import annotations

import pytest
from test_settings import load

from ai_tweets.retrying import Backoff, retry_call, service_wait
from stackbase.settings import SettingsError


class Down(Exception):
    pass


def _call(work, wait: Backoff):
    return retry_call(work, wait, retry_on=lambda exc: isinstance(exc, Down), what="a service",
                      give_up=lambda exc, attempts, waited: RuntimeError(f"gave up: {attempts} tries, {waited:.0f} s"))


def test_delays_double_up_to_the_cap_within_the_budget():
    sleeps: list[float] = []
    with pytest.raises(RuntimeError, match="gave up: 6 tries") as failure:
        _call(lambda: (_ for _ in ()).throw(Down("refused")), Backoff(budget=18, first=1, max_delay=4,
                                                                     sleep=sleeps.append))
    assert sleeps == [1, 2, 4, 4, 4], "the next 4 s would pass the 18 s budget"
    assert isinstance(failure.value.__cause__, Down), "the last error is kept as the cause"


def test_an_answer_after_a_few_tries_is_returned():
    answers = iter([Down("a"), Down("b"), 42])

    def work():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleeps: list[float] = []
    assert _call(work, Backoff(budget=60, sleep=sleeps.append)) == 42
    assert sleeps == [1, 2]


def test_an_error_retrying_cannot_fix_fails_at_once():
    sleeps: list[float] = []
    with pytest.raises(ZeroDivisionError):
        _call(lambda: 1 / 0, Backoff(budget=60, sleep=sleeps.append))
    assert sleeps == []


def test_a_zero_budget_tries_once():
    calls: list[int] = []

    def work():
        calls.append(1)
        raise Down("refused")

    with pytest.raises(RuntimeError, match="gave up: 1 tries"):
        _call(work, Backoff(budget=0))
    assert calls == [1]


def test_the_stage_wait_is_a_validated_setting():
    assert service_wait(load()).budget == 60
    assert service_wait(load(AI_TWEETS_SERVICE_WAIT_SECONDS="20")).budget == 20
    for bad in ("0", "ten", "-5"):
        with pytest.raises(SettingsError, match="AI_TWEETS_SERVICE_WAIT_SECONDS"):
            load(AI_TWEETS_SERVICE_WAIT_SECONDS=bad)
