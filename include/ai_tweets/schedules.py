"""The DAGs' schedules: Asset triggers, and timed runs unless AI_TWEETS_TIMED_SCHEDULES=off
(imported by the DAG files only)."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

from ai_tweets.settings import timed_schedules


def every(cron: str) -> CronTriggerTimetable | None:
    """A timed schedule in UTC, or none (manual runs only) while timed schedules are held."""
    return CronTriggerTimetable(cron, timezone="UTC") if timed_schedules() else None


def assets_or_every(cron: str, assets: Sequence[Asset]) -> AssetOrTimeSchedule | list[Asset]:
    """Runs on each event of `assets` and at `cron`; on the events only while timed schedules are held."""
    timetable = every(cron)
    return AssetOrTimeSchedule(timetable=timetable, assets=list(assets)) if timetable else list(assets)
