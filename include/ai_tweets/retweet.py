"""The business action: retweet AI tweets that link outside X, at most once each, within a budget.

Every decision is a row of the table `retweets` (primary key tweet_id), written with
`INSERT … ON CONFLICT DO NOTHING`: a tweet that has a row is never considered again, whatever
its action was, so replays, restarts and concurrent workers never retweet twice.

    action           meaning
    pending          claimed, the POST to X is under way (or the process died during it)
    retweeted        X answered {"retweeted": true}
    would_retweet    dry run: eligible and within the budget, nothing sent to X
    skipped          not eligible (no external link, denied or unlisted domain), over a rate limit
                     or the daily cap, or X does not confirm the tweet as the stream carried it
    failed           X refused or could not be reached; not retried
    awaiting_review  review mode: eligible, waiting for a person's answer in Airflow
    rejected         review mode: the reviewer (reviewed_by) chose not to retweet it
    expired          review mode: nobody answered within X_RETWEET_REVIEW_MINUTES

Review mode (X_RETWEET_REVIEW; the default in live mode): the classify job records eligible
tweets `awaiting_review` and sends nothing; the `review_retweets` DAG shows them to a person
(`ai_tweets.review`), and `settle_review` turns the answer into the actions above. An approved
tweet then takes the budget and is re-read from X and retweeted like any other.

Side effects outside the transaction: `decide` records every decision (`pending` for a retweet
to make) in the caller's transaction; the classify job commits them with its AI tweets, and
only then does `send` POST the pending ones and record X's answer. The classify job keeps one
Retweeter per process (`send_after_commit`), so its X client, its account check and its pause
after a 429 last from batch to batch, and no X error ever fails a batch.

X's own word: the stream's payload is not trusted for the decision (Kafka is a shared bus; a
forged message could name any tweet). Before a live retweet, `send` re-reads the tweet from X
(`GET /2/tweets/:id` with its author and links) and retweets only if X confirms the text the
classifier scored and the author, and the links X reports pass the policy; otherwise the row is
`skipped` with the reason (`x_not_found`, `x_differs: text`, `x_differs: author`, `x_says: …`).
Live mode needs an allow list of domains (X_RETWEET_ALLOW_DOMAINS) or X_RETWEET_ANY_DOMAIN=true,
said explicitly, and keeps to a daily cap (X_RETWEETS_PER_DAY, default 100) besides the
15-minute budget.

Crash safety: the `pending` row is committed before the POST and updated after it. A process
that dies in between leaves `pending` behind, and a pending tweet is never retried
automatically: X may have retweeted it. To retry, check the account, then delete the row.
Dry-run decisions are final too: a tweet recorded `would_retweet` is not retweeted after the
switch to live mode.

Rate limits. X allows 50 `POST /2/users/:id/retweets` requests per 15-minute window per
authenticated user (X API v2 reference for that endpoint; lower tiers of X's plans may allow
fewer, so set X_RETWEETS_PER_15_MIN to your plan). The budget here, 40 by default, is a
sliding window over this table: rows that made a request to X (pending, retweeted, failed)
decided in the last 15 minutes; in dry run the would_retweet rows, so that a dry run shows what
live mode would do. Candidates over the budget are recorded `skipped` (reason
`local_rate_limit`), not queued: a retweet is worth something while the tweet is fresh, and a
queue would burst later. Within a batch the most probable AI tweets go first. A 429 from X
records that tweet `failed` and pauses this Retweeter until `x-rate-limit-reset` (15 minutes
when X sends no reset time); candidates during the pause are recorded `skipped` (reason
`x_rate_limit`). Nothing sleeps or retries in a loop. The pause lives in the process; the
budget lives in the table, so a restarted worker keeps to it.

Credentials: OAuth 1.0a user context (the manage-Retweets endpoints require a user's access
token; OAuth 1.0a tokens do not expire, unlike OAuth 2.0 user tokens that need refreshing
every two hours), from X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET.
Only live mode (X_RETWEET_DRY_RUN=false) needs them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Literal

import psycopg
import requests
import tweepy
from psycopg import sql

from ai_tweets import x_api
from ai_tweets.precision import MIN_GOLD_TWEETS_ABOVE, threshold_for_precision
from ai_tweets.schema import Tweet
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import MODEL_QUALITY, RETWEETS_TABLE, identifier
from ai_tweets.urls import UrlRecord, domain_of, extract_urls
from stackbase.settings import (
    DEFAULT_RETWEETS_PER_15_MIN,
    DEFAULT_RETWEETS_PER_DAY,
    X_USER_CREDENTIALS,
    RetweetSettings,
    Settings,
    SettingsError,
    retweet_settings,
)

log = logging.getLogger(__name__)

X_RETWEETS_PER_15_MIN = 50  # X's limit on POST /2/users/:id/retweets, per user
X_POSTS_PER_DAY = 2400  # X's daily cap on posts (retweets included) per account
X_PAUSE_WITHOUT_RESET = 15 * 60.0  # a 429 without x-rate-limit-reset: wait a whole window
X_REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read: a stalled POST must not hold the stream
_WINDOW_LOCK = "ai_tweets.retweets"  # advisory lock serializing budget checks across workers
_PLACEHOLDER = "change-me"

Action = Literal["pending", "retweeted", "would_retweet", "skipped", "failed", "awaiting_review", "rejected",
                 "expired", "already_decided"]
# The rows that used the budget (or, in a dry run, would have): the 15-minute window and the daily cap count them.
SPENT_ACTIONS = ("pending", "retweeted", "would_retweet", "failed")


class RetweetError(RuntimeError):
    """Retweeting cannot go on (X rejects the credentials, the account cannot be identified)."""


# --- policy and credentials -----------------------------------------------------------------


def _domain_entry(value: str, variable: str) -> str:
    """A domain of an allow or deny list, normalized like `urls.domain_of` (lower case, IDNA,
    no `www.`); `*.example.com` and `.example.com` mean example.com and its subdomains."""
    entry = value.strip().removeprefix("*.").removeprefix(".")
    domain = domain_of(f"https://{entry}/") if entry and not set(entry) & set("/:@?#") else None
    if domain is None:
        raise SettingsError(f"{variable}: {value.strip()!r} is not a domain name (expected e.g. arxiv.org).")
    return domain


def _domain_list(values: Iterable[str], variable: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_domain_entry(v, variable) for v in values if v.strip()))


@dataclass(frozen=True)
class RetweetPolicy:
    """What may be retweeted and how fast. Domains match themselves and their subdomains; a
    tweet with a denied domain among its links is skipped (deny wins over allow); with an
    allow list, every link outside X must be on it (a retweet endorses all its links)."""

    dry_run: bool = True
    max_per_15min: int = DEFAULT_RETWEETS_PER_15_MIN
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    any_domain: bool = False  # live mode without an allow list: must be said explicitly
    max_per_day: int = DEFAULT_RETWEETS_PER_DAY
    review: bool = False  # eligible tweets wait for a person's approval (`ai_tweets.review`)
    # Live without review: only above the scoring version's threshold for this precision on gold
    # labels (None: no such limit, as in a dry run)
    min_precision: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_per_15min <= X_RETWEETS_PER_15_MIN:
            raise SettingsError(
                f"X_RETWEETS_PER_15_MIN={self.max_per_15min} must be from 1 to {X_RETWEETS_PER_15_MIN}, "
                f"X's limit of retweets per 15 minutes per user."
            )
        if not 1 <= self.max_per_day <= X_POSTS_PER_DAY:
            raise SettingsError(f"X_RETWEETS_PER_DAY={self.max_per_day} must be from 1 to {X_POSTS_PER_DAY}, "
                                f"X's daily limit of posts per account.")
        object.__setattr__(self, "allow_domains", _domain_list(self.allow_domains, "X_RETWEET_ALLOW_DOMAINS"))
        object.__setattr__(self, "deny_domains", _domain_list(self.deny_domains, "X_RETWEET_DENY_DOMAINS"))
        if not self.dry_run and not self.allow_domains and not self.any_domain:
            raise SettingsError(
                "X_RETWEET_ALLOW_DOMAINS is empty: live retweeting (X_RETWEET_DRY_RUN=false) needs the list "
                "of domains the account may link to (e.g. arxiv.org,github.com), or X_RETWEET_ANY_DOMAIN=true "
                "to retweet links to any domain not denied."
            )

    @classmethod
    def from_settings(cls, values: RetweetSettings) -> RetweetPolicy:
        """The policy of `Settings.retweet`, checked."""
        return cls(dry_run=values.dry_run, max_per_15min=values.max_per_15min, allow_domains=values.allow_domains,
                   deny_domains=values.deny_domains, any_domain=values.any_domain, max_per_day=values.max_per_day,
                   review=values.review, min_precision=values.min_precision or None)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetweetPolicy:
        """The policy of these variables (see `settings.RetweetSettings`), checked."""
        return cls.from_settings(retweet_settings(env))


@dataclass(frozen=True)
class XCredentials:
    """OAuth 1.0a user context: the app's consumer key and secret, the account's access token."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)


