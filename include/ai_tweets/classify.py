"""Classify the live stream: Kafka topic `tweets` → batched calls to MLflow model serving →
`ai_tweets`, `tweet_urls` and per-batch metrics in Postgres → optional retweet.

Exactly once, like the ingest job: Spark checkpoints the offsets of each micro-batch and
every write is an idempotent upsert keyed by tweet id, so a replayed batch adds nothing.
Each Kafka partition of a micro-batch is handled in a Spark Python worker, which sends its
texts to the model server in batches (never one request per row), waiting and retrying
with backoff while the server is down or restarting on a new champion.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ai_tweets.schema import MalformedTweet, Tweet, parse_message
from ai_tweets.settings import Settings
from ai_tweets.spark import start_kafka_query
from ai_tweets.storage import (
    QuarantinedMessage,
    connect,
    copy_upsert,
    ensure_quarantine_table,
    in_transaction,
    lock_ddl,
    write_quarantine,
)
from ai_tweets.tables import identifier

log = logging.getLogger(__name__)

AI_TWEETS_TABLE = "ai_tweets"
TWEET_URLS_TABLE = "tweet_urls"
BATCHES_TABLE = "classify_batches"


class ServingUnavailable(RuntimeError):
    """The model server did not answer within the configured wait; the batch is not written
    (its offsets are not committed), so a restart processes it again."""


@dataclass(frozen=True)
class ClassifyOptions:
    available_now: bool = False
    trigger_seconds: float = 1.0
    max_offsets_per_trigger: int = 50_000
    starting_offsets: str = "earliest"
    checkpoint_dir: Path | None = None
    request_batch_size: int = 1_000  # texts per /invocations call
    concurrency: int = 2  # parallel calls per Spark partition
    timeout_seconds: float = 60.0
    max_wait_seconds: float = 900.0  # how long a batch waits for a server that is down
    retweet: bool = False  # dry-run unless X_RETWEET_DRY_RUN=false


@dataclass(frozen=True)
class Score:
    ai_probability: float
    label: int
    model_version: str | None


def ensure_tables(conn: psycopg.Connection) -> None:
    """The classify stage's tables (and the retweet decisions'), created before the workers run;
    idempotent, keyed by tweet id."""
    from ai_tweets.retweet import ensure_retweets_table

    lock_ddl(conn)
    conn.execute(sql.SQL("""
        CREATE TABLE IF NOT EXISTS {ai} (
            tweet_id       bigint PRIMARY KEY,
            text           text NOT NULL,
            author_id      text,
            author_handle  text,
            created_at     timestamptz NOT NULL,
            ai_probability real NOT NULL CHECK (ai_probability BETWEEN 0 AND 1),
            model_name     text NOT NULL,
            model_version  text,
            classified_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            produced_at    timestamptz,
            kafka_partition integer,
            kafka_offset   bigint
        )""").format(ai=identifier(AI_TWEETS_TABLE)))
    conn.execute(sql.SQL("""
        CREATE TABLE IF NOT EXISTS {urls} (
            tweet_id       bigint NOT NULL REFERENCES {ai} (tweet_id) ON DELETE CASCADE,
            canonical_url  text NOT NULL,
            url            text NOT NULL,
            expanded_url   text NOT NULL,
            domain         text,
            is_twitter     boolean NOT NULL,
            twitter_kind   text,
            PRIMARY KEY (tweet_id, canonical_url)
        )""").format(urls=identifier(TWEET_URLS_TABLE), ai=identifier(AI_TWEETS_TABLE)))
    conn.execute(sql.SQL("""
        CREATE TABLE IF NOT EXISTS {batches} (
            query_name     text NOT NULL,
            batch_id       bigint NOT NULL,
            rows_in        integer NOT NULL,
            ai_rows        integer NOT NULL,
            quarantined    integer NOT NULL,
            requests       integer NOT NULL,
            model_versions text[] NOT NULL,
            latency_ms     integer NOT NULL,
            max_produce_to_row_ms integer,
            finished_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (query_name, batch_id)
        )""").format(batches=identifier(BATCHES_TABLE)))
    ensure_quarantine_table(conn)
    ensure_retweets_table(conn)


# --- the model server -------------------------------------------------------------------


def _post(url: str, payload: bytes, timeout: float) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _scores(answer: dict, expected: int) -> list[Score]:
    predictions = answer.get("predictions", answer)
    if isinstance(predictions, dict):  # column orientation
        keys = list(predictions)
        predictions = [dict(zip(keys, values, strict=True)) for values in zip(*predictions.values(), strict=True)]
    if not isinstance(predictions, list) or len(predictions) != expected:
        raise ServingUnavailable(f"model server answered {str(answer)[:200]!r} for {expected} texts")
    return [Score(float(p["ai_probability"]), int(p.get("label", p["ai_probability"] >= 0.5)),
                  None if p.get("model_version") is None else str(p["model_version"])) for p in predictions]


def score_batch(texts: Sequence[str], options: ClassifyOptions, url: str, sleep=time.sleep) -> list[Score]:
    """One /invocations call for `texts`, retried with exponential backoff (1 s … 30 s) while the
    server is unreachable or answers 5xx, for at most `options.max_wait_seconds`."""
    payload = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()
    began, delay, attempt = time.monotonic(), 1.0, 0
    while True:
        attempt += 1
        try:
            return _scores(_post(url, payload, options.timeout_seconds), len(texts))
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise ServingUnavailable(f"model server at {url} refused the batch: HTTP {exc.code} "
                                         f"{exc.read()[:300]!r}") from exc
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        waited = time.monotonic() - began
        if waited + delay > options.max_wait_seconds:
            raise ServingUnavailable(f"model server at {url} not answering after {waited:.0f} s "
                                     f"and {attempt} attempts ({problem}); the batch will be retried "
                                     f"when the job restarts")
        log.warning("model server at %s: %s; retry %d in %.0f s", url, problem, attempt, delay)
        sleep(delay)
        delay = min(delay * 2, 30.0)


def score_texts(texts: Sequence[str], options: ClassifyOptions, url: str) -> list[Score]:
    """Scores in input order; batches of `request_batch_size`, `concurrency` calls at a time."""
    size = options.request_batch_size
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    if len(chunks) <= 1 or options.concurrency <= 1:
        return [score for chunk in chunks for score in score_batch(chunk, options, url)]
    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        return [score for result in pool.map(lambda c: score_batch(c, options, url), chunks) for score in result]


# --- writing a partition ------------------------------------------------------------------


@dataclass
class PartitionResult:
    rows_in: int = 0
    ai_rows: int = 0
    quarantined: int = 0
    requests: int = 0
    versions: tuple[str, ...] = ()
    max_produce_to_row_ms: int = 0


def classify_messages(conn: psycopg.Connection, settings: Settings, options: ClassifyOptions,
                      topic: Sequence[str], partitions: Sequence[int], offsets: Sequence[int],
                      keys: Sequence[bytes | None], values: Sequence[bytes | None],
                      timestamps: Sequence | None = None) -> PartitionResult:
    from ai_tweets.urls import extract_urls

    tweets: dict[int, tuple[Tweet, int, int, object]] = {}
    bad: list[QuarantinedMessage] = []
    for index, value in enumerate(values):
        try:
            tweet = parse_message(value)
        except MalformedTweet as exc:
            bad.append(QuarantinedMessage(topic[index], partitions[index], offsets[index], keys[index], value,
                                          exc.reason))
            continue
        tweets.setdefault(tweet.id, (tweet, partitions[index], offsets[index],
                                     timestamps[index] if timestamps else None))
    items = list(tweets.values())
    scores = score_texts([item[0].text for item in items], options, settings.model_serving_url)
    ai = [(item, score) for item, score in zip(items, scores, strict=True) if score.label == 1]
    ai_rows = [(t.id, t.text, t.author_id, t.author_handle, t.created_at, score.ai_probability,
                settings.model_name, score.model_version, produced, p, o) for (t, p, o, produced), score in ai]
    url_rows = [(t.id, u.canonical_url, u.url, u.expanded_url, u.domain, u.is_twitter, u.twitter_kind)
                for (t, _, _, _), _ in ai for u in extract_urls(t)]
    copy_upsert(conn, AI_TWEETS_TABLE, ("tweet_id", "text", "author_id", "author_handle", "created_at",
                                        "ai_probability", "model_name", "model_version", "produced_at",
                                        "kafka_partition", "kafka_offset"), ai_rows, ("tweet_id",))
    copy_upsert(conn, TWEET_URLS_TABLE, ("tweet_id", "canonical_url", "url", "expanded_url", "domain",
                                         "is_twitter", "twitter_kind"), url_rows, ("tweet_id", "canonical_url"))
    write_quarantine(conn, AI_TWEETS_TABLE, bad)
    if options.retweet and ai:
        _retweet(settings, [(t, score) for (t, _, _, _), score in ai])
    lag = 0
    if timestamps:
        now_ms = time.time() * 1000
        lag = int(max((now_ms - ts.timestamp() * 1000 for ts in timestamps if ts is not None), default=0))
    size = options.request_batch_size
    return PartitionResult(len(values), len(ai), len(bad), -(-len(items) // size) if items else 0,
                           tuple(sorted({s.model_version for s in scores if s.model_version})), lag)


def _retweet(settings: Settings, ai: list[tuple[Tweet, Score]]) -> None:
    """The business action on AI tweets with links: dry run unless X_RETWEET_DRY_RUN=false."""
    from ai_tweets.retweet import Candidate, Retweeter, RetweetPolicy
    from ai_tweets.settings import environment

    retweeter = Retweeter(settings, RetweetPolicy.from_env(environment()))
    retweeter.process([Candidate.from_tweet(tweet, score.ai_probability) for tweet, score in ai])


BATCH_STATS_SCHEMA = ("rows_in long, ai_rows long, quarantined long, requests long, versions string, "
                      "max_produce_to_row_ms long")


def classify_partition(batches: Iterator, settings: Settings, options: ClassifyOptions) -> Iterator:
    """mapInArrow body, run in Spark's Python workers: one Kafka partition of a micro-batch."""
    import pyarrow as pa

    batches = list(batches)  # kept, so that a write PostgreSQL broke off can run again

    def classify_all(conn) -> tuple[PartitionResult, set[str]]:
        total = PartitionResult()
        versions: set[str] = set()
        for batch in batches:
            columns = batch.to_pydict()
            result = classify_messages(conn, settings, options, columns["topic"], columns["partition"],
                                       columns["offset"], columns["key"], columns["value"],
                                       columns.get("timestamp"))
            total.rows_in += result.rows_in
            total.ai_rows += result.ai_rows
            total.quarantined += result.quarantined
            total.requests += result.requests
            total.max_produce_to_row_ms = max(total.max_produce_to_row_ms, result.max_produce_to_row_ms)
            versions.update(result.versions)
        return total, versions

    total, versions = in_transaction(settings, classify_all, f"writing to {AI_TWEETS_TABLE}")
    yield pa.RecordBatch.from_pydict({
        "rows_in": [total.rows_in], "ai_rows": [total.ai_rows], "quarantined": [total.quarantined],
        "requests": [total.requests], "versions": [",".join(sorted(versions))],
        "max_produce_to_row_ms": [total.max_produce_to_row_ms]})


