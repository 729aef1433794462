"""The retweet action against the fake X API and the real Postgres of the local stack.

The `retweets` table is shared, so every test uses random 18-digit tweet ids of its own and
deletes its rows afterwards. The 15-minute budget is global too: tests that depend on it set
their limit relative to what is already used.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import tweepy
from psycopg import sql

from ai_tweets import x_api
from ai_tweets.retweet import (
    RETWEETS_TABLE,
    SPENT_ACTIONS,
    X_RETWEETS_PER_15_MIN,
    Candidate,
    Retweeter,
    RetweetError,
    RetweetPolicy,
    XCredentials,
    ensure_retweets_table,
    user_client,
)
from ai_tweets.schema import Tweet, TweetUrl
from ai_tweets.storage import connect
from stackbase.settings import SettingsError
from tests.fakes.fake_x_api import ME_PATH, FakeXApi, v2_tweet

pytestmark = pytest.mark.usefixtures("local_stack")

RETWEET_PATH = "/2/users/1000/retweets"  # the fake's account is user 1000
TABLE = sql.Identifier(RETWEETS_TABLE)
CREDENTIALS = XCredentials("consumer-key", "consumer-secret", "1000-access-token", "access-token-secret")
TEXT, AUTHOR = "An AI post", "ml_news"
_RUNNING: list[FakeXApi] = []  # the fakes of the running test: `candidate` publishes its tweet on them


@contextmanager
def fake_x(**options) -> Iterator[FakeXApi]:
    with FakeXApi(**options) as fake:
        _RUNNING.append(fake)
        try:
            yield fake
        finally:
            _RUNNING.remove(fake)


@pytest.fixture
def api() -> Iterator[FakeXApi]:
    with fake_x() as fake:
        yield fake


@pytest.fixture
def new_id(settings) -> Iterator[Callable[[], int]]:
    """Random tweet ids of this test; their rows are deleted afterwards."""
    ids: list[int] = []

    def make() -> int:
        ids.append(random.randint(10**17, 10**18 - 1))
        return ids[-1]

    yield make
    with connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DELETE FROM {table} WHERE tweet_id = ANY(%s)").format(table=TABLE), (ids,))


def on_x(tweet_id: int, *expanded: str, text: str = TEXT, author: str = AUTHOR) -> dict:
    """The tweet as X returns it: its text with a t.co link per expanded URL."""
    links = {f"https://t.co/{i}": url for i, url in enumerate(expanded)}
    return v2_tweet(tweet_id, " ".join([text, *links]), username=author, urls=links)


def candidate(tweet_id: int, *expanded: str, probability: float = 0.9, published: bool = True) -> Candidate:
    """A candidate as the stream carried it; also published on the running fake X, unless not."""
    item = on_x(tweet_id, *expanded)
    for fake in _RUNNING if published else ():
        fake.publish(item)
    tweet = Tweet(id=tweet_id, text=item["data"]["text"], created_at=datetime(2026, 5, 1, tzinfo=UTC),
                  author_handle=AUTHOR,
                  urls=tuple(TweetUrl(f"https://t.co/{i}", url) for i, url in enumerate(expanded)))
    return Candidate.from_tweet(tweet, probability)


def live(settings, api: FakeXApi, credentials: XCredentials = CREDENTIALS, **policy) -> Retweeter:
    policy.setdefault("any_domain", not policy.get("allow_domains"))
    return Retweeter(settings, RetweetPolicy(dry_run=False, **policy),
                     client_factory=lambda: user_client(credentials, api.base_url))


def row(settings, tweet_id: int) -> dict | None:
    with connect(settings) as conn:
        ensure_retweets_table(conn)
        cursor = conn.execute(sql.SQL("SELECT action, reason, dry_run, domains, response, author_handle, "
                                      "ai_probability FROM {table} WHERE tweet_id = %s").format(table=TABLE),
                              (tweet_id,))
        found = cursor.fetchone()
        return dict(zip([c.name for c in cursor.description], found, strict=True)) if found else None


def budget(settings, dry_run: bool, needed: int) -> int:
    """A limit that leaves exactly `needed` slots in the current window."""
    with connect(settings) as conn:
        ensure_retweets_table(conn)
        used = conn.execute(sql.SQL("SELECT count(*) FROM {table} WHERE dry_run = %s AND action = ANY(%s) "
                                    "AND decided_at > now() - interval '15 minutes'").format(table=TABLE),
                            (dry_run, list(SPENT_ACTIONS))).fetchone()[0]
    if used + needed > X_RETWEETS_PER_15_MIN:
        pytest.skip(f"{used} retweets in the current window leave no room for this test")
    return used + needed


def posts(api: FakeXApi) -> list:
    return api.requests_to("POST", RETWEET_PATH)


def test_dry_run_calls_no_x_endpoint_and_records_would_retweet(settings, api, new_id, caplog):
    def no_client() -> tweepy.Client:
        raise AssertionError("a dry run must not build an X client")

    retweeter = Retweeter(settings, RetweetPolicy(dry_run=True, max_per_15min=budget(settings, True, 1)),
                          client_factory=no_client)
    good, twitter_only = new_id(), new_id()
    with caplog.at_level(logging.INFO, logger="ai_tweets.retweet"):
        results = retweeter.process([candidate(good, "https://www.arxiv.org/abs/1?utm_source=x"),
                                     candidate(twitter_only, "https://twitter.com/a/status/9")])
    assert [(r.tweet_id, r.action) for r in results] == [(good, "would_retweet"), (twitter_only, "skipped")]
    assert f"would retweet {good} (arxiv.org)" in caplog.messages
    assert row(settings, good) == {
        "action": "would_retweet", "reason": "eligible: arxiv.org", "dry_run": True, "domains": ["arxiv.org"],
        "response": None, "author_handle": AUTHOR, "ai_probability": 0.9}
    assert row(settings, twitter_only)["reason"] == "twitter_links_only"
    assert api.requests == []
    again = retweeter.process([candidate(good, "https://arxiv.org/abs/1")])
    assert [(r.action, r.reason) for r in again] == [("already_decided", "already would_retweet")]


def test_live_mode_retweets_exactly_once(settings, api, new_id):
    tweet_id = new_id()
    retweeter = live(settings, api, max_per_15min=budget(settings, False, 1))
    first = retweeter.process([candidate(tweet_id, "https://arxiv.org/abs/2"),
                               candidate(tweet_id, "https://arxiv.org/abs/2")])  # a duplicate in the batch
    assert [(r.action, r.reason) for r in first] == [("retweeted", "retweeted")]
    second = retweeter.process([candidate(tweet_id, "https://arxiv.org/abs/2")])
    restarted = live(settings, api).process([candidate(tweet_id, "https://arxiv.org/abs/2")])
    assert second[0].action == restarted[0].action == "already_decided"
    assert api.retweets == [("1000", str(tweet_id))]
    assert len(posts(api)) == 1 and posts(api)[0].json() == {"tweet_id": str(tweet_id)}
    assert posts(api)[0].headers["Authorization"].startswith("OAuth ")  # OAuth 1.0a user context
    assert len(api.requests_to("GET", ME_PATH)) == 1  # the restarted Retweeter never got that far
    stored = row(settings, tweet_id)
    assert stored["action"] == "retweeted" and stored["dry_run"] is False
    assert stored["response"] == '{"retweeted": true}'


def test_denied_and_twitter_only_tweets_are_skipped_with_reasons(settings, api, new_id):
    denied, twitter_only, bare, unlisted = new_id(), new_id(), new_id(), new_id()
    retweeter = live(settings, api, deny_domains=("bit.ly",), allow_domains=("arxiv.org", "bit.ly"))
    results = retweeter.process([
        candidate(denied, "https://arxiv.org/abs/3", "https://bit.ly/x"),
        candidate(twitter_only, "https://x.com/a/status/9/photo/1", "https://t.co/unexpanded"),
        candidate(bare),
        candidate(unlisted, "https://medium.com/p/1"),
    ])
    assert [(r.action, r.reason) for r in results] == [
        ("skipped", "denied_domain: bit.ly"), ("skipped", "twitter_links_only"), ("skipped", "no_links"),
        ("skipped", "domain_not_allowed: medium.com")]
    assert [row(settings, i)["reason"] for i in (denied, twitter_only, bare, unlisted)] == [
        r.reason for r in results]
    assert api.requests == []  # not even GET /2/users/me


def test_the_window_stops_after_the_limit_most_probable_first(settings, api, new_id):
    ids = [new_id() for _ in range(5)]
    limit = budget(settings, False, 3)
    batch = [candidate(tweet_id, f"https://arxiv.org/abs/{i}", probability=0.5 + i / 10)
             for i, tweet_id in enumerate(ids)]
    results = live(settings, api, max_per_15min=limit).process(batch)
    assert [r.tweet_id for r in results] == ids  # results keep the given order
    assert [r.action for r in results] == ["skipped", "skipped", "retweeted", "retweeted", "retweeted"]
    assert results[0].reason == f"local_rate_limit: {limit} in the last 15 min (max {limit})"
    assert sorted(int(tweet_id) for _, tweet_id in api.retweets) == sorted(ids[2:])
    # the window lives in the table: a fresh worker finds it full too
    later = live(settings, api, max_per_15min=limit).process([candidate(new_id(), "https://arxiv.org/abs/9")])
    assert later[0].action == "skipped" and later[0].reason.startswith("local_rate_limit")
    assert len(posts(api)) == 3


def test_a_429_is_recorded_and_pauses_until_the_reset_time(settings, api, new_id):
    api.reject_next("retweet", 1, reset_in=2.0)
    first, second, third, after = new_id(), new_id(), new_id(), new_id()
    retweeter = live(settings, api, max_per_15min=budget(settings, False, 3))
    results = retweeter.process([candidate(first, "https://arxiv.org/abs/1", probability=0.99),
                                 candidate(second, "https://arxiv.org/abs/2", probability=0.98),
                                 candidate(third, "https://arxiv.org/abs/3", probability=0.97)])
    refused = posts(api)
    assert len(refused) == 1 and refused[0].status == 429  # no retry storm
    reset = int(refused[0].response_headers["x-rate-limit-reset"])
    assert results[0].action == "failed" and results[0].reason.startswith("x_rate_limit: 429, paused until")
    assert [r.action for r in results[1:]] == ["skipped", "skipped"]
    assert all(r.reason.startswith("x_rate_limit: paused until") for r in results[1:])
    refused_row = row(settings, first)
    assert refused_row["action"] == "failed" and "Too Many Requests" in refused_row["response"]

    time.sleep(max(0.0, reset - time.time()) + 0.2)
    assert retweeter.process([candidate(after, "https://arxiv.org/abs/4")])[0].action == "retweeted"
    assert api.retweets == [("1000", str(after))]
    assert posts(api)[-1].time >= reset
    # failed and skipped tweets are decided: they are not sent again
    again = retweeter.process([candidate(first, "https://arxiv.org/abs/1")])
    assert again[0].action == "already_decided"
    assert len(posts(api)) == 2


def test_a_429_without_reset_time_pauses_a_whole_window(settings, new_id):
    with fake_x(retweet_limit=0) as api:  # its 429 carries no rate-limit headers
        retweeter = live(settings, api, max_per_15min=budget(settings, False, 2))
        results = retweeter.process([candidate(new_id(), "https://arxiv.org/abs/1", probability=0.9),
                                     candidate(new_id(), "https://arxiv.org/abs/2", probability=0.8)])
        assert [r.action for r in results] == ["failed", "skipped"]
        paused_until = datetime.fromisoformat(results[1].reason.removeprefix("x_rate_limit: paused until "))
        assert 14 * 60 < (paused_until - datetime.now(UTC)).total_seconds() <= 15 * 60
        assert len(posts(api)) == 1


def test_a_leftover_pending_row_blocks_a_second_attempt(settings, api, new_id):
    tweet_id = new_id()

    class Crash(BaseException):
        """The process dies between X's answer and the update of the row."""

    class CrashAfterPosting(tweepy.Client):
        def retweet(self, tweet_id, **kwargs):
            super().retweet(tweet_id, **kwargs)
            raise Crash

    def crashing_client() -> tweepy.Client:
        return x_api._client(CrashAfterPosting, None, api.base_url, consumer_key=CREDENTIALS.api_key,
                             consumer_secret=CREDENTIALS.api_secret, access_token=CREDENTIALS.access_token,
                             access_token_secret=CREDENTIALS.access_token_secret)

    retweeter = Retweeter(settings, RetweetPolicy(dry_run=False, max_per_15min=budget(settings, False, 1),
                                                  any_domain=True), client_factory=crashing_client)
    with pytest.raises(Crash):
        retweeter.process([candidate(tweet_id, "https://arxiv.org/abs/5")])
    assert row(settings, tweet_id)["action"] == "pending"

    results = live(settings, api).process([candidate(tweet_id, "https://arxiv.org/abs/5")])
    assert [(r.action, r.reason) for r in results] == [("already_decided", "already pending")]
    assert api.retweets == [("1000", str(tweet_id))] and len(posts(api)) == 1


