"""The precision spot-check on the real stack: accepted retweets of a test model version are
sampled at random into a Label Studio project of their own (never one twice, nothing else of
the stream's), a simulated annotator labels them through Label Studio's API as a person
would, and the pull turns the labels into the precision with its 95 % Wilson interval."""

from __future__ import annotations

import math
import random
import uuid

import pytest
from conftest import ROOT

from ai_tweets import spot_check
from ai_tweets.annotation import label_studio_client
from ai_tweets.dataset import normalized_text
from ai_tweets.quality import SimulatedAnnotator
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import AI, NOT_AI, SPOT_CHECK_TABLES
from stackbase.settings import environment, load_settings

pytestmark = pytest.mark.usefixtures("local_stack")

ACCEPTED, SKIPPED = 25, 5  # retweets the policy accepted, and ones it did not (never sampled)
NOT_ABOUT_AI = {3, 8, 15, 21}  # of the accepted, the ones the annotator calls Not AI
UNANSWERED = 11  # the annotator skips this one


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval by its quadratic: the p with (k/n - p)^2 = z^2 p (1 - p) / n."""
    z2, p_hat = 1.959963984540054 ** 2, k / n
    a, b, c = 1 + z2 / n, -(2 * p_hat + z2 / n), p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.fixture(scope="module")
def seeded(local_stack):
    """AI tweets of a test model version, each with a retweet decision; removed afterwards."""
    settings = load_settings(environment(ROOT / ".env"))
    version = f"spot-test-{uuid.uuid4().hex[:8]}"
    ids = random.sample(range(8_700_000_000_000_000_000, 8_800_000_000_000_000_000), ACCEPTED + SKIPPED)
    texts = {tweet_id: f"Spot-check {version} tweet {n}: {'a recipe for soup' if n in NOT_ABOUT_AI else 'LLM evals'}"
             for n, tweet_id in enumerate(ids)}
    with connect(settings) as conn:
        ensure_tables(conn, *SPOT_CHECK_TABLES)
        conn.cursor().executemany(
            "INSERT INTO ai_tweets (tweet_id, text, author_handle, created_at, ai_probability, model_name, "
            "model_version) VALUES (%s, %s, 'spot_tester', now(), 0.9, 'spot-test', %s)",
            [(tweet_id, texts[tweet_id], version) for tweet_id in ids])
        conn.cursor().executemany(
            "INSERT INTO tweet_urls (tweet_id, canonical_url, url, expanded_url, domain, is_twitter) "
            "VALUES (%s, %s, 'https://t.co/x', %s, 'example.org', false)",
            [(tweet_id, f"https://example.org/{tweet_id}", f"https://example.org/{tweet_id}?a=1") for tweet_id in ids])
        conn.cursor().executemany(
            "INSERT INTO retweets (tweet_id, action, reason, dry_run, ai_probability, domains) "
            "VALUES (%s, %s, 'test', true, 0.9, '{example.org}')",
            [(tweet_id, "would_retweet" if n < ACCEPTED - 2 else "retweeted" if n < ACCEPTED else "skipped")
             for n, tweet_id in enumerate(ids)])
    title = f"Retweet spot-check test-{uuid.uuid4().hex[:6]}"
    yield settings, version, ids, texts, title
    client = label_studio_client(settings)
    for project in client.projects.list(title=title):
        if project.title == title:
            client.projects.delete(id=project.id)
    with connect(settings) as conn:
        conn.execute("DELETE FROM spot_checks WHERE tweet_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM retweets WHERE tweet_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))  # tweet_urls cascade
        spot_check.refresh_precision(conn)


def spot_tasks(settings, project_id: int) -> list:
    return list(label_studio_client(settings).tasks.list(project=project_id, fields="all", page_size=500))


def test_accepted_retweets_are_sampled_once_into_their_own_project(seeded):
    settings, version, ids, texts, title = seeded
    first = spot_check.push_spot_checks(settings, 20, version, title=title)
    assert (first["sampled"], first["pushed"]) == (20, 20)
    second = spot_check.push_spot_checks(settings, 20, version, title=title)
    assert (second["sampled"], second["pushed"], second["project_id"]) == (ACCEPTED - 20, ACCEPTED - 20,
                                                                            first["project_id"])
    assert spot_check.push_spot_checks(settings, 20, version, title=title)["sampled"] == 0, "never one twice"
    tasks = spot_tasks(settings, first["project_id"])
    tweet_ids = [int(task.data["tweet_id"]) for task in tasks]
    assert sorted(tweet_ids) == sorted(ids[:ACCEPTED]), "every accepted retweet once, no skipped one"
    task = next(t for t in tasks if int(t.data["tweet_id"]) == ids[0])
    assert task.data["kind"] == spot_check.TASK_KIND and task.data["text"] == texts[ids[0]]
    assert task.data["links"] == f"https://example.org/{ids[0]}?a=1" and task.data["author"] == "@spot_tester"
    assert not task.predictions and "0.9" not in str(task.data), "people judge the tweet unprimed"
    with connect(settings) as conn:
        recorded = dict(conn.execute("SELECT tweet_id, task_id FROM spot_checks WHERE tweet_id = ANY(%s)",
                                     (ids,)).fetchall())
    assert recorded == {int(t.data["tweet_id"]): t.id for t in tasks}


def test_people_s_labels_give_the_precision_with_its_interval(seeded):
    settings, version, ids, texts, title = seeded
    project_id = spot_check.push_spot_checks(settings, 0, version, title=title)["project_id"]
    answers = {normalized_text(texts[tweet_id]): NOT_AI if n in NOT_ABOUT_AI else AI
               for n, tweet_id in enumerate(ids[:ACCEPTED]) if n != UNANSWERED}
    annotator = SimulatedAnnotator(settings, answers, f"spot-checker-{uuid.uuid4().hex[:6]}@example.org")
    assert annotator.answer(project_id) == {"labeled": ACCEPTED - 1, "skipped": 1}

    report = spot_check.pull_spot_checks(settings, title=title)
    assert (report["tasks"], report["labeled"], report["unlabeled"]) == (ACCEPTED, ACCEPTED - 1, 1)
    labeled, found_ai = ACCEPTED - 1, ACCEPTED - 1 - len(NOT_ABOUT_AI)
    ours = report["precision"][version]
    assert (ours["labeled"], ours["found_ai"]) == (labeled, found_ai)
    assert ours["precision"] == pytest.approx(found_ai / labeled)
    assert (ours["low"], ours["high"]) == pytest.approx(wilson(found_ai, labeled), abs=1e-9)
    assert 0 < ours["low"] < ours["precision"] < ours["high"] < 1
    assert report["precision"]["all"]["labeled"] >= labeled

    with connect(settings) as conn:
        rows = conn.execute("SELECT tweet_id, label, labeled_by FROM spot_checks WHERE tweet_id = ANY(%s)",
                            (ids,)).fetchall()
        stored = conn.execute("SELECT labeled, found_ai, precision, low, high FROM retweet_precision "
                              "WHERE model_version = %s", (version,)).fetchall()
    assert {r[0]: r[1] for r in rows} == {tweet_id: None if n == UNANSWERED else NOT_AI if n in NOT_ABOUT_AI else AI
                                          for n, tweet_id in enumerate(ids[:ACCEPTED])}
    assert {r[2] for r in rows if r[1] is not None} == {annotator.email}, "labeled by a named person"
    assert stored == [(labeled, found_ai, pytest.approx(found_ai / labeled), pytest.approx(ours["low"]),
                       pytest.approx(ours["high"]))]


def test_the_dag_samples_a_version_s_retweets_into_the_spot_check_project(seeded, human_in_the_loop_dag):
    """The daily DAG, triggered through Airflow's REST API for one model version: its accepted
    retweets appear as tasks of the project "Retweet spot-check"; they are removed afterwards."""
    settings = seeded[0]
    version = f"spot-dag-{uuid.uuid4().hex[:8]}"
    ids = random.sample(range(8_800_000_000_000_000_000, 8_900_000_000_000_000_000), 4)
    with connect(settings) as conn:
        conn.cursor().executemany(
            "INSERT INTO ai_tweets (tweet_id, text, author_handle, created_at, ai_probability, model_name, "
            "model_version) VALUES (%s, %s, 'spot_tester', now(), 0.9, 'spot-test', %s)",
            [(tweet_id, f"Spot-check DAG {version} tweet {n}", version) for n, tweet_id in enumerate(ids)])
        conn.cursor().executemany(
            "INSERT INTO retweets (tweet_id, action, reason, dry_run, ai_probability, domains) "
            "VALUES (%s, 'would_retweet', 'test', true, 0.9, '{}')", [(tweet_id,) for tweet_id in ids])
    airflow = human_in_the_loop_dag("spot_check_retweets")
    client = label_studio_client(settings)
    try:
        run = airflow.trigger("spot_check_retweets", {"size": 10, "model_version": version})
        airflow.wait("spot_check_retweets", run, timeout=300)
        assert airflow.task_states("spot_check_retweets", run) == {"pull": "success", "push": "success"}
        project = next(p for p in client.projects.list(title=spot_check.PROJECT_TITLE)
                       if p.title == spot_check.PROJECT_TITLE)
        tasks = {int(t.data["tweet_id"]): t for t in client.tasks.list(project=project.id, fields="task_only",
                                                                        page_size=500)
                 if t.data.get("kind") == spot_check.TASK_KIND}
        assert set(ids) <= set(tasks), "each of the version's accepted retweets is a task"
        assert {tasks[i].data["text"] for i in ids} == {f"Spot-check DAG {version} tweet {n}" for n in range(4)}
    finally:
        with connect(settings) as conn:
            task_ids = [row[0] for row in conn.execute(
                "SELECT task_id FROM spot_checks WHERE tweet_id = ANY(%s) AND task_id IS NOT NULL", (ids,))]
            conn.execute("DELETE FROM spot_checks WHERE tweet_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM retweets WHERE tweet_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))
        for task_id in task_ids:
            client.tasks.delete(id=task_id)
