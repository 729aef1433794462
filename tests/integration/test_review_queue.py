"""The retweet review queue through the real Airflow: candidates shown in a Human-in-the-loop
request, a reviewer's answer through Airflow's REST API (as the Required Actions page sends
it), and the decisions recorded in `retweets`; unanswered candidates expire."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from psycopg import sql

from ai_tweets.airflow_api import AirflowClient, AirflowError
from ai_tweets.retweet import SPENT_ACTIONS, Candidate, Retweeter, RetweetPolicy
from ai_tweets.review import tweet_id_of
from ai_tweets.schema import Tweet, TweetUrl
from ai_tweets.settings import environment
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import AI_TWEETS_TABLE, CLASSIFY_TABLES, RETWEETS_TABLE, TWEET_URLS_TABLE, URL_COLUMNS, identifier
from ai_tweets.urls import extract_urls

pytestmark = pytest.mark.usefixtures("local_stack")

DAG = "review_retweets"
READING_SECONDS = 5


@pytest.fixture
def client(settings) -> Iterator[AirflowClient]:
    client = AirflowClient(settings.airflow_url, "admin", environment().get("AIRFLOW_ADMIN_PASSWORD", ""))
    client.wait_for_dags({DAG})
    client.unpause(DAG)
    yield client
    # A run still waiting for a person (a failed test) would hold the next one (one run at a time).
    for run in client._request("GET", f"/api/v2/dags/{DAG}/dagRuns?state=running&state=queued")["dag_runs"]:
        client.mark_failed(DAG, run["dag_run_id"])


@pytest.fixture
def classified(settings) -> Iterator[Callable[..., Candidate]]:
    """AI tweets as the classify stage stores them (their rows are deleted afterwards)."""
    ids: list[int] = []

    def store(text: str, link: str, probability: float, author: str = "ml_news") -> Candidate:
        tweet_id = random.randint(10**17, 10**18 - 1)
        ids.append(tweet_id)
        tweet = Tweet(id=tweet_id, text=f"{text} https://t.co/x{tweet_id}", created_at=datetime.now(UTC),
                      author_handle=author, urls=(TweetUrl(f"https://t.co/x{tweet_id}", link),))
        urls = extract_urls(tweet)
        with connect(settings) as conn:
            ensure_tables(conn, *CLASSIFY_TABLES)
            conn.execute(sql.SQL("INSERT INTO {t} (tweet_id, text, author_handle, created_at, ai_probability, "
                                 "model_name) VALUES (%s, %s, %s, %s, %s, 'review-test')")
                         .format(t=identifier(AI_TWEETS_TABLE)),
                         (tweet_id, tweet.text, author, tweet.created_at, probability))
            for url in urls:
                record = {"tweet_id": tweet_id, **{c: getattr(url, c) for c in URL_COLUMNS if c != "tweet_id"}}
                conn.execute(sql.SQL("INSERT INTO {t} ({c}) VALUES ({v})").format(
                    t=identifier(TWEET_URLS_TABLE), c=sql.SQL(", ").join(map(sql.Identifier, record)),
                    v=sql.SQL(", ").join(sql.Placeholder() * len(record))), list(record.values()))
        return Candidate(tweet_id, author, probability, tuple(urls), tweet.text)

    yield store
    with connect(settings, autocommit=True) as conn:
        for table in (RETWEETS_TABLE, AI_TWEETS_TABLE):
            conn.execute(sql.SQL("DELETE FROM {t} WHERE tweet_id = ANY(%s)").format(t=identifier(table)), (ids,))


def rows(settings, ids: list[int]) -> dict[int, tuple]:
    with connect(settings) as conn:
        return {r[0]: r[1:] for r in conn.execute(sql.SQL(
            "SELECT tweet_id, action, reason, reviewed_by FROM {t} WHERE tweet_id = ANY(%s)")
            .format(t=identifier(RETWEETS_TABLE)), (ids,))}


def room_in_dry_run_window(settings) -> bool:
    with connect(settings) as conn:
        used = conn.execute(sql.SQL("SELECT count(*) FROM {t} WHERE dry_run AND action = ANY(%s) AND decided_at > "
                                    "now() - interval '15 minutes'").format(t=identifier(RETWEETS_TABLE)),
                            (list(SPENT_ACTIONS),)).fetchone()[0]
    return used < settings.retweet.max_per_15min


def request_of(client: AirflowClient, run_id: str, timeout: float = 300) -> dict:
    """The review's request, once the task waits for a person (as the Required Actions page
    lists it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.task_instance(DAG, run_id, "review", map_index=0)["state"] == "awaiting_input":
                # A person reads before answering. An answer within a second of the task parking
                # (before the scheduler took in the executor's report of that) fails the try on
                # Airflow 3.3.2: "finished with state success, but the task instance's state
                # attribute is queued"; the retry asks again.
                time.sleep(READING_SECONDS)
                return client.hitl_detail(DAG, run_id, "review", map_index=0)
            problem = "not waiting yet"
        except AirflowError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"no review request within {timeout:.0f} s: {problem}; "
                                 f"{client.task_states(DAG, run_id)}")
        time.sleep(3)