def credentials_from_env(env: Mapping[str, str]) -> XCredentials:
    """The account's credentials, or SettingsError naming the first missing variable."""
    values = {}
    for variable in X_USER_CREDENTIALS:
        value = env.get(variable, "").strip()
        if not value or value == _PLACEHOLDER:
            raise SettingsError(
                f"{variable} is not set: live retweeting (X_RETWEET_DRY_RUN=false) needs the OAuth 1.0a "
                f"keys of the X app (X_API_KEY, X_API_SECRET) and the account's access token "
                f"(X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET), from the app's Keys and tokens page."
            )
        values[variable.removeprefix("X_").lower()] = value
    return XCredentials(**values)


def user_client(credentials: XCredentials, base_url: str | None = None) -> tweepy.Client:
    """A tweepy client acting as the account; `base_url` redirects it (a fake server, a proxy)."""
    client = x_api._client(tweepy.Client, None, base_url, consumer_key=credentials.api_key,
                           consumer_secret=credentials.api_secret, access_token=credentials.access_token,
                           access_token_secret=credentials.access_token_secret)
    # tweepy passes no timeout to requests, which then waits forever on a silent server
    client.session.request = partial(client.session.request, timeout=X_REQUEST_TIMEOUT)
    return client


# --- eligibility ------------------------------------------------------------------------------


