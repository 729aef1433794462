"""The one retry policy for waiting on a service (PostgreSQL, Kafka, Label Studio, model
serving): delays doubling from `first` up to `max_delay`, for at most `budget` seconds of
waiting (the attempts themselves not counted), then a clear error that names the service. Built on tenacity.

A stage (an Airflow task, a CLI command) waits `Settings.service_wait_seconds`
(AI_TWEETS_SERVICE_WAIT_SECONDS, default 60) and then fails, so that the outage shows in
Airflow and the task's own retries (`dag_support.retrying`) take over. The stream jobs ride
out longer outages with the same policy and a longer budget. X's filtered stream keeps the
reconnect schedule X documents (`x_api.BackoffPolicy`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from stackbase.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long the stream jobs (ingest, classify) ride out an outage of PostgreSQL or model serving
# before a micro-batch fails (and the job restarts from its checkpoint).
STREAM_WAIT_SECONDS = 900


@dataclass(frozen=True)
class Backoff:
    """Wait at most `budget` seconds in all; delays double from `first` up to `max_delay`."""

    budget: float = 60.0
    first: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)


def service_wait(settings: Settings, budget: float | None = None) -> Backoff:
    """The one retry policy with this stack's wait: a stage waits AI_TWEETS_SERVICE_WAIT_SECONDS
    for a service, then fails and Airflow's retries take over."""
    return Backoff(budget=settings.service_wait_seconds if budget is None else budget)


def retry_call(work: Callable[[], T], policy: Backoff, *, retry_on: Callable[[BaseException], bool],
               what: str, give_up: Callable[[BaseException, int, float], BaseException]) -> T:
    """`work()`, tried again while `retry_on(error)` holds and the budget lasts. When it is
    spent, raises `give_up(last error, attempts, seconds waited)` from the last error. Errors
    for which `retry_on` is false propagate at once (a deterministic error fails fast)."""
    began = time.monotonic()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s: %s (attempt %d), retrying in %.1f s", what, _short(error), state.attempt_number,
                    state.upcoming_sleep)

    def stop(state: RetryCallState) -> bool:
        # Give up when the next wait would take the waiting so far past the budget.
        return state.idle_for + wait(state) > policy.budget

    wait = wait_exponential(multiplier=policy.first, min=policy.first, max=policy.max_delay)
    retrying = Retrying(stop=stop, wait=wait, retry=retry_if_exception(retry_on), sleep=policy.sleep,
                        before_sleep=before_sleep, reraise=True)
    attempts = 0
    try:
        for attempt in retrying:
            attempts = attempt.retry_state.attempt_number
            with attempt:
                return work()
    except BaseException as exc:
        if retry_on(exc):
            raise give_up(exc, attempts, time.monotonic() - began) from exc
        raise
    raise AssertionError("unreachable")


def _short(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