def test_x_errors_are_recorded_without_retrying(settings, api, new_id):
    unavailable, fine = new_id(), new_id()
    api.reject_next("retweet", 1, status=503)
    results = live(settings, api, max_per_15min=budget(settings, False, 2)).process(
        [candidate(unavailable, "https://arxiv.org/abs/1", probability=0.9),
         candidate(fine, "https://arxiv.org/abs/2", probability=0.8)])
    assert [(r.action, r.reason) for r in results] == [("failed", "x_refused: 503"),
                                                       ("retweeted", "retweeted")]
    assert api.retweets == [("1000", str(fine))] and len(posts(api)) == 2


def test_an_unreachable_x_is_recorded_as_failed_not_retried(settings, new_id):
    reached, unreached = new_id(), new_id()
    clients: list[tweepy.Client] = []

    def client() -> tweepy.Client:
        clients.append(user_client(CREDENTIALS, api.base_url))
        return clients[-1]

    with fake_x() as api:
        policy = RetweetPolicy(dry_run=False, max_per_15min=budget(settings, False, 2), any_domain=True)
        retweeter = Retweeter(settings, policy, client_factory=client)
        assert retweeter.process([candidate(reached, "https://arxiv.org/abs/1")])[0].action == "retweeted"
    clients[0].session.close()  # the fake's handlers would still answer on a kept-alive connection
    results = retweeter.process([candidate(unreached, "https://arxiv.org/abs/2")])  # the server is gone
    assert results[0].action == "failed" and results[0].reason.startswith("x_unreachable: ConnectionError")
    assert row(settings, unreached)["action"] == "failed"


