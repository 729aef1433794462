"""Classify the live stream: Kafka topic `tweets` → batched calls to MLflow model serving →
`ai_tweets`, `tweet_urls` and per-batch metrics in Postgres → optional retweet.

A `StreamJob` of the shared skeleton (`ai_tweets.stream`), exactly once like the ingest job.
Each Kafka partition of a micro-batch is handled in a Spark Python worker, in this order:

1. parse: each message becomes a tweet and its links, or goes to the quarantine;
2. score, outside any transaction: the texts go to the model server in batches (never one
   request per row), retried with backoff while the server is down or restarting on a new
   champion. A request the server refuses (4xx, or 5xx while it answers) is split in halves
   until the texts it refuses are found; those go to the quarantine with its answer;
3. write, in one transaction: AI tweets, their links, and the retweet decisions;
4. after the commit, the process's one long-lived `Retweeter` sends the decided retweets.
   Whatever X answers is recorded; an X error never fails a batch.

With shadow scoring (MODEL_SHADOW_URL), step 2 also sends the texts to the challenger, at the
same time; its scores are compared with the champion's and recorded (`ai_tweets.shadow`), and
decide nothing.
"""

from __future__ import annotations

import logging
import time
import urllib.error
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ai_tweets import shadow, storage
from ai_tweets.retrying import STREAM_WAIT_SECONDS, Backoff, retry_call
from ai_tweets.retweet import Candidate, Retweeter, RetweetPolicy, RetweetResult
from ai_tweets.schema import Tweet
from ai_tweets.serving import BadAnswer, Score, invoke
from ai_tweets.storage import connect, copy_upsert, in_transaction
from ai_tweets.stream import BatchStats, Message, Prepared, StreamJob, StreamOptions, Written, start_stream
from ai_tweets.tables import (
    AI_COLUMNS,
    AI_TWEETS_TABLE,
    BATCH_COLUMNS,
    BATCHES_TABLE,
    CLASSIFY_TABLES,
    TWEET_URLS_TABLE,
    URL_COLUMNS,
)
from ai_tweets.urls import UrlRecord, extract_urls
from stackbase.settings import Settings

log = logging.getLogger(__name__)



class ServingUnavailable(RuntimeError):
    """The model server did not answer within the configured wait; the batch is not written
    (its offsets are not committed), so a restart processes it again."""


class TextRefused(RuntimeError):
    """The model server answered, and refused this one text."""


@dataclass(frozen=True)
class ClassifyOptions:
    stream: StreamOptions = field(default_factory=lambda: StreamOptions(trigger_seconds=1.0,
                                                                        max_offsets_per_trigger=50_000))
    request_batch_size: int = 1_000  # texts per /invocations call
    concurrency: int = 2  # parallel calls per Spark partition
    timeout_seconds: float = 60.0
    max_wait_seconds: float = STREAM_WAIT_SECONDS  # how long a batch waits for a server that is down
    retweet: bool = False  # dry-run unless X_RETWEET_DRY_RUN=false


def ensure_tables(conn: psycopg.Connection) -> None:
    """The classify stage's tables (and the retweet decisions' and the quarantine), created
    before the workers run; idempotent, keyed by tweet id."""
    storage.ensure_tables(conn, *CLASSIFY_TABLES)


# --- scoring ------------------------------------------------------------------------------


PROBE_TEXT = "a probe of the model server"


def _server_sound(url: str, options: ClassifyOptions) -> bool:
    """Whether the server scores a plain text: then an error for a request is about its texts."""
    try:
        invoke(url, [PROBE_TEXT], options.timeout_seconds)
        return True
    except Exception:  # any failure of the probe means the server is not sound
        return False


