"""Capture, second half: Kafka topic `tweets` → Spark Structured Streaming → raw table.

Exactly once: Spark checkpoints the Kafka offsets of each micro-batch, and each batch is
written with an idempotent upsert (primary key tweet_id), so a batch replayed after a
crash changes nothing. Messages that are not valid tweets go to the quarantine table with
their bytes, partition, offset and reason; the query never stops for them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ai_tweets.schema import MalformedTweet, Tweet, parse_message
from ai_tweets.settings import Settings
from ai_tweets.spark import start_kafka_query
from ai_tweets.storage import (
    RAW_COLUMNS,
    QuarantinedMessage,
    connect,
    copy_upsert,
    ensure_raw_table,
    in_transaction,
    write_quarantine,
)
from ai_tweets.tables import raw_table_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    available_now: bool = False  # bounded run: process what is in the topic, then stop
    trigger_seconds: float = 2.0
    max_offsets_per_trigger: int = 200_000
    starting_offsets: str = "earliest"
    checkpoint_dir: Path | None = None


@dataclass
class BatchReport:
    batch_id: int
    messages: int
    inserted: int
    quarantined: int
    seconds: float


def _raw_row(tweet: Tweet, message: str, partition: int, offset: int) -> tuple:
    urls = json.dumps([{"url": u.url, "expanded_url": u.expanded_url, "display_url": u.display_url}
                       for u in tweet.urls], ensure_ascii=False)
    return (tweet.id, tweet.text, tweet.created_at, tweet.author_id, tweet.author_handle, tweet.lang,
            tweet.is_retweet, tweet.is_reply, list(tweet.hashtags), list(tweet.mentions), urls,
            message, partition, offset)


def validate_messages(topic: Sequence[str], partitions: Sequence[int], offsets: Sequence[int],
                      keys: Sequence[bytes | None], values: Sequence[bytes | None],
                      ) -> tuple[dict[int, tuple], list[QuarantinedMessage]]:
    """Raw-table rows by tweet id (the first of duplicates within the batch) and quarantined
    messages with their reasons. Each parsed tweet is dropped as soon as its row exists, so a
    large batch holds strings, not a tree of dicts per tweet."""
    rows: dict[int, tuple] = {}
    bad: list[QuarantinedMessage] = []
    for index, value in enumerate(values):
        try:
            tweet = parse_message(value)
        except MalformedTweet as exc:
            bad.append(QuarantinedMessage(topic[index], partitions[index], offsets[index],
                                          keys[index], value, exc.reason))
            continue
        if tweet.id not in rows:
            message = value.decode() if isinstance(value, bytes) else value
            rows[tweet.id] = _raw_row(tweet, message, partitions[index], offsets[index])
    return rows, bad


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Parsed tweets hold no reference cycles; the cyclic collector only rescans the batch's
    objects again and again (it tripled the time of a 50,000-message partition)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_messages(conn, table: str, topic: Sequence[str], partitions: Sequence[int],
                   offsets: Sequence[int], keys: Sequence[bytes | None],
                   values: Sequence[bytes | None]) -> tuple[int, int]:
    """Write Kafka messages on `conn`: (rows inserted, messages quarantined). Idempotent."""
    with _without_cyclic_gc():
        rows, bad = validate_messages(topic, partitions, offsets, keys, values)
        inserted = copy_upsert(conn, table, RAW_COLUMNS, rows.values(), ("tweet_id",))
    write_quarantine(conn, table, bad)
    return inserted, len(bad)


BATCH_STATS_SCHEMA = "messages long, inserted long, quarantined long"


def write_partition(batches: Iterator, settings: Settings, table: str) -> Iterator:
    """mapInArrow body, run in Spark's Python workers: one partition of a micro-batch in one
    transaction, so the partitions of a batch are written in parallel."""
    import pyarrow as pa

    batches = list(batches)  # kept, so that a write PostgreSQL broke off can run again

    def write(conn) -> tuple[int, int, int]:
        messages = inserted = quarantined = 0
        for batch in batches:
            columns = batch.to_pydict()
            new, bad = write_messages(conn, table, columns["topic"], columns["partition"],
                                      columns["offset"], columns["key"], columns["value"])
            messages += batch.num_rows
            inserted += new
            quarantined += bad
        return messages, inserted, quarantined

    messages, inserted, quarantined = in_transaction(settings, write, f"writing to {table}")
    yield pa.RecordBatch.from_pydict({"messages": [messages], "inserted": [inserted],
                                      "quarantined": [quarantined]})


def process_batch(batch_df, batch_id: int, settings: Settings, table: str) -> BatchReport:
    """foreachBatch body: validate and COPY each Kafka partition in a Python worker."""
    began = time.monotonic()
    stats = (batch_df.select("topic", "partition", "offset", "key", "value")
             .mapInArrow(lambda batches: write_partition(batches, settings, table), BATCH_STATS_SCHEMA)
             .groupBy().sum().collect()[0])
    messages, inserted, quarantined = (int(value or 0) for value in stats)
    report = BatchReport(batch_id, messages, inserted, quarantined, time.monotonic() - began)
    log.info("batch %d: %d messages, %d new rows in %s, %d quarantined, %.2f s", batch_id,
             messages, inserted, table, quarantined, report.seconds)
    return report


def checkpoint_dir(settings: Settings, options: IngestOptions) -> Path:
    return options.checkpoint_dir or settings.data_dir / "checkpoints" / "ingest" / raw_table_name(settings)


def start_ingest(spark, settings: Settings, options: IngestOptions):
    """Start the streaming query (returns it); the caller awaits or stops it."""
    table = raw_table_name(settings)
    with connect(settings) as conn:
        ensure_raw_table(conn, table)
    query = start_kafka_query(
        spark, settings, name=f"ingest_{table}", checkpoint=checkpoint_dir(settings, options),
        starting_offsets=options.starting_offsets, max_offsets=options.max_offsets_per_trigger,
        available_now=options.available_now, trigger_seconds=options.trigger_seconds,
        on_batch=lambda df, batch_id: process_batch(df, batch_id, settings, table))
    log.info("ingest: topic %s → %s (%s)", settings.tweets_topic, table,
             "available now" if options.available_now else f"every {options.trigger_seconds} s")
    return query