def test_rejected_credentials_stop_with_a_clear_error(settings, api, new_id):
    tweet_id = new_id()
    api.reject_next("retweet", 1, status=401)
    with pytest.raises(RetweetError, match="X_ACCESS_TOKEN"):
        live(settings, api, max_per_15min=budget(settings, False, 1)).process(
            [candidate(tweet_id, "https://arxiv.org/abs/1")])
    assert row(settings, tweet_id)["action"] == "failed"  # not left pending

    api.reject_next("me", 1, status=401)
    with pytest.raises(RetweetError, match="GET /2/users/me"):
        live(settings, api).process([candidate(new_id(), "https://arxiv.org/abs/2")])


def test_an_access_token_of_another_account_is_refused_before_anything_is_recorded(settings, api, new_id):
    tweet_id = new_id()
    other = XCredentials("consumer-key", "consumer-secret", "2000-access-token", "access-token-secret")
    expected = r"X_ACCESS_TOKEN belongs to user id '2000'.*@ai_tweets_bot \(1000\)"
    with pytest.raises(RetweetError, match=expected):
        live(settings, api, other).process([candidate(tweet_id, "https://arxiv.org/abs/1")])
    assert row(settings, tweet_id) is None and posts(api) == []


def test_live_mode_without_credentials_names_the_variable(settings):
    with pytest.raises(SettingsError, match="^X_API_KEY is not set"):
        Retweeter(settings, RetweetPolicy(dry_run=False, any_domain=True), env={})
    with pytest.raises(SettingsError, match="^X_ACCESS_TOKEN_SECRET is not set"):
        Retweeter(settings, RetweetPolicy(dry_run=False, any_domain=True),
                  env={"X_API_KEY": "k", "X_API_SECRET": "s", "X_ACCESS_TOKEN": "1-t"})
    assert Retweeter(settings, RetweetPolicy(dry_run=True), env={}).policy.dry_run  # a dry run needs none


