"""How long the stream's own logs are kept: quarantined messages, the classify batch log, the
shadow scoring's records and recorded Kafka gaps are deleted once older than their retention
(0 keeps them for ever).

    table                 kept for                        column
    ingest_quarantine     QUARANTINE_RETENTION_DAYS (30)  quarantined_at
    stream_gaps           QUARANTINE_RETENTION_DAYS (30)  detected_at
    classify_batches      BATCH_LOG_RETENTION_DAYS (30)   finished_at
    shadow_batches        BATCH_LOG_RETENTION_DAYS (30)   finished_at
    shadow_disagreements  BATCH_LOG_RETENTION_DAYS (30)   recorded_at

Raw tables are datasets, one per version: they grow only while a capture runs and are kept
until the version is dropped by hand (`DROP TABLE raw_tweet_dataset_<v>`, and its splits).
`ai_tweets`, `tweet_urls` and `retweets` hold the product's results (and `retweets` guarantees
that a tweet is never retweeted twice): they are kept. The service_health DAG prunes every
15 minutes; `ai-tweets prune` does it by hand.
"""

from __future__ import annotations

from psycopg import sql

from ai_tweets.storage import connect, table_exists
from ai_tweets.tables import (
    BATCHES_TABLE,
    GAPS_TABLE,
    QUARANTINE_TABLE,
    SHADOW_BATCHES_TABLE,
    SHADOW_DISAGREEMENTS_TABLE,
    identifier,
)
from stackbase.settings import Settings


def retention(settings: Settings) -> list[tuple[str, str, int]]:
    """(table, timestamp column, days) of every pruned table."""

    return [(QUARANTINE_TABLE, "quarantined_at", settings.quarantine_retention_days),
            (GAPS_TABLE, "detected_at", settings.quarantine_retention_days),
            (BATCHES_TABLE, "finished_at", settings.batch_log_retention_days),
            (SHADOW_BATCHES_TABLE, "finished_at", settings.batch_log_retention_days),
            (SHADOW_DISAGREEMENTS_TABLE, "recorded_at", settings.batch_log_retention_days)]


def prune(settings: Settings | None = None) -> dict[str, int]:
    """Delete the rows older than their retention; rows deleted per table."""
    from stackbase.settings import load_settings

    settings = settings or load_settings()
    deleted = {}
    with connect(settings) as conn:
        for table, column, days in retention(settings):
            if days and table_exists(conn, table):
                deleted[table] = conn.execute(
                    sql.SQL("DELETE FROM {table} WHERE {column} < now() - make_interval(days => %s)").format(
                        table=identifier(table), column=sql.Identifier(column)), (days,)).rowcount
    return deleted
