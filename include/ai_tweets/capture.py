"""The capture stage as plain functions: the CLI and the `capture_tweets` DAG call these."""

from __future__ import annotations

import threading
from pathlib import Path

from ai_tweets.kafka import produce
from ai_tweets.settings import Settings, load_settings
from ai_tweets.sources import open_source
from ai_tweets.storage import connect, count_quarantined, count_rows, ensure_raw_table
from ai_tweets.tables import raw_table_name


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


def raw_table_report(raw_table_prefix: str | None = None, dataset_version: int | str | None = None) -> dict:
    """Row counts of a version's raw table and its quarantined messages."""
    settings = load_settings(raw_table_prefix=raw_table_prefix, dataset_version=dataset_version)
    table = raw_table_name(settings)
    with connect(settings) as conn:
        ensure_raw_table(conn, table)
        return {"table": table, "raw_table_prefix": settings.raw_table_prefix,
                "dataset_version": settings.dataset_version,
                "rows": count_rows(conn, table), "quarantined": count_quarantined(conn, table)}
