"""Capture, second half: Kafka topic `tweets` → Spark Structured Streaming → raw table.

A `StreamJob` of the shared skeleton (`ai_tweets.stream`): each message becomes a raw-table
row, or goes to the quarantine with its bytes, partition, offset and reason; each Kafka
partition of a micro-batch is written with COPY and `INSERT … ON CONFLICT (tweet_id) DO
NOTHING`, so a batch replayed after a crash changes nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psycopg

from ai_tweets.schema import Tweet
from ai_tweets.spark import run_job
from ai_tweets.storage import connect, copy_upsert, ensure_raw_table
from ai_tweets.stream import Message, Prepared, StreamJob, StreamOptions, Written, start_stream
from ai_tweets.tables import RAW_COLUMNS, raw_table_name
from stackbase.settings import Settings, load_settings

log = logging.getLogger(__name__)

IngestOptions = StreamOptions


def raw_row(tweet: Tweet, message: Message) -> tuple:
    """The raw-table row of one message (RAW_COLUMNS order); the payload column keeps the
    message as it came."""
    urls = json.dumps([{"url": u.url, "expanded_url": u.expanded_url, "display_url": u.display_url}
                       for u in tweet.urls], ensure_ascii=False)
    payload = message.value.decode() if isinstance(message.value, bytes) else message.value
    values = {"tweet_id": tweet.id, "text": tweet.text, "created_at": tweet.created_at, "author_id": tweet.author_id,
              "author_handle": tweet.author_handle, "lang": tweet.lang, "is_retweet": tweet.is_retweet,
              "is_reply": tweet.is_reply, "hashtags": list(tweet.hashtags), "mentions": list(tweet.mentions),
              "urls": urls, "tweet": payload, "kafka_partition": message.partition, "kafka_offset": message.offset}
    return tuple(values[column] for column in RAW_COLUMNS)


def ingest_job(table: str) -> StreamJob:
    """Raw rows of the tweets topic → `table`; statistic `inserted` (rows that were new)."""

    def write(conn: psycopg.Connection, rows: list[tuple]) -> Written:
        return Written({"inserted": copy_upsert(conn, table, RAW_COLUMNS, rows, ("tweet_id",))})

    return StreamJob(name=f"ingest_{table}", target=table, convert=raw_row, prepare=Prepared,
                     write=write, statistics=("inserted",))


def checkpoint_dir(settings: Settings, options: StreamOptions) -> Path:
    return options.checkpoint_dir or settings.data_dir / "checkpoints" / "ingest" / raw_table_name(settings)


def start_ingest(spark, settings: Settings, options: StreamOptions):
    """Start the streaming query (returns it); the caller awaits or stops it."""
    table = raw_table_name(settings)
    with connect(settings) as conn:
        ensure_raw_table(conn, table)
    query = start_stream(spark, settings, ingest_job(table), checkpoint_dir(settings, options), options)
    log.info("ingest: topic %s → %s (%s)", settings.tweets_topic, table,
             "available now" if options.available_now else f"every {options.trigger_seconds} s")
    return query


def ingest_available_now(raw_table_prefix: str, dataset_version: int) -> None:
    """The capture DAG's ingest: what the topic holds now → the raw table of this prefix and
    version, by the Spark job `spark_jobs/ingest.py`, submitted as every Spark job is."""
    run_job("ingest", ["--available-now", f"--raw-table-prefix={raw_table_prefix}",
                       f"--dataset-version={dataset_version}"], load_settings())
