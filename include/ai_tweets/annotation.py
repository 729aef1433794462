"""Annotate: gold labels from people in Label Studio, most uncertain tweets first.

- `ensure_project`: the Label Studio project of a dataset version ("AI tweets v{version}",
  interface `label_studio/ai_tweet.xml`), created once, found by title afterwards.
- `push_uncertain_tasks`: unlabeled tweets of the dev, test and train splits, most uncertain
  first (weak_prob closest to 0.5, or the served model's probability), become tasks with the
  weak label as a pre-annotation whose `score` is the uncertainty (sort the Data Manager by
  it, descending: the community edition has no uncertainty sampling of its own).
- `pull_annotations`: the latest submitted annotation of each task becomes `gold_label`, with
  who and when; skips leave it NULL; a second pull writes nothing.

Never twice: a tweet is pushed only while its row has no `annotation_task_id`; the task id is
written right after each import, and before selecting, the tasks already in the project are
matched back to their rows by the `tweet_id` in their data, so a crash between the import and
that write heals on the next push instead of duplicating. Pushes of one version are serialized
by a Postgres advisory lock.

Label Studio calls go through `label_studio_client`, whose transport retries with backoff and
then raises `LabelStudioUnavailable` naming the URL and what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg import sql

from ai_tweets.dataset import AI, NOT_AI
from ai_tweets.settings import PROJECT_ROOT, Settings, load_settings
from ai_tweets.storage import connect, table_exists, update_columns
from ai_tweets.tables import SPLITS, identifier, split_table_name

if TYPE_CHECKING:  # the SDK is imported by the functions that use it, not by DAG files
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)

LABEL_CONFIG_FILE = PROJECT_ROOT / "label_studio" / "ai_tweet.xml"
PUSH_SPLITS = ("dev", "test", "train")
STRATEGIES = ("weak", "model")
CHOICES = {AI: "AI", NOT_AI: "Not AI"}  # gold/weak label value → Choice value in the interface
LABELS = {choice: label for label, choice in CHOICES.items()}
FROM_NAME, TO_NAME = "label", "text"  # the Choices and Text tags of the interface
GOLD_COLUMNS = ("gold_label", "gold_labeled_by", "gold_labeled_at")
IMPORT_CHUNK = 500  # tasks per import request; task ids are recorded after each one
PAGE_SIZE = 500
PROBABILITY_COLUMN = "ai_probability"  # the served model's output column (architecture contract)


class LabelStudioUnavailable(RuntimeError):
    """Label Studio did not answer, or refused the token, after the retries."""


@dataclass(frozen=True)
class Retry:
    """How long to wait for Label Studio: `attempts` tries, delays doubling from `first_delay`."""

    attempts: int = 5
    first_delay: float = 2.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


# --- Label Studio client ------------------------------------------------------------------

_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})
_REFUSED_STATUS = frozenset({401, 403})


class RetryingTransport(httpx.BaseTransport):
    """Every request of the SDK client, retried while Label Studio is down or refuses the token.

    A POST that may have reached the server (read timeout, dropped connection, gateway timeout)
    is not repeated: an import must not run twice; the caller's next push reconciles instead.
    """

    def __init__(self, url: str, retry: Retry, inner: httpx.BaseTransport | None = None):
        self._url, self._retry, self._inner = url, retry, inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        delay, attempts = self._retry.first_delay, self._retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc or 'no answer'}"
                if not isinstance(exc, httpx.ConnectError) and request.method not in _REPEATABLE:
                    raise LabelStudioUnavailable(self._message(problem, attempt)) from exc
            else:
                if response.status_code not in _UNAVAILABLE_STATUS | _REFUSED_STATUS:
                    return response
                response.read()
                response.close()
                problem = f"HTTP {response.status_code}"
                if response.status_code == 504 and request.method not in _REPEATABLE:  # it may have run
                    raise LabelStudioUnavailable(self._message(problem, attempt))
                if attempt == attempts and response.status_code in _REFUSED_STATUS:
                    raise LabelStudioUnavailable(
                        f"Label Studio at {self._url} refused LABEL_STUDIO_API_KEY ({problem}, {attempts} "
                        f"attempts): set the pipeline user's token in .env (Label Studio → Account & "
                        f"Settings; legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true).")
            if attempt == attempts:
                raise LabelStudioUnavailable(self._message(problem, attempt))
            log.warning("Label Studio at %s: %s (attempt %d/%d), retrying in %.1f s", self._url, problem,
                        attempt, attempts, delay)
            self._retry.sleep(delay)
            delay = min(delay * 2, self._retry.max_delay)
        raise AssertionError("unreachable")

    def _message(self, problem: str, attempts: int) -> str:
        return (f"Label Studio at {self._url} is not answering ({problem}, {attempts} attempt(s)). "
                f"Is it running? `make status`, or `python3 localstack/stack.py up label-studio`; "
                f"check LABEL_STUDIO_URL in .env. Nothing was lost: the next push or pull resumes.")

    def close(self) -> None:
        self._inner.close()


def label_studio_client(settings: Settings, retry: Retry | None = None, timeout: float = 60.0) -> LabelStudio:
    """An SDK 2 client whose every request goes through the retrying transport."""
    from label_studio_sdk import LabelStudio

    transport = RetryingTransport(settings.label_studio_url, retry or Retry())
    return LabelStudio(base_url=settings.label_studio_url, api_key=settings.require("label_studio_api_key"),
                       httpx_client=httpx.Client(transport=transport, timeout=timeout, follow_redirects=True),
                       timeout=timeout, max_retries=0)


def project_title(settings: Settings) -> str:
    return f"AI tweets v{settings.dataset_version}"


def prediction_model_version(settings: Settings) -> str:
    return f"label-model-v{settings.dataset_version}"


def label_config() -> str:
    return LABEL_CONFIG_FILE.read_text()


def ensure_project(client: LabelStudio, title: str, model_version: str | None = None) -> int:
    """The id of the project called `title`; created with the interface if there is none, its
    interface updated if the XML changed. Idempotent."""
    config = label_config()
    # `title=` filters by substring ("v1" also matches "v12"): keep exact matches only.
    found = sorted(p.id for p in client.projects.list(title=title) if p.title == title)
    if not found:
        project = client.projects.create(
            title=title, label_config=config, model_version=model_version, show_collab_predictions=True,
            description="Is this tweet about AI? Pushed most uncertain first by the annotate DAG; sort "
                        "by prediction score (descending) to label the most uncertain first.")
        log.info("created Label Studio project %r (id %d)", title, project.id)
        return project.id
    if len(found) > 1:
        log.warning("%d Label Studio projects are called %r; using the oldest, id %d", len(found), title,
                    found[0])
    project_id = found[0]
    if client.projects.get(id=project_id).label_config.strip() != config.strip():
        client.projects.update(id=project_id, label_config=config)
        log.info("updated the labeling interface of project %r (id %d)", title, project_id)
    return project_id


# --- the pure parts: uncertainty, task payloads, annotations → gold ------------------------

def uncertainty(probability: float | None) -> float:
    """1 at P(AI) = 0.5, 0 at 0 or 1; an unknown probability counts as certain (pushed last)."""
    return 0.0 if probability is None else 1.0 - 2.0 * abs(float(probability) - 0.5)


@dataclass(frozen=True)
class Candidate:
    """An unlabeled tweet of a split, as shown to annotators."""

    tweet_id: int
    split: str
    text: str
    author_handle: str | None
    hashtags: Sequence[str]
    urls: Sequence[Mapping[str, Any]]
    weak_label: int | None
    weak_prob: float | None


def most_uncertain(candidates: Sequence[Candidate], probabilities: Sequence[float], count: int
                   ) -> list[tuple[Candidate, float]]:
    """The `count` candidates whose probability is closest to 0.5 (ties: smaller tweet id)."""
    pairs = zip(candidates, probabilities, strict=True)
    return sorted(pairs, key=lambda pair: (abs(pair[1] - 0.5), pair[0].tweet_id))[:count]


def _choice(label: int) -> dict:
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [CHOICES[label]]}}


def task_payload(candidate: Candidate, probability: float | None, model_version: str,
                 model_probability: float | None = None) -> dict:
    """One Label Studio task: the tweet's data and the weak label as a prediction whose score is
    the uncertainty of `probability` (the one the tweet was picked by)."""
    c = candidate
    links = [u.get("expanded_url") or u.get("url") for u in c.urls if u.get("expanded_url") or u.get("url")]
    weak = ("none (no labeling function fired)" if c.weak_label not in CHOICES
            else CHOICES[c.weak_label])
    line = f"Weak label: {weak} · P(AI) = {c.weak_prob:.2f}" if c.weak_prob is not None else f"Weak label: {weak}"
    if model_probability is not None:
        line += f" · model P(AI) = {model_probability:.2f}"
    data = {
        "tweet_id": str(c.tweet_id), "split": c.split, "text": c.text,
        "author": f"@{c.author_handle}" if c.author_handle else "(unknown author)",
        "urls": links, "links": "\n".join(links) or "(no links)",
        "hashtags": " ".join(f"#{tag}" for tag in c.hashtags) or "(no hashtags)",
        "weak_label": c.weak_label, "weak_prob": c.weak_prob, "weak": line,
    }
    result = [_choice(c.weak_label)] if c.weak_label in CHOICES else []
    return {"data": data, "predictions": [{"model_version": model_version, "result": result,
                                           "score": round(uncertainty(probability), 6)}]}


@dataclass(frozen=True)
class Gold:
    label: int
    labeled_by: str
    labeled_at: datetime


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _timestamp(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def annotation_label(annotation: Any) -> int | None:
    """AI/NOT_AI of a submitted annotation, None if it holds no known choice."""
    for region in _get(annotation, "result") or []:
        if _get(region, "from_name") == FROM_NAME and _get(region, "type") == "choices":
            choices = (_get(region, "value") or {}).get("choices") or []
            if len(choices) == 1 and choices[0] in LABELS:
                return LABELS[choices[0]]
    return None


def gold_from_annotations(annotations: Iterable[Any], annotators: Mapping[int, str]) -> Gold | None:
    """The latest (by update time) submitted, not skipped annotation with a choice; None if
    there is none (no annotation yet, or only skips)."""
    submitted = [a for a in annotations if not _get(a, "was_cancelled") and annotation_label(a) is not None]
    if not submitted:
        return None
    latest = max(submitted, key=lambda a: (_timestamp(_get(a, "updated_at") or _get(a, "created_at")),
                                           _get(a, "id") or 0))
    who = _get(latest, "completed_by")
    who = _get(who, "id") if isinstance(who, Mapping) else who
    return Gold(label=annotation_label(latest), labeled_by=annotators.get(who, str(who)),
                labeled_at=_timestamp(_get(latest, "updated_at") or _get(latest, "created_at")))


# --- Postgres side ------------------------------------------------------------------------

@contextmanager
def _push_lock(conn: psycopg.Connection, settings: Settings) -> Iterator[None]:
    """One push per dataset version at a time (two could select the same tweets)."""
    key = f"ai_tweets.annotation.push:{settings.dataset_version}"
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
        conn.commit()


def _existing_tables(conn: psycopg.Connection, settings: Settings, splits: Iterable[str]) -> dict[str, str]:
    tables = {split: split_table_name(split, settings) for split in splits}
    return {split: table for split, table in tables.items() if table_exists(conn, table)}


_CANDIDATE_COLUMNS = ("tweet_id", "text", "author_handle", "hashtags", "urls", "weak_label", "weak_prob")


def _select_candidates(conn: psycopg.Connection, tables: Mapping[str, str], order: str, limit: int
                       ) -> list[Candidate]:
    """Unlabeled, never pushed tweets of the splits; `order` is "weak" (|weak_prob - 0.5|
    ascending) or "seeded" (the splits' seeded random rank, for the model's candidate pool)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, _CANDIDATE_COLUMNS))
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {columns}, {split} AS split, split_rank FROM {table} "
                "WHERE gold_label IS NULL AND annotation_task_id IS NULL")
        .format(columns=columns, split=sql.Literal(split), table=identifier(table))
        for split, table in tables.items())
    ordering = {"weak": sql.SQL("abs(weak_prob - 0.5) ASC NULLS LAST, tweet_id"),
                "seeded": sql.SQL("split_rank, tweet_id")}[order]
    rows = conn.execute(sql.SQL("SELECT * FROM ({union}) c ORDER BY {ordering} LIMIT %s")
                        .format(union=union, ordering=ordering), (limit,)).fetchall()
    return [Candidate(tweet_id=r[0], text=r[1], author_handle=r[2], hashtags=r[3], urls=r[4], weak_label=r[5],
                      weak_prob=r[6], split=r[7]) for r in rows]


