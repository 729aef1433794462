"""The capture stage as plain functions: the CLI and the `capture_tweets` DAG call these."""

from __future__ import annotations

import threading
from pathlib import Path

from ai_tweets.kafka import produce
from ai_tweets.sources import open_source
from ai_tweets.storage import connect, count_quarantined, count_rows, ensure_raw_table
from ai_tweets.tables import raw_table_name
from stackbase.settings import Settings, SettingsError, load_settings


def produce_tweets(source: str = "generate", count: int | None = None, seconds: float | None = None,
                   file: str | Path | None = None, seed: int = 0, rate: float | None = None,
                   loop: bool = False, settings: Settings | None = None,
                   stop: threading.Event | None = None) -> dict:
    """Bounded (count or seconds) or unbounded capture from a source into the Kafka topic."""
    settings = settings or load_settings()
    count = count if count and count > 0 else None
    items = open_source(source, settings, file=Path(file) if file else None, loop=loop, count=count,
                        seed=seed, rate=rate, stop=stop)
    report = produce(items, settings, max_tweets=count, max_seconds=seconds or None, stop=stop)
    return {"source": source, "topic": settings.tweets_topic, "sent": report.sent,
            "delivered": report.delivered, "malformed_forwarded": report.malformed_forwarded,
            "seconds": round(report.seconds, 2), "tweets_per_second": round(report.rate)}


def replay_path(file: str, settings: Settings) -> Path:
    """The file a person asked to replay (from the Airflow form): a name or path that resolves,
    symlinks followed, to a file inside REPLAY_DIR. Anything else is refused with the rule, so
    that the form cannot send arbitrary files of the worker (`.env`, keys) into Kafka."""
    folder = settings.replay_folder.resolve()
    if not file.strip():
        raise SettingsError(f"the replay source needs a file: the name of a JSONL file in REPLAY_DIR ({folder})")
    path = Path(file.strip())
    resolved = (path if path.is_absolute() else folder / path).resolve()
    if not resolved.is_relative_to(folder):
        raise SettingsError(f"file {file!r} is outside REPLAY_DIR ({folder}): the Airflow form replays only "
                            f"files in that folder; copy the file there (`make demo FILE=…` does) and give its name")
    if not resolved.is_file():
        raise SettingsError(f"file {file!r} is not a file in REPLAY_DIR ({folder})")
    return resolved


def produce_requested(source: str = "generate", count: int | None = None, seconds: float | None = None,
                      file: str = "", seed: int = 0) -> dict:
    """`produce_tweets` for a run a person requested (the `capture_tweets` DAG's form): a replay
    file only from REPLAY_DIR."""
    settings = load_settings()
    path = replay_path(file, settings) if source == "replay" else None
    return produce_tweets(source, count=count, seconds=seconds, file=path, seed=seed, settings=settings)


def raw_table_report(raw_table_prefix: str | None = None, dataset_version: int | str | None = None) -> dict:
    """Row counts of a version's raw table and its quarantined messages."""
    settings = load_settings(raw_table_prefix=raw_table_prefix, dataset_version=dataset_version)
    table = raw_table_name(settings)
    with connect(settings) as conn:
        ensure_raw_table(conn, table)
        return {"table": table, "raw_table_prefix": settings.raw_table_prefix,
                "dataset_version": settings.dataset_version,
                "rows": count_rows(conn, table), "quarantined": count_quarantined(conn, table)}