def score_batch(texts: Sequence[str], options: ClassifyOptions, url: str, sleep=time.sleep) -> list[Score]:
    """One /invocations call for `texts`, retried with the one retry policy (1 s … 30 s) while
    the server is unreachable or sick, for at most `options.max_wait_seconds` (then
    ServingUnavailable). An error answer or a bad answer while the server scores a probe text
    raises TextRefused: the server is up and refuses these texts."""
    def attempt() -> list[Score]:
        try:
            return invoke(url, texts, options.timeout_seconds)
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.read()[:300]!r}"
            if _server_sound(url, options):
                raise TextRefused(f"model server at {url} refused it: {problem}") from exc
            raise _Unanswered(problem) from exc
        except BadAnswer as exc:
            if _server_sound(url, options):
                raise TextRefused(str(exc)) from exc
            raise _Unanswered(str(exc)) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise _Unanswered(str(getattr(exc, "reason", exc))) from exc

    def gave_up(exc: BaseException, attempts: int, waited: float) -> ServingUnavailable:
        return ServingUnavailable(f"model server at {url} not answering after {waited:.0f} s and {attempts} "
                                  f"attempts ({exc}); the batch will be retried when the job restarts")

    return retry_call(attempt, Backoff(budget=options.max_wait_seconds, sleep=sleep),
                      retry_on=lambda exc: isinstance(exc, _Unanswered), what=f"model server at {url}",
                      give_up=gave_up)


class _Unanswered(Exception):
    """The model server did not answer, or answered badly without scoring a probe: try again."""


def score_isolating(texts: Sequence[str], options: ClassifyOptions, url: str) -> tuple[list[Score | str], int]:
    """A score per text, or the reason the server refused that text; and the requests made.
    A refused request is split in halves until the refused texts are found."""
    try:
        return list(score_batch(texts, options, url)), 1
    except TextRefused as exc:
        if len(texts) == 1:
            return [str(exc)], 1
        half = len(texts) // 2
        first, made_first = score_isolating(texts[:half], options, url)
        second, made_second = score_isolating(texts[half:], options, url)
        log.warning("model server refused a request of %d texts, split: %s", len(texts), exc)
        return first + second, 1 + made_first + made_second


def score_texts(texts: Sequence[str], options: ClassifyOptions, url: str) -> tuple[list[Score | str], int]:
    """Scores (or refusals) in input order, and the requests made; batches of
    `request_batch_size`, `concurrency` calls at a time."""
    size = options.request_batch_size
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    if len(chunks) <= 1 or options.concurrency <= 1:
        results = [score_isolating(chunk, options, url) for chunk in chunks]
    else:
        with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
            results = list(pool.map(lambda c: score_isolating(c, options, url), chunks))
    return [score for scores, _ in results for score in scores], sum(made for _, made in results)


# --- the stream job -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """A parsed tweet, its links, and where it came from."""

    tweet: Tweet
    urls: tuple[UrlRecord, ...]
    message: Message


def to_item(tweet: Tweet, message: Message) -> Item:
    return Item(tweet, tuple(extract_urls(tweet)), message)


@dataclass(frozen=True)
class Scored:
    """A partition's AI tweets with their scores, and what scoring them took."""

    ai: list[tuple[Item, Score]]
    scored: int
    requests: int
    versions: frozenset[str]
    shadow: shadow.Comparison | None = None  # the challenger's scores against the champion's



# One Retweeter per process (a Spark Python worker is reused from batch to batch): it keeps
# its X client (GET /2/users/me once) and its pause after a 429.
_RETWEETERS: dict[tuple[Settings, RetweetPolicy], Retweeter] = {}


def process_retweeter(settings: Settings) -> Retweeter:
    policy = RetweetPolicy.from_settings(settings.retweet)
    key = (settings, policy)
    if key not in _RETWEETERS:
        _RETWEETERS[key] = Retweeter(settings, policy)
    return _RETWEETERS[key]