# --- X's own word ----------------------------------------------------------------------------


def test_a_tweet_id_x_does_not_confirm_is_never_retweeted(settings, api, new_id):
    """A message injected into Kafka names tweets as the attacker likes: X has no such tweet, or
    it has another text, author or links than the message said. Nothing is retweeted."""
    unknown, other_text, other_author, other_link, genuine = (new_id() for _ in range(5))
    api.publish(on_x(other_text, "https://arxiv.org/abs/1", text="Buy followers now"),
                on_x(other_author, "https://arxiv.org/abs/2", author="someone_else"),
                on_x(other_link, "https://evil.example/phish"))
    retweeter = live(settings, api, max_per_15min=budget(settings, False, 5), allow_domains=("arxiv.org",))
    results = retweeter.process([
        candidate(unknown, "https://arxiv.org/abs/0", published=False),
        candidate(other_text, "https://arxiv.org/abs/1", published=False),
        candidate(other_author, "https://arxiv.org/abs/2", published=False),
        candidate(other_link, "https://arxiv.org/abs/3", published=False),
        candidate(genuine, "https://arxiv.org/abs/4"),
    ])
    assert [(r.action, r.reason) for r in results] == [
        ("skipped", "x_not_found: X does not return this tweet"),
        ("skipped", "x_differs: text (the classifier scored another text than X has)"),
        ("skipped", "x_differs: author (X says @someone_else)"),
        ("skipped", "x_says: domain_not_allowed: evil.example"),
        ("retweeted", "retweeted")]
    assert api.retweets == [("1000", str(genuine))], "only the tweet X confirmed"
    lookups = [r.path for r in api.requests if r.path.startswith("/2/tweets/")]
    assert sorted(lookups) == sorted(f"/2/tweets/{i}" for i in (unknown, other_text, other_author, other_link,
                                                                genuine))
    assert all(r.headers["Authorization"].startswith("OAuth ") for r in api.requests)
    assert [row(settings, i)["action"] for i in (unknown, other_text, other_author, other_link)] == ["skipped"] * 4