def _listed(domain: str, domains: Sequence[str]) -> bool:
    return any(domain == listed or domain.endswith("." + listed) for listed in domains)


def eligible(urls: Sequence[UrlRecord], policy: RetweetPolicy) -> tuple[bool, str]:
    """Whether a tweet with these links may be retweeted, and why (the reason is stored)."""
    if not urls:
        return False, "no_links"
    denied = [url.domain for url in urls if _listed(url.domain, policy.deny_domains)]
    if denied:
        return False, f"denied_domain: {denied[0]}"
    external = [url for url in urls if not url.is_twitter]
    if not external:
        return False, "twitter_links_only"
    if policy.allow_domains:
        unlisted = [url.domain for url in external if not _listed(url.domain, policy.allow_domains)]
        if unlisted:
            return False, f"domain_not_allowed: {unlisted[0]}"
    return True, "eligible: " + ", ".join(dict.fromkeys(url.domain for url in external))


# --- the action -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An AI tweet the classifier kept, with its links and the text it scored."""

    tweet_id: int
    author_handle: str | None
    ai_probability: float
    urls: tuple[UrlRecord, ...]
    text: str = ""
    model_version: str | None = None  # the version that scored it (automatic retweets' threshold)

    @classmethod
    def from_tweet(cls, tweet: Tweet, ai_probability: float) -> Candidate:
        return cls(tweet.id, tweet.author_handle, ai_probability, tuple(extract_urls(tweet)), tweet.text)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(url.domain for url in self.urls))