def classify_job(settings: Settings, options: ClassifyOptions, query_name: str) -> StreamJob:
    def prepare(items: list[Item]) -> Prepared[Scored]:
        texts = [item.tweet.text for item in items]
        with ThreadPoolExecutor(max_workers=1) as pool:  # the challenger scores while the champion does
            shadowed = (pool.submit(shadow.score, settings.model_shadow_url, texts, options.request_batch_size)
                        if settings.model_shadow_url and texts else None)
            scores, requests = score_texts(texts, options, settings.model_serving_url)
            compared = shadow.compare([(i.tweet.id, i.tweet.text, i.tweet.author_handle) for i in items], scores,
                                      shadowed.result()) if shadowed else None
        refused = [item.message.quarantined(score) for item, score in zip(items, scores, strict=True)
                   if isinstance(score, str)]
        valid = [(item, score) for item, score in zip(items, scores, strict=True) if isinstance(score, Score)]
        return Prepared(Scored([(item, score) for item, score in valid if score.label == 1], len(valid), requests,
                               frozenset(s.model_version for _, s in valid if s.model_version), compared), refused)

    def write(conn: psycopg.Connection, scored: Scored) -> Written:
        ai_rows = [(i.tweet.id, i.tweet.text, i.tweet.author_id, i.tweet.author_handle, i.tweet.created_at,
                    s.ai_probability, settings.model_name, s.model_version, i.message.timestamp,
                    i.message.partition, i.message.offset) for i, s in scored.ai]
        url_rows = [(i.tweet.id, u.canonical_url, u.url, u.expanded_url, u.domain, u.is_twitter, u.twitter_kind)
                    for i, _ in scored.ai for u in i.urls]
        copy_upsert(conn, AI_TWEETS_TABLE, AI_COLUMNS, ai_rows, ("tweet_id",))
        copy_upsert(conn, TWEET_URLS_TABLE, URL_COLUMNS, url_rows, ("tweet_id", "canonical_url"))
        decided: list[RetweetResult] = []
        if options.retweet and scored.ai:
            decided = process_retweeter(settings).decide(
                conn, [Candidate(i.tweet.id, i.tweet.author_handle, s.ai_probability, i.urls, i.tweet.text,
                                 s.model_version) for i, s in scored.ai])
        shadow.write_examples(conn, scored.shadow)
        return Written({"ai_rows": len(ai_rows), "requests": scored.requests,
                        **(scored.shadow.statistics() if scored.shadow else {})}, decided,
                       scored.versions | (scored.shadow.tags() if scored.shadow else frozenset()))

    def send_retweets(decided: list[RetweetResult]) -> None:
        if decided:
            process_retweeter(settings).send_after_commit(decided)

    def record_batch(stats: BatchStats) -> None:
        champion, _ = shadow.split_tags(stats.tags)
        shadowed = shadow.batch_row(query_name, stats.batch_id, stats.tags, stats.statistics)

        def write_log(conn: psycopg.Connection) -> None:
            copy_upsert(conn, BATCHES_TABLE, BATCH_COLUMNS,
                        [(query_name, stats.batch_id, stats.messages, stats.statistics["ai_rows"], stats.quarantined,
                          stats.statistics["requests"], champion, int(stats.seconds * 1000), stats.max_lag_ms)],
                        ("query_name", "batch_id"))
            if shadowed is not None:
                shadow.write_batch(conn, shadowed)

        in_transaction(settings, write_log, f"writing to {BATCHES_TABLE}")

    return StreamJob(name=query_name, target=AI_TWEETS_TABLE, convert=to_item, prepare=prepare, write=write,
                     statistics=("ai_rows", "requests", *shadow.STATISTICS), after_commit=send_retweets,
                     on_batch=record_batch)


def query_name(settings: Settings) -> str:
    return f"classify_{settings.tweets_topic}".replace("-", "_").replace(".", "_")


def checkpoint_dir(settings: Settings, options: StreamOptions) -> Path:
    return options.checkpoint_dir or settings.data_dir / "checkpoints" / "classify" / settings.tweets_topic


def start_classify(spark, settings: Settings, options: ClassifyOptions):
    """Start the streaming query (returns it); the caller awaits or stops it."""
    with connect(settings) as conn:
        ensure_tables(conn)
    if options.retweet:
        process_retweeter(settings)  # live mode without credentials stops here, naming the variable
    name = query_name(settings)
    query = start_stream(spark, settings, classify_job(settings, options, name),
                         checkpoint_dir(settings, options.stream), options.stream)
    log.info("classify: topic %s → %s via %s (%s)", settings.tweets_topic, AI_TWEETS_TABLE,
             settings.model_serving_url, "available now" if options.stream.available_now
             else f"every {options.stream.trigger_seconds} s")
    return query