def test_the_daily_cap_holds_across_workers(settings, api, new_id):
    with connect(settings) as conn:
        ensure_retweets_table(conn)
        today = conn.execute(sql.SQL("SELECT count(*) FROM {table} WHERE NOT dry_run AND action <> 'skipped' "
                                     "AND decided_at > now() - interval '1 day'").format(table=TABLE)).fetchone()[0]
    ids = [new_id() for _ in range(3)]
    cap = today + 1
    results = live(settings, api, max_per_15min=budget(settings, False, 3), max_per_day=cap).process(
        [candidate(tweet_id, f"https://arxiv.org/abs/{i}", probability=0.9 - i / 10) for i, tweet_id in enumerate(ids)])
    assert [r.action for r in results] == ["retweeted", "skipped", "skipped"]
    assert results[1].reason == f"daily_cap: {cap} in the last 24 h (X_RETWEETS_PER_DAY={cap})"
    later = live(settings, api, max_per_15min=X_RETWEETS_PER_15_MIN, max_per_day=cap).process([candidate(new_id(), "https://arxiv.org/abs/9")])
    assert later[0].reason.startswith("daily_cap:") and len(posts(api)) == 1


def test_review_mode_sends_nothing_until_a_person_approves_and_records_who_decided(settings, api, new_id):
    approved, rejected, unanswered, denied = new_id(), new_id(), new_id(), new_id()
    retweeter = live(settings, api, review=True, deny_domains=("spam.example",),
                     max_per_15min=budget(settings, False, 1))
    candidates = [candidate(approved, "https://arxiv.org/abs/5", probability=0.7),
                  candidate(rejected, "https://github.com/a/b", probability=0.95),
                  candidate(unanswered, "https://arxiv.org/abs/6"),
                  candidate(denied, "https://spam.example/x")]
    results = retweeter.process(candidates)
    assert {r.tweet_id: r.action for r in results} == {
        approved: "awaiting_review", rejected: "awaiting_review", unanswered: "awaiting_review", denied: "skipped"}
    assert api.requests == []  # not even the account check: nothing is sent before a person says so
    assert row(settings, approved)["reason"] == "eligible: arxiv.org"

    settled = live(settings, api, review=True, max_per_15min=budget(settings, False, 1)).settle_review(
        [candidates[0]], [rejected], [unanswered], "alice")
    assert {r.tweet_id: (r.action, r.reason) for r in settled} == {
        approved: ("retweeted", "retweeted"), rejected: ("rejected", "rejected by alice"),
        unanswered: ("expired", "expired: no answer in time")}
    assert api.retweets == [("1000", str(approved))]  # re-read from X, then retweeted
    with connect(settings) as conn:
        reviewed = dict(conn.execute(sql.SQL("SELECT tweet_id, reviewed_by FROM {table} WHERE tweet_id = ANY(%s) "
                                             "AND reviewed_at IS NOT NULL").format(table=TABLE),
                                     ([approved, rejected, unanswered, denied],)).fetchall())
    assert reviewed == {approved: "alice", rejected: "alice", unanswered: None}

    again = live(settings, api, review=True).settle_review([candidates[0]], [rejected], [], "bob")
    assert {r.action for r in again} == {"already_decided"}  # an answer settles a candidate once
    assert row(settings, rejected)["reason"] == "rejected by alice" and len(posts(api)) == 1