def _record_pushed(conn: psycopg.Connection, settings: Settings, tasks: Iterable[tuple[int, str, int, datetime]]
                   ) -> int:
    """Write (tweet_id, split, task_id, pushed_at) into the split tables and commit. Only rows
    without a task id are set: the first task of a tweet stays its task."""
    by_split: dict[str, list[tuple[int, int, datetime]]] = {}
    for tweet_id, split, task_id, pushed_at in tasks:
        by_split.setdefault(split, []).append((tweet_id, task_id, pushed_at))
    written = 0
    for split, rows in by_split.items():
        table = split_table_name(split, settings)
        missing = {r[0] for r in conn.execute(
            sql.SQL("SELECT tweet_id FROM {t} WHERE tweet_id = ANY(%s) AND annotation_task_id IS NULL")
            .format(t=identifier(table)), ([r[0] for r in rows],))}
        written += update_columns(conn, table, "tweet_id", ("annotation_task_id", "annotation_pushed_at"),
                                  [r for r in rows if r[0] in missing])
    conn.commit()
    return written


# --- Label Studio side --------------------------------------------------------------------

def _project_tasks(client: LabelStudio, project_id: int, fields: str = "task_only") -> list:
    return list(client.tasks.list(project=project_id, fields=fields, page_size=PAGE_SIZE))


