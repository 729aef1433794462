"""Shadow scoring: the challenger scores the live stream beside the champion, and decides nothing.

With MODEL_SHADOW_URL set, model serving also serves the `challenger` alias there (`serving`),
and the classify job sends each Kafka partition's texts to both servers at once. The champion's
scores decide what is written as AI tweets and what is retweeted, exactly as without a shadow;
the challenger's are only compared with them:

- per micro-batch, in `shadow_batches`: the tweets both scored, how many each alone called AI,
  and the tweets the challenger did not answer for;
- a sample of the disagreements, in `shadow_disagreements`: per partition and micro-batch the
  `EXAMPLES` most apart (by the difference of the two probabilities), with both probabilities.

The dashboard shows the disagreement rate over time and the latest examples; the promotion
request (`promotion`) shows the same kind of comparison on demand.

The shadow never holds the stream back or fails it: each request is tried once, within
`TIME_BUDGET_SECONDS` for a partition's texts; what it does not answer in time, or refuses, is
counted as unscored. While nothing listens on MODEL_SHADOW_URL (no challenger, or shadow
serving off) the worker asks again at most every `RECHECK_SECONDS`.
"""

from __future__ import annotations

import logging
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from ai_tweets.serving import BadAnswer, Score, invoke
from ai_tweets.storage import copy_upsert
from ai_tweets.tables import (
    SHADOW_BATCH_COLUMNS,
    SHADOW_BATCHES_TABLE,
    SHADOW_DISAGREEMENT_COLUMNS,
    SHADOW_DISAGREEMENTS_TABLE,
)

log = logging.getLogger(__name__)

EXAMPLES = 5  # disagreements kept per partition and micro-batch, most apart first
TIME_BUDGET_SECONDS = 15.0  # a partition's texts: answered in this time, or counted unscored
RECHECK_SECONDS = 10.0  # how long a worker leaves a shadow URL alone after nothing answered there
STATISTICS = ("shadow_scored", "shadow_champion_only", "shadow_challenger_only", "shadow_unscored")
TAG_PREFIX = "shadow:"  # the challenger's version among a batch's tags (the champion's are bare)

_silent_until: dict[str, float] = {}  # per worker process: shadow URLs where nothing answered


@dataclass(frozen=True)
class Example:
    tweet_id: int
    text: str
    author_handle: str | None
    champion: Score
    challenger: Score


@dataclass(frozen=True)
class Comparison:
    """The challenger's scores against the champion's, for one partition's texts."""

    version: str | None  # the challenger's version (None: it answered for nothing)
    scored: int = 0
    champion_only: int = 0
    challenger_only: int = 0
    unscored: int = 0
    examples: tuple[Example, ...] = ()

    def statistics(self) -> dict[str, int]:
        return dict(zip(STATISTICS, (self.scored, self.champion_only, self.challenger_only, self.unscored),
                        strict=True))

    def tags(self) -> frozenset[str]:
        return frozenset({f"{TAG_PREFIX}{self.version}"} if self.version else ())


def score(url: str, texts: Sequence[str], request_size: int, budget: float = TIME_BUDGET_SECONDS,
          clock=time.monotonic) -> list[Score | None] | None:
    """The challenger's score per text (None where it did not answer in time or refused);
    None for the whole when nothing listens at `url`. Never raises for the server's sake."""
    if clock() < _silent_until.get(url, 0.0):
        return None
    deadline = clock() + budget
    scores: list[Score | None] = []
    for start in range(0, len(texts), request_size):
        chunk = texts[start:start + request_size]
        remaining = deadline - clock()
        if remaining <= 0:
            scores += [None] * len(chunk)
            continue
        try:
            scores += invoke(url, chunk, remaining)
        except (urllib.error.HTTPError, BadAnswer) as exc:  # it answered, and refused these texts
            log.warning("shadow model at %s refused %d texts: %s", url, len(chunk), exc)
            scores += [None] * len(chunk)
        except (urllib.error.URLError, OSError) as exc:  # nothing answers (or no longer)
            if not any(s is not None for s in scores):
                _silent_until[url] = clock() + RECHECK_SECONDS
                return None
            log.warning("shadow model at %s stopped answering: %s", url, getattr(exc, "reason", exc))
            scores += [None] * len(chunk)
    return scores


def compare(keys: Sequence[tuple[int, str, str | None]], champion: Sequence[Score | str],
            challenger: Sequence[Score | None] | None, examples: int = EXAMPLES) -> Comparison | None:
    """`keys` (tweet id, text, author) in the order both scored them; the champion's scores (or
    the reason it refused a text, which then counts for nothing). None without a shadow."""
    if challenger is None:
        return None
    pairs = [(key, ours, theirs) for key, ours, theirs in zip(keys, champion, challenger, strict=True)
             if isinstance(ours, Score)]
    answered = [(key, ours, theirs) for key, ours, theirs in pairs if theirs is not None]
    apart = sorted((item for item in answered if item[1].label != item[2].label),
                   key=lambda item: -abs(item[1].ai_probability - item[2].ai_probability))
    versions = {theirs.model_version for _, _, theirs in answered if theirs.model_version}
    return Comparison(
        version=min(versions) if versions else None, scored=len(answered),
        champion_only=sum(1 for _, ours, theirs in answered if ours.label == 1 and theirs.label == 0),
        challenger_only=sum(1 for _, ours, theirs in answered if ours.label == 0 and theirs.label == 1),
        unscored=len(pairs) - len(answered),
        examples=tuple(Example(tweet_id, text, author, ours, theirs)
                       for (tweet_id, text, author), ours, theirs in apart[:examples]))


def write_examples(conn: psycopg.Connection, comparison: Comparison | None) -> int:
    """The partition's sample of disagreements, in its transaction (idempotent); rows written."""
    if comparison is None or not comparison.examples:
        return 0
    rows = [(e.tweet_id, e.challenger.model_version or comparison.version, e.champion.model_version,
             e.champion.ai_probability, e.challenger.ai_probability, e.text, e.author_handle)
            for e in comparison.examples]
    copy_upsert(conn, SHADOW_DISAGREEMENTS_TABLE, SHADOW_DISAGREEMENT_COLUMNS, rows, ("tweet_id", "challenger_version"))
    return len(rows)


def split_tags(tags: Sequence[str]) -> tuple[list[str], str | None]:
    """A batch's tags → (the champion's versions, the challenger's version or None)."""
    champion = [tag for tag in tags if not tag.startswith(TAG_PREFIX)]
    challenger = sorted(tag.removeprefix(TAG_PREFIX) for tag in tags if tag.startswith(TAG_PREFIX))
    return champion, (challenger[-1] if challenger else None)


def batch_row(query_name: str, batch_id: int, tags: Sequence[str], statistics: dict[str, int]) -> tuple | None:
    """The `shadow_batches` row of a micro-batch, or None if no challenger answered in it."""
    champion, challenger = split_tags(tags)
    if challenger is None:
        return None
    return (query_name, batch_id, champion, challenger, *(int(statistics.get(name, 0)) for name in STATISTICS))


def write_batch(conn: psycopg.Connection, row: tuple) -> None:
    copy_upsert(conn, SHADOW_BATCHES_TABLE, SHADOW_BATCH_COLUMNS, [row], ("query_name", "batch_id"))