def test_a_reviewer_chooses_in_airflow_and_each_decision_is_recorded_with_who_made_it(settings, client, classified):
    good = classified("A new open-weights LLM for code, paper and weights", "https://arxiv.org/abs/2601.1", 0.97)
    meh = classified("Our AI webinar, sign up now", "https://example.com/webinar", 0.81, author="promo_ai")
    other = classified("Diffusion models explained", "https://github.com/a/diffusion", 0.88)
    mine = [good.tweet_id, meh.tweet_id, other.tweet_id]
    Retweeter(settings, RetweetPolicy(dry_run=True, review=True)).process([good, meh, other])
    assert {action for action, _, _ in rows(settings, mine).values()} == {"awaiting_review"}

    run = client.trigger(DAG, {"response_minutes": 30})
    request = request_of(client, run)
    shown = {tweet_id_of(option): option for option in request["options"]}
    assert set(mine) <= set(shown), "every candidate awaiting review is an option"
    assert request["multiple"] is True and request["subject"].startswith("Retweet which of these")
    body = request["body"]
    assert "P(AI) 0.97" in body and "@promo\\_ai" in body and "github\\.com/a/diffusion" in body
    assert body.index(str(good.tweet_id)) < body.index(str(other.tweet_id)) < body.index(str(meh.tweet_id))
    room = room_in_dry_run_window(settings)

    client.respond(DAG, run, "review", [shown[good.tweet_id]], map_index=0)
    client.wait(DAG, run, timeout=600)
    assert client.task_instance(DAG, run, "review", map_index=0)["try_number"] == 1, "one request, answered once"
    decided = rows(settings, mine)
    assert decided[good.tweet_id] == (("would_retweet", "approved by admin", "admin") if room else
                                      ("skipped", decided[good.tweet_id][1], "admin"))
    assert "approved by admin" in decided[good.tweet_id][1]
    assert decided[meh.tweet_id] == decided[other.tweet_id] == ("rejected", "rejected by admin", "admin")


def test_candidates_nobody_answers_for_expire_unretweeted(settings, client, classified):
    late = classified("Attention is all you need, revisited", "https://arxiv.org/abs/2601.2", 0.93)
    Retweeter(settings, RetweetPolicy(dry_run=True, review=True)).process([late])
    run = client.trigger(DAG, {"response_minutes": 1})
    assert str(late.tweet_id) in request_of(client, run)["body"]
    client.wait(DAG, run, timeout=600)  # the scheduler takes the defaults (none) once the minute has passed
    assert rows(settings, [late.tweet_id])[late.tweet_id] == ("expired", "expired: no answer in 1 minute(s)", None)
    answer = client.hitl_detail(DAG, run, "review", map_index=0)
    assert answer["chosen_options"] == [] and not answer.get("responded_by_user")
