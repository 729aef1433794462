"""The retweet review queue: a person decides which AI tweets the company's account retweets.

In review mode (X_RETWEET_REVIEW; the default in live mode) the classify job records each
tweet the classifier and the retweet policy accept as `awaiting_review` in `retweets`, and
sends nothing. The `review_retweets` DAG then, every hour:

1. `review_request` takes up to REVIEW_BATCH of them, most probable first, and builds one
   Human-in-the-loop request: each candidate is an option (its tweet id, author and the start of
   its text), and the request's body shows each with its whole text, probability, author and
   links. Candidates left waiting longer than STALE_AFTER, or whose tweet the retention removed,
   expire here unshown: a retweet is worth something while the tweet is fresh.
2. A reviewer ticks, in Airflow's "Required Actions" page, the tweets to retweet (or "none of
   these"). With no answer within X_RETWEET_REVIEW_MINUTES, Airflow takes the defaults (no
   option) and the candidates expire.
3. `settle_answers` records each decision by `Retweeter.settle_review`: approved tweets are
   retweeted within the budget (re-read from X first; `would_retweet` in a dry run), the others
   `rejected` by the reviewer, or `expired`. Each row says who decided (`reviewed_by`) and when.

Candidates not shown this time (over REVIEW_BATCH) wait for the next run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from psycopg import sql

from ai_tweets.markup import markdown_link, markdown_text
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import AI_TWEETS_TABLE, RETWEETS_TABLE, TWEET_URLS_TABLE, URL_COLUMNS, identifier
from ai_tweets.urls import UrlRecord
from stackbase.settings import Settings, load_settings

if TYPE_CHECKING:  # the retweet action (tweepy) loads when a task runs, not when the DAG is parsed
    from ai_tweets.retweet import Candidate

REVIEW_BATCH = 20  # candidates per request: what a person reads through in a few minutes
STALE_AFTER = timedelta(days=1)  # a candidate waiting longer expires unshown
NONE_OPTION = "Retweet none of these"
_OPTION_TEXT = 60  # characters of the tweet's text in its option


@dataclass(frozen=True)
class ReviewItem:
    """A candidate awaiting review, as the reviewer sees it."""

    candidate: Candidate

    @property
    def option(self) -> str:
        """Its option in the request: unique by its tweet id, which `tweet_id_of` reads back."""
        text = " ".join(self.candidate.text.split())
        short = text if len(text) <= _OPTION_TEXT else text[:_OPTION_TEXT - 1] + "…"
        return f"{self.candidate.tweet_id} · @{self.candidate.author_handle or '?'} · {short}"


def tweet_id_of(option: str) -> int | None:
    """The tweet id an option names; None for NONE_OPTION."""
    head = option.partition(" ")[0]
    return int(head) if head.isdigit() else None


def _body(items: Sequence[ReviewItem], minutes: int) -> str:
    lines = [f"The classifier and the retweet policy accepted these {len(items)} tweets. Tick the ones the "
             f"company's account should retweet. Each is re-read from X before it is retweeted; with no answer "
             f"within {minutes} minutes, none is retweeted.", ""]
    for number, item in enumerate(items, 1):
        candidate = item.candidate
        links = ", ".join(markdown_link(url.expanded_url) for url in candidate.urls if not url.is_twitter) or "none"
        lines += [f"**{number}. tweet {candidate.tweet_id}** by @{markdown_text(candidate.author_handle or '?')}, "
                  f"P(AI) {candidate.ai_probability:.2f}", "",
                  f"> {markdown_text(candidate.text)}", "", f"links: {links}", ""]
    return "\n".join(lines)


def awaiting(settings: Settings, limit: int | None = REVIEW_BATCH,
             tweet_ids: Sequence[int] | None = None) -> list[ReviewItem]:
    """The candidates awaiting review (those of `tweet_ids` only, when given), most probable
    first, with the text and links the classifier saw."""
    from ai_tweets.retweet import Candidate

    table = identifier(RETWEETS_TABLE)
    with connect(settings) as conn:
        ensure_tables(conn, RETWEETS_TABLE)
        rows = conn.execute(sql.SQL("""
            SELECT r.tweet_id, a.text, a.author_handle, r.ai_probability
            FROM {retweets} r JOIN {ai_tweets} a USING (tweet_id)
            WHERE r.action = 'awaiting_review' AND (%(ids)s::bigint[] IS NULL OR r.tweet_id = ANY(%(ids)s))
            ORDER BY r.ai_probability DESC NULLS LAST, r.tweet_id
            LIMIT %(limit)s""").format(retweets=table, ai_tweets=identifier(AI_TWEETS_TABLE)),
            {"ids": None if tweet_ids is None else list(tweet_ids), "limit": limit}).fetchall()
        urls: dict[int, list[UrlRecord]] = {}
        for row in conn.execute(sql.SQL("SELECT {columns} FROM {urls} WHERE tweet_id = ANY(%s) ORDER BY canonical_url")
                                .format(columns=sql.SQL(", ").join(map(sql.Identifier, URL_COLUMNS)),
                                        urls=identifier(TWEET_URLS_TABLE)), ([row[0] for row in rows],)):
            record = dict(zip(URL_COLUMNS, row, strict=True))
            urls.setdefault(record.pop("tweet_id"), []).append(UrlRecord(**record))
    return [ReviewItem(Candidate(tweet_id, author, float(probability or 0.0), tuple(urls.get(tweet_id, ())), text))
            for tweet_id, text, author, probability in rows]


def expire_stale(settings: Settings) -> int:
    """Expire the candidates that waited longer than STALE_AFTER, or whose tweet is gone."""
    with connect(settings) as conn:
        ensure_tables(conn, RETWEETS_TABLE)
        return conn.execute(sql.SQL("""
            UPDATE {retweets} r SET action = 'expired', reviewed_at = now(), decided_at = now(),
                reason = CASE WHEN gone THEN 'expired: the tweet was removed before review'
                              ELSE 'expired: waited more than ' || %s || ' for a review' END
            FROM (SELECT r.tweet_id, a.tweet_id IS NULL AS gone
                  FROM {retweets} r LEFT JOIN {ai_tweets} a USING (tweet_id)
                  WHERE r.action = 'awaiting_review' AND (a.tweet_id IS NULL OR r.decided_at < now() - %s)) s
            WHERE r.tweet_id = s.tweet_id AND r.action = 'awaiting_review'""").format(
            retweets=identifier(RETWEETS_TABLE), ai_tweets=identifier(AI_TWEETS_TABLE)),
            (_duration(STALE_AFTER), STALE_AFTER)).rowcount


def _duration(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return (f"{minutes / 1440:g} day(s)" if minutes >= 1440 else f"{minutes / 60:g} hour(s)" if minutes >= 60
            else f"{minutes:g} minute(s)")


def review_request(response_minutes: int | None = None) -> list[dict[str, Any]]:
    """The Human-in-the-loop request for the candidates awaiting review, as the keyword arguments
    of one HITLOperator (a list, for `expand_kwargs`: empty when nothing waits, and the review is
    skipped). `response_minutes` (default X_RETWEET_REVIEW_MINUTES) is how long it waits."""
    settings = load_settings()
    minutes = int(response_minutes or 0) or settings.retweet.review_minutes
    expire_stale(settings)
    items = awaiting(settings)
    if not items:
        return []
    return [{"subject": f"Retweet which of these {len(items)} AI tweets?",
             "body": _body(items, minutes),
             "options": [item.option for item in items] + [NONE_OPTION],
             "response_timeout": timedelta(minutes=minutes)}]


def settle_answers(requests: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any] | None]) -> dict:
    """Record the decisions of answered (or timed-out) review requests; returns the count of
    each action recorded. An answer without a person (`responded_by_user` empty: the response
    timeout passed) expires every candidate it showed."""
    from ai_tweets.retweet import Retweeter, RetweetPolicy

    settings = load_settings()
    retweeter = Retweeter(settings, RetweetPolicy.from_settings(settings.retweet))
    counts: dict[str, int] = {}
    # By index: Airflow's lazy sequence of a mapped task's results has a length; iterating it
    # asks for one result past the last (an error line in the scheduler's log).
    answers = [answers[index] for index in range(len(answers))]
    for request, answer in zip(requests, answers, strict=True):
        shown = [tweet_id for option in request["options"] if (tweet_id := tweet_id_of(option)) is not None]
        person = (answer or {}).get("responded_by_user") or {}
        reviewer = person.get("name") or person.get("id")
        chosen = {tweet_id_of(option) for option in (answer or {}).get("chosen_options") or ()}
        if reviewer is None:
            timeout = request.get("response_timeout")
            waited = _duration(timeout) if isinstance(timeout, timedelta) else "time"
            results = retweeter.settle_review([], [], shown, None, expired_reason=f"expired: no answer in {waited}")
        else:
            approved = [item.candidate for item in awaiting(settings, None, [i for i in shown if i in chosen])]
            rejected = [tweet_id for tweet_id in shown if tweet_id not in chosen]
            results = retweeter.settle_review(approved, rejected, [], str(reviewer))
        for result in results:
            counts[result.action] = counts.get(result.action, 0) + 1
    return counts