def test_automatic_live_retweets_only_above_the_versions_threshold_for_the_precision_on_gold(settings, api, new_id):
    """Without review, a live retweet needs the scoring version's threshold for
    X_RETWEET_MIN_PRECISION on gold labels (from `model_quality`), and a probability that reaches it."""
    import dataclasses

    from ai_tweets.precision import precision_curve
    from ai_tweets.train import record_quality

    model = dataclasses.replace(settings, model_name=f"retweet-test-{random.randint(0, 10**9)}")
    # version 1 was judged on gold: 10 of its 11 tweets at or above 0.8 are AI (0.91); version 2 on weak labels
    curve = precision_curve([0.99] * 6 + [0.9] * 3 + [0.8] * 2 + [0.5] * 10, [1] * 10 + [0] + [1, 0] * 5)
    for version, gold in (("1", curve), ("2", None)):  # as the train stage records a version
        record_quality(model, version, "gold" if gold else "weak", "test", {"f1": 0.9, "precision": 0.9, "recall": 0.9},
                       {"train_gold": 21}, 0.5, {"promoted": True, "reason": "test"}, gold)
    try:
        retweeter = Retweeter(model, RetweetPolicy(dry_run=False, any_domain=True, min_precision=0.9,
                                                   max_per_15min=budget(settings, False, 1)),
                              client_factory=lambda: user_client(CREDENTIALS, api.base_url))
        sure, unsure, unjudged = new_id(), new_id(), new_id()
        results = retweeter.process([
            dataclasses.replace(candidate(sure, "https://arxiv.org/abs/7", probability=0.85), model_version="1"),
            dataclasses.replace(candidate(unsure, "https://arxiv.org/abs/8", probability=0.6), model_version="1"),
            dataclasses.replace(candidate(unjudged, "https://arxiv.org/abs/9", probability=0.99), model_version="2")])
        reasons = {r.tweet_id: (r.action, r.reason) for r in results}
        assert reasons[sure] == ("retweeted", "retweeted")
        assert reasons[unsure] == ("skipped", "below_gold_threshold: P(AI) 0.600 < 0.800 (precision 0.9 on gold "
                                              "labels)")
        assert reasons[unjudged][0] == "skipped"
        assert reasons[unjudged][1].startswith("no_gold_threshold: version 2 has no threshold with precision 0.9")
        assert api.retweets == [("1000", str(sure))]
    finally:
        with connect(model) as conn:
            conn.execute("DELETE FROM model_quality WHERE model_name = %s", (model.model_name,))
