"""The one Kafka → Postgres stream skeleton of the ingest and classify jobs.

Both jobs read the tweets topic with Spark Structured Streaming and write each micro-batch to
Postgres; what differs is a `StreamJob`: how one message becomes an item, what is done to the
items of a Kafka partition before writing (scoring), what is written, and what happens once
the write is committed (retweets). Everything else is here, once:

- options, the checkpoint and the Kafka source (`start_stream`);
- per-message isolation (`parse_messages`): any exception while parsing, validating or
  converting one message sends that message to `ingest_quarantine` with its bytes, Kafka
  partition, offset and the reason, and the batch goes on. A job's `prepare` may reject
  single items the same way (a text the model server refuses);
- the partition writer (`write_partition`, run by `mapInArrow` in Spark's Python workers):
  one transaction per Kafka partition of a micro-batch, run again from the start if
  PostgreSQL goes away, with statement and lock timeouts (`storage.connect`);
- batch statistics, summed on the driver and handed to the job (`run_batch`);
- data loss on the Kafka side (`check_data_loss`): offsets that expired while the job was
  down are found at start, by comparing the checkpoint with the topic's earliest offsets.
  By default the job stops with an error that names the lost range; with
  `on_data_loss="record"` the range is recorded in `stream_gaps`, logged as an error, and the
  health check fails until it is a day old (the alert). While running, Spark's own
  `failOnDataLoss` stops the query if the data it is about to read is gone.

Exactly once: offsets are committed to the checkpoint only after a batch's writes are, and
every write is an idempotent upsert keyed by tweet id, so a batch replayed after a crash
changes nothing.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import psycopg
from psycopg import sql

from ai_tweets.schema import MalformedTweet, Tweet, parse_message
from ai_tweets.storage import QuarantinedMessage, connect, ensure_tables, in_transaction, write_quarantine
from ai_tweets.tables import GAPS_TABLE, identifier
from stackbase.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P")

MAX_REASON_CHARS = 500
DataLossPolicy = Literal["fail", "record"]


@dataclass(frozen=True)
class StreamOptions:
    available_now: bool = False  # bounded run: process what is in the topic, then stop
    trigger_seconds: float = 2.0
    max_offsets_per_trigger: int = 200_000
    starting_offsets: str = "earliest"
    checkpoint_dir: Path | None = None
    on_data_loss: DataLossPolicy = "fail"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None = None  # when Kafka received it (the producer's clock)

    def quarantined(self, reason: str) -> QuarantinedMessage:
        """This message set aside; the reason made storable (it may quote the message)."""
        storable = reason[:MAX_REASON_CHARS].encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        return QuarantinedMessage(self.topic, self.partition, self.offset, self.key, self.value, storable)


def reason_of(exc: BaseException) -> str:
    """The stored reason: a malformed tweet's own words, else the exception's type and text."""
    if isinstance(exc, MalformedTweet):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def parse_messages(messages: Sequence[Message], convert: Callable[[Tweet, Message], T]
                   ) -> tuple[dict[int, T], list[QuarantinedMessage]]:
    """Items by tweet id (the first of duplicates within the batch) and the quarantined rest.

    Per-message isolation: whatever one message raises while it is parsed, validated or
    converted, only that message is set aside, with the reason."""
    items: dict[int, T] = {}
    bad: list[QuarantinedMessage] = []
    for message in messages:
        try:
            tweet = parse_message(message.value)
            if tweet.id not in items:
                items[tweet.id] = convert(tweet, message)
        except Exception as exc:  # any failure of one message quarantines it, nothing else
            bad.append(message.quarantined(reason_of(exc)))
    return items, bad


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


@dataclass(frozen=True)
class Prepared(Generic[P]):
    """What a job's `prepare` made of a partition's items, and the items it set aside."""

    value: P
    rejected: list[QuarantinedMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Written:
    """What a job's `write` did in the transaction: integer statistics, and what its
    `after_commit` gets once the transaction is committed."""

    statistics: dict[str, int]
    after_commit: Any = None
    tags: frozenset[str] = frozenset()  # distinct labels of the batch (classify: the model versions)


@dataclass(frozen=True)
class StreamJob(Generic[T, P]):
    """One streaming job over the tweets topic.

    convert       one parsed tweet and its message → an item; any exception quarantines it
    prepare       all items of a Kafka partition → Prepared, outside the transaction (scoring)
    write         in the partition's transaction: upserts → Written (idempotent: may run again)
    after_commit  side effects once the partition is committed (retweets); must not raise
    statistics    the names of the integer statistics `write` returns, summed per batch
    on_batch      on the driver, once the batch is written: its statistics (a batch log)
    """

    name: str
    target: str
    convert: Callable[[Tweet, Message], T]
    prepare: Callable[[list[T]], Prepared[P]]
    write: Callable[[psycopg.Connection, P], Written]
    statistics: tuple[str, ...] = ()
    after_commit: Callable[[Any], None] | None = None
    on_batch: Callable[[BatchStats], None] | None = None


@dataclass(frozen=True)
class BatchStats:
    batch_id: int
    messages: int
    quarantined: int
    statistics: dict[str, int]
    tags: tuple[str, ...]
    max_lag_ms: int  # the oldest message of the batch: Kafka timestamp → written
    seconds: float


def _messages(batch) -> list[Message]:
    columns = batch.to_pydict()
    timestamps = columns.get("timestamp") or [None] * batch.num_rows
    return [Message(*fields) for fields in zip(columns["topic"], columns["partition"], columns["offset"],
                                               columns["key"], columns["value"], timestamps, strict=True)]


def write_partition(batches: Iterator, settings: Settings, job: StreamJob) -> Iterator:
    """mapInArrow body, run in Spark's Python workers: one Kafka partition of a micro-batch,
    parsed message by message, prepared, then written in one transaction; partitions of a
    batch are written in parallel. Yields one row of statistics."""
    import pyarrow as pa

    with _without_cyclic_gc():
        messages = [message for batch in batches for message in _messages(batch)]
        items, bad = parse_messages(messages, job.convert)
        prepared = job.prepare(list(items.values()))
    quarantined = [*bad, *prepared.rejected]

    def transaction(conn: psycopg.Connection) -> Written:
        written = job.write(conn, prepared.value)
        write_quarantine(conn, job.target, quarantined)
        return written

    written = in_transaction(settings, transaction, f"writing to {job.target}")
    if job.after_commit is not None:
        job.after_commit(written.after_commit)
    now_ms = time.time() * 1000
    lag = max((now_ms - m.timestamp.timestamp() * 1000 for m in messages if m.timestamp is not None), default=0)
    yield pa.RecordBatch.from_pydict({
        # in the order of run_batch's schema
        "tags": [",".join(sorted(written.tags))], "messages": [len(messages)], "quarantined": [len(quarantined)],
        "max_lag_ms": [int(lag)],
        **{name: [int(written.statistics.get(name, 0))] for name in job.statistics}})


def run_batch(batch_df, batch_id: int, settings: Settings, job: StreamJob) -> BatchStats:
    """foreachBatch body: each Kafka partition written by a Python worker; the statistics summed."""
    began = time.monotonic()
    schema = ", ".join(["tags string", *(f"{name} long" for name in ("messages", "quarantined", "max_lag_ms",
                                                                     *job.statistics))])
    rows = (batch_df.select("topic", "partition", "offset", "key", "value", "timestamp")
            .mapInArrow(lambda batches: write_partition(batches, settings, job), schema)
            .collect())
    stats = BatchStats(batch_id, sum(r.messages for r in rows), sum(r.quarantined for r in rows),
                       {name: sum(r[name] for r in rows) for name in job.statistics},
                       tuple(sorted({tag for r in rows for tag in r.tags.split(",") if tag})),
                       max((r.max_lag_ms for r in rows), default=0), time.monotonic() - began)
    if job.on_batch is not None:
        job.on_batch(stats)
    log.info("%s batch %d: %d messages, %d quarantined, %s, %.2f s", job.name, batch_id, stats.messages,
             stats.quarantined, ", ".join(f"{k} {v}" for k, v in stats.statistics.items()) or "-", stats.seconds)
    return stats


# --- checkpoints and data loss ---------------------------------------------------------------


def checkpoint_offsets(checkpoint: Path, topic: str) -> dict[int, int] | None:
    """The next offset to read per partition, from the checkpoint: the end of the last
    committed batch (a planned but uncommitted batch is run again from there). None if no
    batch was committed yet."""
    commits = [int(p.name) for p in (checkpoint / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        return None
    offsets_file = checkpoint / "offsets" / str(max(commits))
    try:
        offsets = json.loads(offsets_file.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return {int(p): int(o) for p, o in (offsets.get(topic) or {}).items()}


@dataclass(frozen=True)
class LostRange:
    topic: str
    partition: int
    first: int  # first offset lost
    last: int  # last offset lost

    def __str__(self) -> str:
        return f"{self.topic} partition {self.partition}: offsets {self.first}–{self.last} ({self.count:,} messages)"

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class DataLoss(RuntimeError):
    """Messages the job had not read yet are gone from Kafka (retention ran out while it was down)."""


def lost_ranges(next_offsets: dict[int, int] | None, watermarks: dict[int, tuple[int, int]],
                topic: str) -> list[LostRange]:
    """Offsets the checkpoint still has to read but Kafka no longer holds."""
    if not next_offsets:
        return []
    return [LostRange(topic, partition, next_offsets[partition], low - 1)
            for partition, (low, _high) in sorted(watermarks.items())
            if partition in next_offsets and low > next_offsets[partition]]


def waiting_messages(next_offsets: dict[int, int] | None, watermarks: dict[int, tuple[int, int]]) -> int:
    """Messages in the topic that the checkpoint has not read yet."""
    return sum(max(0, high - max(low, (next_offsets or {}).get(partition, low)))
               for partition, (low, high) in watermarks.items())


def ensure_gaps_table(conn: psycopg.Connection) -> None:
    ensure_tables(conn, GAPS_TABLE)


def check_data_loss(settings: Settings, name: str, checkpoint: Path, policy: DataLossPolicy) -> list[LostRange]:
    """Stop (DataLoss naming the ranges) or record them, per `policy`; [] when nothing was lost."""
    from ai_tweets.kafka import watermarks

    lost = lost_ranges(checkpoint_offsets(checkpoint, settings.tweets_topic),
                       watermarks(settings, settings.tweets_topic), settings.tweets_topic)
    if not lost:
        return []
    ranges = "; ".join(map(str, lost))
    if policy == "fail":
        raise DataLoss(
            f"{name}: messages expired from Kafka before this job read them: {ranges}. They are lost "
            f"(Kafka's retention ran out while the job was down). To go on without them and record the "
            f"gap in {GAPS_TABLE}, run the job once with --on-data-loss record.")
    with connect(settings) as conn:
        ensure_gaps_table(conn)
        conn.cursor().executemany(sql.SQL(
            "INSERT INTO {table} (query_name, topic, kafka_partition, first_offset, last_offset) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING").format(table=identifier(GAPS_TABLE)),
            [(name, r.topic, r.partition, r.first, r.last) for r in lost])
    log.error("%s: messages expired from Kafka before this job read them, recorded in %s and skipped: %s",
              name, GAPS_TABLE, ranges)
    return lost


def start_stream(spark, settings: Settings, job: StreamJob, checkpoint: Path, options: StreamOptions):
    """Start the checkpointed query of `job` over the tweets topic (returns it)."""
    from ai_tweets.kafka import spark_options

    lost = check_data_loss(settings, job.name, checkpoint, options.on_data_loss)
    stream = (
        spark.readStream.format("kafka")
        .options(**spark_options(settings))
        .option("subscribe", settings.tweets_topic)
        .option("startingOffsets", options.starting_offsets)
        .option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
        # A recorded gap is skipped; otherwise data the query is about to read and cannot stops it.
        .option("failOnDataLoss", "false" if lost else "true")
        .load()
    )
    writer = (stream.writeStream.queryName(job.name).option("checkpointLocation", str(checkpoint))
              .foreachBatch(lambda df, batch_id: run_batch(df, batch_id, settings, job)))
    writer = (writer.trigger(availableNow=True) if options.available_now
              else writer.trigger(processingTime=f"{options.trigger_seconds} seconds"))
    return writer.start()