def _task_tweet(task: Any) -> tuple[int, str] | None:
    """(tweet_id, split) from a task's data; None for tasks the pipeline did not create."""
    data = _get(task, "data") or {}
    try:
        tweet_id, split = int(data["tweet_id"]), data["split"]
    except (KeyError, TypeError, ValueError):
        return None
    return (tweet_id, split) if split in SPLITS else None


def _model_probabilities(settings: Settings, texts: Sequence[str], timeout: float = 120.0) -> list[float] | None:
    """P(AI) per text from the served model, in one batched request; None if serving is down."""
    url = f"{settings.model_serving_url}/invocations"
    try:
        response = httpx.post(url, json={"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}},
                              timeout=timeout)
        response.raise_for_status()
        predictions = response.json()["predictions"]
        probabilities = [float(p[PROBABILITY_COLUMN] if isinstance(p, Mapping) else p) for p in predictions]
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        log.warning("model serving at %s did not score the candidates (%s): falling back to the weak "
                    "labels' uncertainty", url, exc)
        return None
    if len(probabilities) != len(texts):
        log.warning("model serving at %s returned %d probabilities for %d texts: falling back to the weak "
                    "labels' uncertainty", url, len(probabilities), len(texts))
        return None
    return probabilities


def push_uncertain_tasks(settings: Settings, splits: Sequence[str] = PUSH_SPLITS, batch_size: int = 100,
                         strategy: str = "weak", max_pending: int | None = None, *, title: str | None = None,
                         retry: Retry | None = None, model_pool: int = 5_000) -> dict:
    """Push up to `batch_size` unlabeled tweets, most uncertain first, as Label Studio tasks.

    `strategy` "weak" ranks by |weak_prob - 0.5|; "model" ranks a seeded sample of `model_pool`
    candidates by the served model's |P(AI) - 0.5| (weak if serving is down). `max_pending` tops
    the queue up to at most that many tasks nobody has labeled or skipped yet.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; expected some of {', '.join(SPLITS)}")
    client = label_studio_client(settings, retry)
    model_version = prediction_model_version(settings)
    project_id = ensure_project(client, title or project_title(settings), model_version)
    report = {"dataset_version": settings.dataset_version, "project_id": project_id, "strategy": strategy,
              "pushed": 0, "reconciled": 0}
    with connect(settings) as conn:
        tables = _existing_tables(conn, settings, splits)
        if not tables:
            raise LookupError(f"no split tables of version {settings.dataset_version} "
                              f"({', '.join(splits)}): run `ai-tweets prepare` first")
        with _push_lock(conn, settings):
            tasks = _project_tasks(client, project_id)
            report["reconciled"] = _record_pushed(conn, settings, [
                (*tweet, task.id, task.created_at) for task in tasks if (tweet := _task_tweet(task))])
            pending = sum(1 for t in tasks if not t.total_annotations and not t.cancelled_annotations)
            room = batch_size if max_pending is None else max(0, min(batch_size, max_pending - pending))
            report["pending_before"] = pending
            chosen = _choose(conn, settings, tables, room, strategy, model_pool, report)
            for start in range(0, len(chosen), IMPORT_CHUNK):
                chunk = chosen[start:start + IMPORT_CHUNK]
                payloads = [task_payload(c, p, model_version, model_p) for c, p, model_p in chunk]
                response = client.projects.import_tasks(id=project_id, request=payloads, return_task_ids=True)
                task_ids = list(getattr(response, "task_ids", None) or [])
                now = datetime.now(UTC)
                if len(task_ids) == len(chunk):
                    _record_pushed(conn, settings, [(c.tweet_id, c.split, task_id, now)
                                                    for (c, _, _), task_id in zip(chunk, task_ids, strict=True)])
                else:  # an edition that imports asynchronously: match the tasks by their data instead
                    _record_pushed(conn, settings, [(*tweet, task.id, task.created_at)
                                                    for task in _project_tasks(client, project_id)
                                                    if (tweet := _task_tweet(task))])
                report["pushed"] += len(chunk)
    log.info("annotate push, version %d: %d tasks pushed to project %d (%s), %d recovered from an earlier "
             "push, %d were pending", settings.dataset_version, report["pushed"], project_id, report["strategy"],
             report["reconciled"], pending)
    return report


def _choose(conn: psycopg.Connection, settings: Settings, tables: Mapping[str, str], count: int, strategy: str,
            model_pool: int, report: dict) -> list[tuple[Candidate, float | None, float | None]]:
    """(candidate, probability it was ranked by, model probability or None), most uncertain first."""
    if count <= 0:
        return []
    if strategy == "model":
        pool = _select_candidates(conn, tables, "seeded", max(model_pool, count))
        probabilities = _model_probabilities(settings, [c.text for c in pool]) if pool else None
        if probabilities is not None:
            return [(c, p, p) for c, p in most_uncertain(pool, probabilities, count)]
        report["strategy"] = "weak"
    return [(c, c.weak_prob, None) for c in _select_candidates(conn, tables, "weak", count)]


def pull_annotations(settings: Settings, *, title: str | None = None, retry: Retry | None = None) -> dict:
    """Annotations of the version's project → gold_label/gold_labeled_by/gold_labeled_at.

    Counts: `new` (no gold label before), `changed` (another label than before), `unchanged`,
    `skipped` (tasks only skipped), `pending` (tasks nobody has touched). Only rows whose label,
    annotator or time differ are written, so a second pull writes nothing.
    """
    client = label_studio_client(settings, retry)
    project_id = ensure_project(client, title or project_title(settings), prediction_model_version(settings))
    annotators = {user.id: user.email or str(user.id) for user in client.users.list()}
    golds: dict[str, dict[int, Gold]] = {}
    report = {"dataset_version": settings.dataset_version, "project_id": project_id, "tasks": 0, "new": 0,
              "changed": 0, "unchanged": 0, "skipped": 0, "pending": 0, "written": 0}
    for task in _project_tasks(client, project_id, fields="all"):
        report["tasks"] += 1
        tweet = _task_tweet(task)
        annotations = _get(task, "annotations") or []
        gold = gold_from_annotations(annotations, annotators)
        if gold is None:
            report["skipped" if annotations else "pending"] += 1
        elif tweet is not None:
            golds.setdefault(tweet[1], {})[tweet[0]] = gold
    with connect(settings) as conn:
        for split, by_tweet in golds.items():
            table = split_table_name(split, settings)
            if not table_exists(conn, table):
                log.warning("%d gold labels for split %s, but %s does not exist", len(by_tweet), split, table)
                continue
            current = {row[0]: row[1:] for row in conn.execute(
                sql.SQL("SELECT tweet_id, gold_label, gold_labeled_by, gold_labeled_at FROM {t} "
                        "WHERE tweet_id = ANY(%s)").format(t=identifier(table)), (list(by_tweet),))}
            rows = []
            for tweet_id, gold in by_tweet.items():
                if tweet_id not in current:
                    continue
                before = current[tweet_id]
                report["new" if before[0] is None else "changed" if before[0] != gold.label else "unchanged"] += 1
                if before != (gold.label, gold.labeled_by, gold.labeled_at):
                    rows.append((tweet_id, gold.label, gold.labeled_by, gold.labeled_at))
            report["written"] += update_columns(conn, table, "tweet_id", GOLD_COLUMNS, rows) if rows else 0
        conn.commit()
    log.info("annotate pull, version %d: %d new gold labels, %d changed, %d unchanged, %d skipped, %d pending",
             settings.dataset_version, report["new"], report["changed"], report["unchanged"], report["skipped"],
             report["pending"])
    return report


# --- entry points of the DAG and the command line -------------------------------------------

def bootstrap(dataset_version: int | str | None = None) -> int:
    settings = load_settings(dataset_version=dataset_version)
    return ensure_project(label_studio_client(settings), project_title(settings), prediction_model_version(settings))


def push(dataset_version: int | str | None = None, batch_size: int | str = 100, strategy: str = "weak",
         max_pending: int | str | None = None) -> dict:
    return push_uncertain_tasks(load_settings(dataset_version=dataset_version), batch_size=int(batch_size),
                                strategy=strategy,
                                max_pending=None if max_pending in (None, "", "None") else int(max_pending))


def pull(dataset_version: int | str | None = None) -> dict:
    return pull_annotations(load_settings(dataset_version=dataset_version))
