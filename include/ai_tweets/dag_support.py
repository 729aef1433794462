"""What the DAG files share (imported by them only): the options every DAG has, the dataset
params, schedules, the retry policy, stage functions as tasks that fail fast on deterministic
errors, and "the value from the triggering Asset event, else from params"."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from stackbase.errors import DeterministicError
from stackbase.settings import (
    DEFAULT_DATASET_VERSION,
    DEFAULT_RAW_TABLE_PREFIX,
    task_retry_seconds,
    timed_schedules,
)

START_DATE = datetime(2026, 1, 1)


def pipeline_dag(doc: str, *, tags: list[str], params: dict[str, Param] | None = None, retries: int = 2,
                 task_options: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """The `@dag(schedule=..., **pipeline_dag(__doc__, ...))` options of every DAG of the pipeline:
    no catch-up, one run at a time, the module's docstring as its doc, the one retry policy
    (`retrying`); `options` add or override."""
    return {"start_date": START_DATE, "catchup": False, "max_active_runs": 1,
            "doc_md": doc, "tags": tags, "params": params or {},
            "default_args": {**retrying(retries), **(task_options or {})}, **options}


def dataset_params(*, raw_table_prefix: bool = False) -> dict[str, Param]:
    """The params that say which dataset a run works on (defaults: the settings' defaults)."""
    params = {"dataset_version": Param(DEFAULT_DATASET_VERSION, type="integer", minimum=0)}
    if raw_table_prefix:
        params = {"raw_table_prefix": Param(DEFAULT_RAW_TABLE_PREFIX, type="string", pattern="^[a-z_][a-z0-9_]*$"),
                  **params}
    return params


def every(cron: str) -> CronTriggerTimetable | None:
    """A timed schedule in UTC, or none (manual runs only) while timed schedules are held."""
    return CronTriggerTimetable(cron, timezone="UTC") if timed_schedules() else None


def assets_or_every(cron: str, assets: Sequence[Asset]) -> AssetOrTimeSchedule | list[Asset]:
    """Runs on each event of `assets` and at `cron`; on the events only while timed schedules are held."""
    timetable = every(cron)
    return AssetOrTimeSchedule(timetable=timetable, assets=list(assets)) if timetable else list(assets)


def retrying(retries: int) -> dict[str, Any]:
    """The DAGs' one retry policy, as `default_args`: `retries` tries more after a failure, the
    first after AI_TWEETS_TASK_RETRY_SECONDS, each later one twice as long (with Airflow's
    jitter), never more than 10 minutes. Deterministic errors are not retried (`fails_fast`)."""
    return {"retries": retries, "retry_delay": timedelta(seconds=task_retry_seconds()),
            "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10)}


def fails_fast(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, whose deterministic errors (bad input or configuration, `DeterministicError`)
    fail the task at once instead of using up its retries; other errors are retried."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DeterministicError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return run


def stage_task(function: Callable[..., Any], **task_options: Any) -> Any:
    """A stage function as a TaskFlow task (`task(function, ...)`) that fails fast."""
    return task(fails_fast(function), **task_options)


def from_trigger(params: dict, triggering_asset_events: Any, *keys: str) -> dict[str, Any]:
    """`keys` (e.g. dataset_version) from the newest Asset event that started the run, else
    from the run's params (a manual run, or a timed one)."""
    events = [event for events in (triggering_asset_events or {}).values() for event in events]
    extra = events[-1].extra if events else {}
    return {key: extra.get(key, params[key]) for key in keys}
