"""The retweet review queue through the real Airflow: candidates shown in a Human-in-the-loop
request, a reviewer's answer through Airflow's REST API (as the Required Actions page sends
it), and the decisions recorded in `retweets`; unanswered candidates expire."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from browser_helpers import headless_chromium
from psycopg import sql
from stack_control import ROOT

from ai_tweets.airflow_api import AirflowClient
from ai_tweets.retweet import SPENT_ACTIONS, Candidate, Retweeter, RetweetPolicy
from ai_tweets.review import NONE_OPTION, tweet_id_of
from ai_tweets.schema import Tweet, TweetUrl
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import AI_TWEETS_TABLE, CLASSIFY_TABLES, RETWEETS_TABLE, TWEET_URLS_TABLE, URL_COLUMNS, identifier
from ai_tweets.urls import extract_urls
from stackbase.settings import environment

pytestmark = pytest.mark.usefixtures("local_stack")

DAG = "review_retweets"
SCREENSHOT = ROOT / ".local" / "screenshots" / "airflow_review.png"  # the README's is docs/airflow_review.png
READING_SECONDS = 5


@pytest.fixture
def client(human_in_the_loop_dag) -> AirflowClient:
    return human_in_the_loop_dag(DAG)


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


def request_of(client: AirflowClient, run_id: str) -> dict:
    """The review's request once the task waits, answered after a person's reading time."""
    return client.waiting_request(DAG, run_id, "review", map_index=0, reading_seconds=READING_SECONDS)


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
    assert "P(AI) 0.97" in body and "@promo&#95;ai" in body and "(<https://github.com/a/diffusion>)" in body
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


def test_the_reviewer_s_page_shows_each_candidate_as_typed(settings, client, classified, tmp_path):
    """Airflow's Required Actions page of a request, in headless Chromium, as a reviewer sees it."""
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    first = classified("A new open-weights LLM for code (weights_and_paper): *read* it", "https://arxiv.org/abs/2601.7",
                       0.96)
    second = classified("Diffusion models, explained step by step", "https://github.com/a/diffusion_101", 0.87)
    Retweeter(settings, RetweetPolicy(dry_run=True, review=True)).process([first, second])
    run = client.trigger(DAG, {"response_minutes": 30})
    request_of(client, run)
    with headless_chromium(tmp_path / "chromium", 1400, 1300) as driver:
        wait = WebDriverWait(driver, 90)
        driver.get(f"{settings.airflow_url}/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "input")) >= 2)
        user, password = driver.find_elements(By.CSS_SELECTOR, "input")[:2]
        user.send_keys("admin")
        password.send_keys(environment().get("AIRFLOW_ADMIN_PASSWORD", ""))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        driver.get(f"{settings.airflow_url}/dags/{DAG}/runs/{run}/tasks/review/mapped/0/required_actions")
        wait.until(lambda d: "Options" in d.find_element(By.TAG_NAME, "body").text)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Retweet which of these" in text and f"tweet {first.tweet_id}" in text
        assert "A new open-weights LLM for code (weights_and_paper): *read* it" in text, "the text as typed"
        assert "arxiv.org/abs/2601.7" in text and "github.com/a/diffusion_101" in text and "\\" not in text
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
    with Image.open(SCREENSHOT) as image:
        assert max(ImageStat.Stat(image.convert("L")).stddev) > 20, "the screenshot is blank"
    client.respond(DAG, run, "review", [NONE_OPTION], map_index=0)
    client.wait(DAG, run, timeout=600)
    assert {r[0] for r in rows(settings, [first.tweet_id, second.tweet_id]).values()} == {"rejected"}
