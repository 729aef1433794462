"""A precision spot-check of retweets: people label a random sample of what would be retweeted.

The classifier's precision on gold test rows says how it did on the tweets people labeled for
training; the spot-check says how the *retweets* fare, on the live stream, as they happen:

- `push_spot_checks`: a random sample (`SPOT_CHECK_SIZE` per run) of the tweets the retweet
  policy accepted (`retweets` rows `retweeted` or `would_retweet`) and that were never sampled
  becomes tasks of a Label Studio project of its own, "Retweet spot-check" (its own task type:
  the annotate stage's interface and labeling guide, no pre-annotation, no model probability
  shown, so people judge the tweet unprimed). Each sampled tweet is recorded in `spot_checks`
  with the version that called it AI and its probability, so it is sampled once. As in the
  annotate stage, the task id is written after each import and a crash in between heals on the
  next push (tasks are matched back by the `tweet_id` in their data).
- `pull_spot_checks`: the latest submitted annotation of each task (of LABEL_STUDIO_ANNOTATORS,
  if set) becomes the row's label; skips stay unlabeled. Then `retweet_precision` is refreshed:
  per model version and over all (`model_version` NULL), the labeled tweets, those people
  called AI, the precision and its 95 % Wilson score interval, which the dashboard shows.

The spot-check asks people the annotate stage's way (its Label Studio client, interface and
rules for which annotation counts): the one part of `annotation` it uses.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ai_tweets.annotation import (
    IMPORT_CHUNK,
    PAGE_SIZE,
    ensure_project,
    field_of,
    gold_from_annotations,
    label_studio_client,
)
from ai_tweets.retrying import Backoff
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import (
    AI,
    RETWEET_PRECISION_COLUMNS,
    RETWEET_PRECISION_TABLE,
    RETWEETS_TABLE,
    SPOT_CHECK_TABLES,
    SPOT_CHECKS_TABLE,
    identifier,
)
from stackbase.settings import Settings, load_settings

log = logging.getLogger(__name__)

PROJECT_TITLE = "Retweet spot-check"
SAMPLED_ACTIONS = ("retweeted", "would_retweet")  # what the retweet policy accepted
TASK_KIND = "retweet-spot-check"  # in each task's data: the task type, told apart from annotate's
Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None without trials): unlike the normal
    approximation it stays inside [0, 1] and means something for a few dozen labels."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def task_payload(tweet_id: int, text: str, author_handle: str | None, links: Sequence[str]) -> dict:
    """A spot-check task: the tweet as people see it in the annotate stage, nothing of the model."""
    return {"data": {"kind": TASK_KIND, "tweet_id": str(tweet_id), "text": text,
                     "author": f"@{author_handle}" if author_handle else "(unknown author)",
                     "urls": list(links), "links": "\n".join(links) or "(no links)", "hashtags": "",
                     "weak": "Spot-check of the retweets: label it as you would any tweet."}}


def _task_tweet(task: Any) -> int | None:
    data = field_of(task, "data") or {}
    if data.get("kind") != TASK_KIND:
        return None
    try:
        return int(data["tweet_id"])
    except (KeyError, TypeError, ValueError):
        return None


def _tasks(client: Any, project_id: int, fields: str = "task_only") -> list:
    return list(client.tasks.list(project=project_id, fields=fields, page_size=PAGE_SIZE))


def _record_tasks(conn: psycopg.Connection, tasks: Iterable[tuple[int, int]]) -> int:
    """(tweet_id, task_id) into `spot_checks` where no task is recorded yet; committed."""
    rows = list(tasks)
    written = 0
    with conn.cursor() as cursor:
        for tweet_id, task_id in rows:
            cursor.execute(sql.SQL("UPDATE {t} SET task_id = %s, pushed_at = now() WHERE tweet_id = %s "
                                   "AND task_id IS NULL").format(t=identifier(SPOT_CHECKS_TABLE)), (task_id, tweet_id))
            written += cursor.rowcount
    conn.commit()
    return written


def _sample(conn: psycopg.Connection, size: int, seed: float, model_version: str | None) -> int:
    """Record `size` random accepted retweets never sampled before (of `model_version` only, if
    given); committed. Rows sampled."""
    conn.execute("SELECT setseed(%s)", (seed,))
    sampled = conn.execute(sql.SQL("""
        INSERT INTO {checks} (tweet_id, action, ai_probability, model_version, text, author_handle, links)
        SELECT r.tweet_id, r.action, r.ai_probability, a.model_version, a.text, a.author_handle,
               COALESCE((SELECT array_agg(u.expanded_url ORDER BY u.canonical_url) FROM tweet_urls u
                         WHERE u.tweet_id = r.tweet_id), '{{}}')
        FROM {retweets} r JOIN ai_tweets a USING (tweet_id)
        WHERE r.action = ANY(%s) AND (%s::text IS NULL OR a.model_version = %s)
          AND NOT EXISTS (SELECT FROM {checks} c WHERE c.tweet_id = r.tweet_id)
        ORDER BY random() LIMIT %s
        ON CONFLICT (tweet_id) DO NOTHING""").format(
        checks=identifier(SPOT_CHECKS_TABLE), retweets=identifier(RETWEETS_TABLE)),
        (list(SAMPLED_ACTIONS), model_version, model_version, size)).rowcount
    conn.commit()
    return sampled


def push_spot_checks(settings: Settings, size: int | None = None, model_version: str | None = None, *,
                     title: str = PROJECT_TITLE, wait: Backoff | None = None, seed: float | None = None) -> dict:
    """Sample `size` (default SPOT_CHECK_SIZE) accepted retweets never sampled (those a given
    `model_version` called AI, or any), and push every sampled tweet without a task to the
    spot-check project. Returns counts."""
    size = settings.spot_check_size if size is None else size
    if size < 0:
        raise ValueError(f"the spot-check sample size must be 0 or more, not {size}")
    client = label_studio_client(settings, wait)
    project_id = ensure_project(client, title)
    report = {"project_id": project_id, "sampled": 0, "pushed": 0, "reconciled": 0}
    with connect(settings) as conn:
        ensure_tables(conn, *SPOT_CHECK_TABLES)
        conn.commit()
        conn.execute("SELECT pg_advisory_lock(hashtext('ai_tweets.spot_check.push'))")
        try:
            report["reconciled"] = _record_tasks(conn, [(tweet_id, task.id) for task in _tasks(client, project_id)
                                                        if (tweet_id := _task_tweet(task)) is not None])
            report["sampled"] = _sample(conn, size, random.random() * 2 - 1 if seed is None else seed, model_version)
            waiting = conn.execute(sql.SQL("SELECT tweet_id, text, author_handle, links FROM {t} WHERE task_id IS "
                                           "NULL ORDER BY sampled_at, tweet_id").format(
                                               t=identifier(SPOT_CHECKS_TABLE))).fetchall()
            for start in range(0, len(waiting), IMPORT_CHUNK):
                chunk = waiting[start:start + IMPORT_CHUNK]
                response = client.projects.import_tasks(id=project_id, request=[task_payload(*row) for row in chunk],
                                                        return_task_ids=True)
                task_ids = list(getattr(response, "task_ids", None) or [])
                if len(task_ids) == len(chunk):
                    _record_tasks(conn, [(row[0], task_id) for row, task_id in zip(chunk, task_ids, strict=True)])
                else:  # imported asynchronously: match the tasks by their data
                    _record_tasks(conn, [(tweet_id, task.id) for task in _tasks(client, project_id)
                                         if (tweet_id := _task_tweet(task)) is not None])
                report["pushed"] += len(chunk)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('ai_tweets.spot_check.push'))")
            conn.commit()
    log.info("spot-check push: %d retweets sampled, %d tasks pushed to project %d, %d recovered from an earlier push",
             report["sampled"], report["pushed"], project_id, report["reconciled"])
    return report


def pull_spot_checks(settings: Settings, *, title: str = PROJECT_TITLE, wait: Backoff | None = None) -> dict:
    """The spot-check project's answers → `spot_checks`; `retweet_precision` refreshed. Returns
    counts and the precision over all labeled retweets with its interval."""
    client = label_studio_client(settings, wait)
    project_id = ensure_project(client, title)
    annotators = {user.id: user.email or str(user.id) for user in client.users.list()}
    labels: list[tuple[int, int, str, datetime]] = []
    report = {"project_id": project_id, "tasks": 0, "labeled": 0, "unlabeled": 0}
    for task in _tasks(client, project_id, fields="all"):
        tweet_id = _task_tweet(task)
        if tweet_id is None:
            continue
        report["tasks"] += 1
        gold = gold_from_annotations(field_of(task, "annotations") or [], annotators, settings.label_studio_annotators)
        if gold is None:
            report["unlabeled"] += 1  # nobody answered yet, or only skips
        else:
            labels.append((tweet_id, gold.label, gold.labeled_by, gold.labeled_at))
    with connect(settings) as conn:
        ensure_tables(conn, *SPOT_CHECK_TABLES)
        with conn.cursor() as cursor:
            cursor.executemany(sql.SQL(
                "UPDATE {t} SET label = %s, labeled_by = %s, labeled_at = %s WHERE tweet_id = %s AND "
                "(label, labeled_by, labeled_at) IS DISTINCT FROM (%s, %s, %s)").format(
                    t=identifier(SPOT_CHECKS_TABLE)),
                [(label, by, at, tweet_id, label, by, at) for tweet_id, label, by, at in labels])
        report["labeled"] = len(labels)
        report["precision"] = refresh_precision(conn)
        conn.commit()
    overall = report["precision"].get("all")
    log.info("spot-check pull: %d of %d tasks labeled; retweet precision %s", report["labeled"], report["tasks"],
             f"{overall['precision']:.1%} (95 % interval {overall['low']:.1%}–{overall['high']:.1%}, "
             f"{overall['labeled']} labeled)" if overall else "not known yet (no label)")
    return report


def refresh_precision(conn: psycopg.Connection) -> dict[str, dict]:
    """Rewrite `retweet_precision` from the labeled spot-checks, per version and over all (the
    row whose version is NULL); returns them by version, "all" for the total."""
    counts = conn.execute(sql.SQL(
        "SELECT GROUPING(model_version) = 1, COALESCE(model_version, '(unknown)'), count(*), "
        "count(*) FILTER (WHERE label = %s) FROM {t} WHERE label IS NOT NULL "
        "GROUP BY GROUPING SETS ((model_version), ())").format(t=identifier(SPOT_CHECKS_TABLE)), (AI,)).fetchall()
    rows = [(None if total else version, labeled, ai, ai / labeled, *wilson_interval(ai, labeled))
            for total, version, labeled, ai in counts if labeled]  # no label yet: the total has none
    conn.execute(sql.SQL("DELETE FROM {t}").format(t=identifier(RETWEET_PRECISION_TABLE)))
    with conn.cursor() as cursor:
        cursor.executemany(sql.SQL("INSERT INTO {t} ({columns}) VALUES ({values})").format(
            t=identifier(RETWEET_PRECISION_TABLE),
            columns=sql.SQL(", ").join(map(sql.Identifier, RETWEET_PRECISION_COLUMNS)),
            values=sql.SQL(", ").join(sql.Placeholder() * len(RETWEET_PRECISION_COLUMNS))), rows)
    return {row[0] or "all": dict(zip(RETWEET_PRECISION_COLUMNS[1:], row[1:], strict=True)) for row in rows}


# --- entry points of the DAG and the command line -------------------------------------------

def push(size: int | str | None = None, model_version: str | None = None) -> dict:
    return push_spot_checks(load_settings(), None if size in (None, "", "None") else int(size),
                            None if model_version in (None, "", "None") else str(model_version))


def pull() -> dict:
    return pull_spot_checks(load_settings())