def process_batch(batch_df, batch_id: int, settings: Settings, options: ClassifyOptions, query_name: str) -> dict:
    began = time.monotonic()
    rows = (batch_df.select("topic", "partition", "offset", "key", "value", "timestamp")
            .mapInArrow(lambda batches: classify_partition(batches, settings, options), BATCH_STATS_SCHEMA)
            .collect())
    stats = {"rows_in": sum(r.rows_in for r in rows), "ai_rows": sum(r.ai_rows for r in rows),
             "quarantined": sum(r.quarantined for r in rows), "requests": sum(r.requests for r in rows),
             "versions": sorted({v for r in rows for v in r.versions.split(",") if v}),
             "max_produce_to_row_ms": max((r.max_produce_to_row_ms for r in rows), default=0)}
    latency_ms = int((time.monotonic() - began) * 1000)
    in_transaction(settings, lambda conn: copy_upsert(
        conn, BATCHES_TABLE, ("query_name", "batch_id", "rows_in", "ai_rows", "quarantined", "requests",
                              "model_versions", "latency_ms", "max_produce_to_row_ms"),
        [(query_name, batch_id, stats["rows_in"], stats["ai_rows"], stats["quarantined"], stats["requests"],
          stats["versions"], latency_ms, stats["max_produce_to_row_ms"])],
        ("query_name", "batch_id")), f"writing to {BATCHES_TABLE}")
    log.info("batch %d: %d tweets, %d AI, %d quarantined, %d requests, model %s, %d ms", batch_id,
             stats["rows_in"], stats["ai_rows"], stats["quarantined"], stats["requests"],
             ",".join(stats["versions"]) or "-", latency_ms)
    return stats


def checkpoint_dir(settings: Settings, options: ClassifyOptions) -> Path:
    return options.checkpoint_dir or settings.data_dir / "checkpoints" / "classify" / settings.tweets_topic


def start_classify(spark, settings: Settings, options: ClassifyOptions):
    """Start the streaming query (returns it); the caller awaits or stops it."""
    with connect(settings) as conn:
        ensure_tables(conn)
    query_name = f"classify_{settings.tweets_topic}".replace("-", "_").replace(".", "_")
    query = start_kafka_query(
        spark, settings, name=query_name, checkpoint=checkpoint_dir(settings, options),
        starting_offsets=options.starting_offsets, max_offsets=options.max_offsets_per_trigger,
        available_now=options.available_now, trigger_seconds=options.trigger_seconds,
        on_batch=lambda df, batch_id: process_batch(df, batch_id, settings, options, query_name))
    log.info("classify: topic %s → %s via %s (%s)", settings.tweets_topic, AI_TWEETS_TABLE,
             settings.model_serving_url, "available now" if options.available_now
             else f"every {options.trigger_seconds} s")
    return query