@dataclass(frozen=True)
class RetweetResult:
    tweet_id: int
    action: Action  # `already_decided`: a row existed, nothing was written or sent
    reason: str
    domains: tuple[str, ...] = ()
    candidate: Candidate | None = field(default=None, repr=False, compare=False)  # what `send` confirms with X


def ensure_retweets_table(conn: psycopg.Connection) -> None:
    """One row per tweet ever considered; idempotent: primary key tweet_id."""
    ensure_tables(conn, RETWEETS_TABLE)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Retweeter:
    """Decides on candidates and acts on them, recording every decision in `retweets`.

    `client_factory` builds the tweepy client for live mode (default: OAuth 1.0a from
    `credentials_from_env(env)`, redirected to X_API_BASE_URL when that is set). It is called
    once, at the first candidate that would be sent to X; a dry run never calls it.
    """

    def __init__(self, settings: Settings, policy: RetweetPolicy,
                 client_factory: Callable[[], tweepy.Client] | None = None,
                 env: Mapping[str, str] | None = None):
        self.settings = settings
        self.policy = policy
        if client_factory is None and not policy.dry_run:
            credentials = credentials_from_env(settings.retweet.credentials if env is None else env)  # fail fast
            client_factory = partial(user_client, credentials, settings.x_api_base_url)
        self._client_factory = client_factory
        self._client: tweepy.Client | None = None
        self._paused_until = 0.0  # epoch seconds: X answered 429 until then
        self._gold_thresholds: dict[str | None, float | None] = {}  # by model version, read once
        self._table_ready = False

    def process(self, candidates: Sequence[Candidate]) -> list[RetweetResult]:
        """Decide on `candidates` and send the retweets at once: one result per distinct tweet
        id, in the order given. Live mode identifies the account before anything new is
        recorded, so credentials X rejects stop here (RetweetError) with nothing written."""
        first: dict[int, Candidate] = {}
        for candidate in candidates:
            first.setdefault(candidate.tweet_id, candidate)
        if not first:
            return []
        with connect(self.settings) as conn:
            if not self._table_ready:
                ensure_retweets_table(conn)
                self._table_ready = True
            known = self._decided(conn, list(first))
            undecided = [c for tweet_id, c in first.items() if tweet_id not in known]
            if not self.policy.dry_run and not self.policy.review and any(eligible(c.urls, self.policy)[0]
                                                                          for c in undecided):
                self._account()
            decided = self.decide(conn, list(first.values()))
        return self.send(decided)

    def _decided(self, conn: psycopg.Connection, tweet_ids: list[int]) -> dict[int, str]:
        """The recorded action of each of these tweets that has a row."""
        return dict(conn.execute(sql.SQL("SELECT tweet_id, action FROM {table} WHERE tweet_id = ANY(%s)")
                                 .format(table=identifier(RETWEETS_TABLE)), (tweet_ids,)).fetchall())

    def decide(self, conn: psycopg.Connection, candidates: Sequence[Candidate]) -> list[RetweetResult]:
        """Record a decision for each candidate on `conn`, in the caller's transaction (the
        classify job's, so decisions commit with the AI tweets): `skipped`, `would_retweet`, or
        `pending` for a retweet `send` will make once that transaction is committed. The most
        probable AI tweets are decided first, so they get the budget. Nothing is sent to X."""
        unique: dict[int, Candidate] = {}
        for candidate in candidates:
            unique.setdefault(candidate.tweet_id, candidate)
        decided = self._decided(conn, list(unique))
        results: dict[int, RetweetResult] = {}
        for candidate in sorted(unique.values(), key=lambda c: -c.ai_probability):
            if candidate.tweet_id in decided:
                results[candidate.tweet_id] = RetweetResult(
                    candidate.tweet_id, "already_decided", f"already {decided[candidate.tweet_id]}",
                    candidate.domains)
            else:
                results[candidate.tweet_id] = self._decide(conn, candidate)
        return [results[tweet_id] for tweet_id in unique]

    def send(self, decided: Sequence[RetweetResult]) -> list[RetweetResult]:
        """Send the `pending` retweets of committed decisions, recording X's answer for each.
        Credentials X rejects record the rest `failed` and raise RetweetError."""
        if not any(result.action == "pending" for result in decided):
            return list(decided)
        results: list[RetweetResult] = []
        refused: RetweetError | None = None
        with connect(self.settings, autocommit=True) as conn:
            for result in decided:
                if result.action != "pending":
                    results.append(result)
                    continue
                if refused is not None:
                    action, reason, response = "failed", "x_unauthorized: not sent", str(refused)
                elif time.time() < self._paused_until:
                    action, reason, response = "skipped", f"x_rate_limit: paused until {_utc(self._paused_until)}", None
                else:
                    try:
                        client = self._account()
                        action, reason, response = self._confirm(client, result)
                        if action == "pending":
                            action, reason, response = self._send(client, result.tweet_id)
                    except RetweetError as exc:
                        refused = exc
                        action, reason, response = "failed", f"x_account: {str(exc)[:200]}", str(exc)
                self._complete(conn, result.tweet_id, action, reason, response)
                results.append(RetweetResult(result.tweet_id, action, reason, result.domains))
        if refused is not None:
            raise refused
        return results

    def send_after_commit(self, decided: Sequence[RetweetResult]) -> None:
        """`send` for the classify job: whatever X or the network does, the batch goes on. A
        rejected credential is logged as an error and pauses this Retweeter for a window, so
        that X is not asked again with every batch."""
        try:
            self.send(decided)
        except RetweetError as exc:
            self._paused_until = max(self._paused_until, time.time() + X_PAUSE_WITHOUT_RESET)
            log.error("retweets paused until %s: %s", _utc(self._paused_until), exc)
        except Exception:  # an X or database error here must not fail the committed batch
            log.exception("sending retweets failed; their rows stay `pending` (never retried automatically)")

    def _decide(self, conn: psycopg.Connection, candidate: Candidate) -> RetweetResult:
        ok, reason = eligible(candidate.urls, self.policy)
        if not ok:
            return self._record(conn, candidate, "skipped", reason)
        if self.policy.review:  # a person decides, in the review_retweets DAG; the budget is taken then
            return self._record(conn, candidate, "awaiting_review", reason)
        if not self.policy.dry_run and self.policy.min_precision:
            below = self._below_gold_threshold(conn, candidate)
            if below:
                return self._record(conn, candidate, "skipped", below)
        if self.policy.dry_run:
            recorded, reason = self._claim(conn, candidate, "would_retweet", reason)
            if recorded == "would_retweet":
                log.info("would retweet %d (%s)", candidate.tweet_id, ", ".join(candidate.domains))
            return self._result(candidate, recorded, reason)
        if time.time() < self._paused_until:
            return self._record(conn, candidate, "skipped", f"x_rate_limit: paused until {_utc(self._paused_until)}")
        recorded, reason = self._claim(conn, candidate, "pending", reason)
        return self._result(candidate, recorded, reason)

    def _below_gold_threshold(self, conn: psycopg.Connection, candidate: Candidate) -> str | None:
        """Why an automatic live retweet of `candidate` is refused by the precision rule (None: it
        is not): its version needs a threshold with MIN_PRECISION on gold labels, and the
        candidate's probability must reach it."""
        target = self.policy.min_precision
        version = candidate.model_version
        if version not in self._gold_thresholds:
            if not self._gold_thresholds:  # once per Retweeter: a database made before the column gets it
                ensure_tables(conn, MODEL_QUALITY)
            row = conn.execute(sql.SQL("SELECT gold_precision_curve FROM {table} WHERE model_name = %s AND "
                                       "model_version = %s").format(table=identifier(MODEL_QUALITY)),
                               (self.settings.model_name, version)).fetchone() if version else None
            curve = row[0] if row else None
            self._gold_thresholds[version] = (None if curve is None else
                                              threshold_for_precision(curve, target, MIN_GOLD_TWEETS_ABOVE))
        threshold = self._gold_thresholds[version]
        if threshold is None:
            return (f"no_gold_threshold: version {version or '?'} has no threshold with precision {target:g} on "
                    f"{MIN_GOLD_TWEETS_ABOVE}+ gold-labeled tweets (label more, or set X_RETWEET_REVIEW=true)")
        if candidate.ai_probability < threshold:
            return (f"below_gold_threshold: P(AI) {candidate.ai_probability:.3f} < {threshold:.3f} "
                    f"(precision {target:g} on gold labels)")
        return None

    @staticmethod
    def _result(candidate: Candidate, recorded: str | None, reason: str) -> RetweetResult:
        if recorded is None:  # another worker recorded this tweet between our check and our insert
            return RetweetResult(candidate.tweet_id, "already_decided", "already decided by another worker",
                                 candidate.domains)
        return RetweetResult(candidate.tweet_id, recorded, reason, candidate.domains, candidate)

    # --- the table ----------------------------------------------------------------------------

    def _insert(self, conn: psycopg.Connection, candidate: Candidate, action: str, reason: str) -> bool:
        """Record a decision; False if the tweet has a row already."""
        return conn.execute(sql.SQL("""
            INSERT INTO {table} (tweet_id, action, reason, dry_run, author_handle, ai_probability, domains)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (tweet_id) DO NOTHING""").format(table=identifier(RETWEETS_TABLE)),
            (candidate.tweet_id, action, reason, self.policy.dry_run, candidate.author_handle,
             candidate.ai_probability, list(candidate.domains))).rowcount == 1

    def _record(self, conn: psycopg.Connection, candidate: Candidate, action: Action,
                reason: str) -> RetweetResult:
        inserted = self._insert(conn, candidate, action, reason)
        return self._result(candidate, action if inserted else None, reason)

    def _claim(self, conn: psycopg.Connection, candidate: Candidate, action: str,
               reason: str) -> tuple[str | None, str]:
        """Record `action` if the 15-minute budget allows, else `skipped`; returns what was recorded
        (None: the tweet had a row) and why. The count and the insert hold an advisory lock, so
        concurrent workers cannot both take the last slot."""
        with conn.transaction():
            refused = self._over_budget(conn)
            if refused:
                action, reason = "skipped", refused
            return (action if self._insert(conn, candidate, action, reason) else None), reason

    def _over_budget(self, conn: psycopg.Connection) -> str | None:
        """Why the budget has no room left (None: it has), with the advisory lock held until the
        caller's transaction ends, so that its insert or update takes the slot counted here."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_WINDOW_LOCK,))
        used, today = conn.execute(sql.SQL("""
            SELECT count(*) FILTER (WHERE decided_at > now() - interval '15 minutes'), count(*)
            FROM {table}
            WHERE dry_run = %s AND action = ANY(%s) AND decided_at > now() - interval '1 day'
            """).format(table=identifier(RETWEETS_TABLE)), (self.policy.dry_run, list(SPENT_ACTIONS))).fetchone()
        if used >= self.policy.max_per_15min:
            return f"local_rate_limit: {used} in the last 15 min (max {self.policy.max_per_15min})"
        if today >= self.policy.max_per_day:
            return f"daily_cap: {today} in the last 24 h (X_RETWEETS_PER_DAY={self.policy.max_per_day})"
        return None

    # --- the review queue's answers -------------------------------------------------------------

    def settle_review(self, approved: Sequence[Candidate], rejected: Sequence[int], expired: Sequence[int],
                      reviewer: str | None, expired_reason: str = "expired: no answer in time") -> list[RetweetResult]:
        """Settle the rows `awaiting_review` a review answered: `approved` candidates take the
        budget like any retweet (`would_retweet` in a dry run; live, `pending`, then re-read from
        X and sent, most probable first), `rejected` ones become `rejected`, unanswered ones
        `expired`; each records `reviewer`. A row no longer awaiting review (settled by an earlier
        answer) is left as it is and comes back `already_decided`."""
        results: list[RetweetResult] = []
        with connect(self.settings) as conn:
            ensure_retweets_table(conn)
            for tweet_ids, action, reason, who in ((rejected, "rejected", f"rejected by {reviewer}", reviewer),
                                                   (expired, "expired", expired_reason, None)):
                for tweet_id in tweet_ids:
                    results.append(self._settle(conn, tweet_id, action, reason, who))
            for candidate in sorted(approved, key=lambda c: -c.ai_probability):
                with conn.transaction():
                    action, reason = ("would_retweet" if self.policy.dry_run else "pending"), f"approved by {reviewer}"
                    refused = self._over_budget(conn)
                    if refused:
                        action, reason = "skipped", f"{refused} (approved by {reviewer})"
                    elif not self.policy.dry_run and time.time() < self._paused_until:
                        action, reason = "skipped", f"x_rate_limit: paused until {_utc(self._paused_until)}"
                    result = self._settle(conn, candidate.tweet_id, action, reason, reviewer)
                results.append(replace(result, domains=candidate.domains,
                                                   candidate=candidate if result.action == "pending" else None))
        return self.send(results)

    def _settle(self, conn: psycopg.Connection, tweet_id: int, action: Action, reason: str,
                reviewer: str | None) -> RetweetResult:
        """Turn a row `awaiting_review` into `action`, now (the budget counts from this moment)."""
        updated = conn.execute(sql.SQL("""
            UPDATE {table} SET action = %s, reason = %s, reviewed_by = %s, reviewed_at = now(), decided_at = now()
            WHERE tweet_id = %s AND action = 'awaiting_review'""").format(table=identifier(RETWEETS_TABLE)),
            (action, reason, reviewer, tweet_id)).rowcount
        if not updated:
            return RetweetResult(tweet_id, "already_decided", "no longer awaiting review")
        return RetweetResult(tweet_id, action, reason)

    def _complete(self, conn: psycopg.Connection, tweet_id: int, action: Action, reason: str,
                  response: str | None) -> None:
        """Settle a pending row with X's answer."""
        conn.execute(sql.SQL("""
            UPDATE {table} SET action = %s, reason = %s, response = %s, completed_at = now()
            WHERE tweet_id = %s AND action = 'pending'""").format(table=identifier(RETWEETS_TABLE)),
            (action, reason, response, tweet_id))

    # --- X ------------------------------------------------------------------------------------

    def _account(self) -> tweepy.Client:
        """The client, built and checked once: GET /2/users/me must name the access token's user."""
        if self._client is not None:
            return self._client
        assert self._client_factory is not None, "live mode without a client factory"
        client = self._client_factory()
        try:
            me = client.get_me(user_auth=True).data
        except tweepy.TooManyRequests as exc:
            wait = x_api._rate_limit_wait(exc.response.headers)
            self._paused_until = time.time() + (wait if wait > 0 else X_PAUSE_WITHOUT_RESET)
            raise RetweetError(f"X rate-limited GET /2/users/me (429): retweets paused until "
                               f"{_utc(self._paused_until)}") from exc
        except tweepy.HTTPException as exc:
            raise RetweetError(f"X refused GET /2/users/me ({exc.response.status_code}): check X_API_KEY, "
                               f"X_API_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET. {exc}") from exc
        except requests.RequestException as exc:
            raise RetweetError(f"cannot reach the X API to identify the account: {exc}") from exc
        # tweepy posts to /2/users/<the access token's numeric prefix>/retweets
        token_user = (client.access_token or "").partition("-")[0]
        if token_user != str(me.id):
            raise RetweetError(f"X_ACCESS_TOKEN belongs to user id {token_user!r}, but X says the "
                               f"credentials are @{me.username} ({me.id}): use that account's token.")
        log.info("retweeting as @%s (user id %s)", me.username, me.id)
        self._client = client
        return client

    def _confirm(self, client: tweepy.Client, result: RetweetResult) -> tuple[Action, str, str | None]:
        """Re-read the tweet from X: `pending` (go on) if X confirms the text the classifier scored,
        the author and links the policy accepts; else `skipped` (or `failed`) with the reason."""
        candidate = result.candidate
        if candidate is None:  # a decision without its candidate cannot be confirmed
            return "skipped", "x_unconfirmed: no candidate to compare", None
        try:
            tweet = x_api.lookup_tweet(client, result.tweet_id)
        except tweepy.TooManyRequests as exc:
            wait = x_api._rate_limit_wait(exc.response.headers)
            self._paused_until = time.time() + (wait if wait > 0 else X_PAUSE_WITHOUT_RESET)
            return "skipped", f"x_rate_limit: tweet lookup 429, paused until {_utc(self._paused_until)}", None
        except tweepy.Unauthorized as exc:
            raise RetweetError("X rejected the account's credentials (401) while reading tweet "
                               f"{result.tweet_id}: check X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET") from exc
        except tweepy.HTTPException as exc:
            return "failed", f"x_lookup_refused: {exc.response.status_code}", exc.response.text
        except requests.RequestException as exc:
            return "failed", f"x_unreachable: {type(exc).__name__} during the tweet lookup", str(exc)
        if tweet is None:
            return "skipped", "x_not_found: X does not return this tweet", None
        if tweet.text != candidate.text:
            return "skipped", "x_differs: text (the classifier scored another text than X has)", None
        if (tweet.author_handle or "").lower() != (candidate.author_handle or "").lower():
            return "skipped", f"x_differs: author (X says @{tweet.author_handle})", None
        ok, reason = eligible(tuple(extract_urls(tweet)), self.policy)
        if not ok:
            return "skipped", f"x_says: {reason}", None
        return "pending", reason, None

    def _send(self, client: tweepy.Client, tweet_id: int) -> tuple[Action, str, str | None]:
        """(action, reason, X's answer) of one POST /2/users/:id/retweets."""
        try:
            response = client.retweet(tweet_id)
        except tweepy.TooManyRequests as exc:
            wait = x_api._rate_limit_wait(exc.response.headers)
            self._paused_until = time.time() + (wait if wait > 0 else X_PAUSE_WITHOUT_RESET)
            log.warning("X rate-limited retweets (429): pausing until %s", _utc(self._paused_until))
            return "failed", f"x_rate_limit: 429, paused until {_utc(self._paused_until)}", exc.response.text
        except tweepy.Unauthorized as exc:
            raise RetweetError("X rejected the account's credentials (401) while retweeting "
                               f"{tweet_id}: check X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET") from exc
        except tweepy.HTTPException as exc:
            log.warning("X refused to retweet %d (%d): %s", tweet_id, exc.response.status_code, exc)
            return "failed", f"x_refused: {exc.response.status_code}", exc.response.text
        except requests.RequestException as exc:
            log.warning("X could not be reached to retweet %d: %s", tweet_id, exc)
            return "failed", f"x_unreachable: {type(exc).__name__} (the retweet may have happened)", str(exc)
        answer = json.dumps(response.data)
        if not (response.data or {}).get("retweeted"):
            return "failed", "x_not_retweeted", answer
        log.info("retweeted %d", tweet_id)
        return "retweeted", "retweeted", answer
