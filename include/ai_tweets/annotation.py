"""Annotate: gold labels from people in Label Studio, most uncertain tweets first.

- `ensure_project`: the Label Studio project of a dataset version ("AI tweets v{version}",
  interface `label_studio/ai_tweet.xml`), created once, found by title afterwards.
- `push_uncertain_tasks`: unlabeled tweets of every split, most uncertain first (strategy
  `model`: the champion's probability closest to its own decision threshold; `weak`: the weak
  label's probability closest to 0.5; `random`: a fixed pseudo-random order over all splits, the control of
  `make quality`), become tasks with the weak label as a pre-annotation whose `score` is the
  uncertainty (sort the Data Manager by it, descending: the community edition has no
  uncertainty sampling of its own). Strategy `disagreement` pushes first the tweets two
  judges label differently, most apart first: the champion and the challenger (or another
  version given), or, without a second version, the champion and the weak labels; the
  score is then how far apart their probabilities are. A share of each batch (`test_share`, 25%) comes from the
  test split, so that the gold labels that judge the champion grow with the labeling.
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
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg import sql

from ai_tweets.dataset import refresh_label_counts
from ai_tweets.model_files import verified
from ai_tweets.retrying import Backoff, retry_call, service_wait
from ai_tweets.storage import connect, table_exists, update_columns
from ai_tweets.tables import AI, NOT_AI, SPLITS, identifier, split_table_name
from stackbase.errors import NotPreparedError
from stackbase.settings import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:  # the SDK is imported by the functions that use it, not by DAG files
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)

LABEL_CONFIG_FILE = PROJECT_ROOT / "label_studio" / "ai_tweet.xml"
LABELING_GUIDE_FILE = PROJECT_ROOT / "label_studio" / "LABELING_GUIDE.md"
PUSH_SPLITS = SPLITS  # every split: annotations in test judge models, the others teach them
STRATEGIES = ("model", "weak", "random", "disagreement")
TEST_SHARE = 0.25  # of each push batch, from the test split
CHOICES = {AI: "AI", NOT_AI: "Not AI"}  # gold/weak label value → Choice value in the interface
LABELS = {choice: label for label, choice in CHOICES.items()}
FROM_NAME, TO_NAME = "label", "text"  # the Choices and Text tags of the interface
GOLD_COLUMNS = ("gold_label", "gold_labeled_by", "gold_labeled_at")
IMPORT_CHUNK = 500  # tasks per import request; task ids are recorded after each one
PAGE_SIZE = 500


class LabelStudioUnavailable(RuntimeError):
    """Label Studio did not answer, or refused the token, after the retries."""


# --- Label Studio client ------------------------------------------------------------------

_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})
_REFUSED_STATUS = frozenset({401, 403})


class _Unanswered(Exception):
    """One attempt found Label Studio down, unavailable or refusing the token: try again."""

    def __init__(self, problem: str, status: int | None):
        super().__init__(problem)
        self.status = status


class RetryingTransport(httpx.BaseTransport):
    """Every request of the SDK client, retried while Label Studio is down or refuses the token.

    A POST that may have reached the server (read timeout, dropped connection, gateway timeout)
    is not repeated: an import must not run twice; the caller's next push reconciles instead.
    """

    def __init__(self, url: str, wait: Backoff, inner: httpx.BaseTransport | None = None):
        self._url, self._wait, self._inner = url, wait, inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        def attempt() -> httpx.Response:
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc or 'no answer'}"
                if not isinstance(exc, httpx.ConnectError) and request.method not in _REPEATABLE:
                    raise LabelStudioUnavailable(self._message(problem, 1)) from exc
                raise _Unanswered(problem, None) from exc
            if response.status_code not in _UNAVAILABLE_STATUS | _REFUSED_STATUS:
                return response
            response.read()
            response.close()
            problem = f"HTTP {response.status_code}"
            if response.status_code == 504 and request.method not in _REPEATABLE:  # it may have run
                raise LabelStudioUnavailable(self._message(problem, 1))
            raise _Unanswered(problem, response.status_code)

        def gave_up(exc: BaseException, attempts: int, _waited: float) -> LabelStudioUnavailable:
            if isinstance(exc, _Unanswered) and exc.status in _REFUSED_STATUS:
                return LabelStudioUnavailable(
                    f"Label Studio at {self._url} refused LABEL_STUDIO_API_KEY ({exc}, {attempts} "
                    f"attempts): set the pipeline user's token in .env (Label Studio → Account & "
                    f"Settings; legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true).")
            return LabelStudioUnavailable(self._message(str(exc), attempts))

        return retry_call(attempt, self._wait, retry_on=lambda exc: isinstance(exc, _Unanswered),
                          what=f"Label Studio at {self._url}", give_up=gave_up)

    def _message(self, problem: str, attempts: int) -> str:
        return (f"Label Studio at {self._url} is not answering ({problem}, {attempts} attempt(s)). "
                f"Is it running? `make status`, or `make up SERVICES=label-studio`; "
                f"check LABEL_STUDIO_URL in .env. Nothing was lost: the next push or pull resumes.")

    def close(self) -> None:
        self._inner.close()


def label_studio_client(settings: Settings, wait: Backoff | None = None, timeout: float = 60.0) -> LabelStudio:
    """An SDK 2 client whose every request goes through the retrying transport (the one retry
    policy, by default the stage's AI_TWEETS_SERVICE_WAIT_SECONDS)."""
    from label_studio_sdk import LabelStudio

    transport = RetryingTransport(settings.label_studio_url, wait or service_wait(settings))
    return LabelStudio(base_url=settings.label_studio_url, api_key=settings.require("label_studio_api_key"),
                       httpx_client=httpx.Client(transport=transport, timeout=timeout, follow_redirects=True),
                       timeout=timeout, max_retries=0)


def project_title(settings: Settings) -> str:
    return f"AI tweets v{settings.dataset_version}"


def prediction_model_version(settings: Settings) -> str:
    return f"label-model-v{settings.dataset_version}"


def label_config() -> str:
    return LABEL_CONFIG_FILE.read_text()


def instructions() -> str:
    """The labeling guide (label_studio/LABELING_GUIDE.md) as the HTML of the project's instructions."""
    import markdown

    return markdown.markdown(LABELING_GUIDE_FILE.read_text())


def ensure_project(client: LabelStudio, title: str, model_version: str | None = None) -> int:
    """The id of the project called `title`; created with the interface and the labeling guide
    as instructions if there is none, both updated if they changed. Idempotent."""
    config, guide = label_config(), instructions()
    # `title=` filters by substring ("v1" also matches "v12"): keep exact matches only.
    found = sorted(p.id for p in client.projects.list(title=title) if p.title == title)
    if not found:
        project = client.projects.create(
            title=title, label_config=config, model_version=model_version, show_collab_predictions=True,
            expert_instruction=guide, show_instruction=True,
            description="Is this tweet about AI? Pushed most uncertain first by the annotate DAG; sort "
                        "by prediction score (descending) to label the most uncertain first.")
        log.info("created Label Studio project %r (id %d)", title, project.id)
        return project.id
    if len(found) > 1:
        log.warning("%d Label Studio projects are called %r; using the oldest, id %d", len(found), title,
                    found[0])
    project_id = found[0]
    project = client.projects.get(id=project_id)
    if project.label_config.strip() != config.strip():
        client.projects.update(id=project_id, label_config=config)
        log.info("updated the labeling interface of project %r (id %d)", title, project_id)
    if (project.expert_instruction or "").strip() != guide.strip() or not project.show_instruction:
        client.projects.update(id=project_id, expert_instruction=guide, show_instruction=True)
        log.info("updated the instructions of project %r (id %d)", title, project_id)
    return project_id


# --- the pure parts: uncertainty, task payloads, annotations → gold ------------------------

def uncertainty(probability: float | None, threshold: float = 0.5) -> float:
    """1 at the decision threshold, falling linearly to 0 at the farther of 0 and 1; an unknown
    probability counts as certain (pushed last)."""
    if probability is None:
        return 0.0
    return 1.0 - abs(float(probability) - threshold) / max(threshold, 1.0 - threshold)


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


def most_uncertain(candidates: Sequence[Candidate], probabilities: Sequence[float], count: int,
                   threshold: float = 0.5) -> list[tuple[Candidate, float]]:
    """The `count` candidates whose probability is closest to `threshold` (ties: smaller tweet id)."""
    pairs = zip(candidates, probabilities, strict=True)
    return sorted(pairs, key=lambda pair: (abs(pair[1] - threshold), pair[0].tweet_id))[:count]


def _choice(label: int) -> dict:
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [CHOICES[label]]}}


def task_payload(candidate: Candidate, probability: float | None, model_version: str,
                 model_probability: float | None = None, threshold: float = 0.5, score: float | None = None) -> dict:
    """One Label Studio task: the tweet's data and the weak label as a prediction whose score is
    `score` if given (a disagreement), else the uncertainty of `probability` (the one the tweet
    was picked by) around `threshold`."""
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
    priority = uncertainty(probability, threshold) if score is None else score
    return {"data": data, "predictions": [{"model_version": model_version, "result": result,
                                           "score": round(priority, 6)}]}


@dataclass(frozen=True)
class Gold:
    label: int
    labeled_by: str
    labeled_at: datetime


def field_of(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _timestamp(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def annotation_label(annotation: Any) -> int | None:
    """AI/NOT_AI of a submitted annotation, None if it holds no known choice."""
    for region in field_of(annotation, "result") or []:
        if field_of(region, "from_name") == FROM_NAME and field_of(region, "type") == "choices":
            choices = (field_of(region, "value") or {}).get("choices") or []
            if len(choices) == 1 and choices[0] in LABELS:
                return LABELS[choices[0]]
    return None


def _annotator(annotation: Any, annotators: Mapping[int, str]) -> str:
    who = field_of(annotation, "completed_by")
    who = field_of(who, "id") if isinstance(who, Mapping) else who
    return annotators.get(who, str(who))


def gold_from_annotations(annotations: Iterable[Any], annotators: Mapping[int, str],
                          counted: Collection[str] = ()) -> Gold | None:
    """The latest (by update time) submitted, not skipped annotation with a choice; None if
    there is none (no annotation yet, or only skips). With `counted` (LABEL_STUDIO_ANNOTATORS),
    only the annotations of those users (by e-mail) count; anyone else's are ignored."""
    submitted = [a for a in annotations if not field_of(a, "was_cancelled") and annotation_label(a) is not None
                 and (not counted or _annotator(a, annotators).lower() in counted)]
    if not submitted:
        return None
    latest = max(submitted, key=lambda a: (_timestamp(field_of(a, "updated_at") or field_of(a, "created_at")),
                                           field_of(a, "id") or 0))
    return Gold(label=annotation_label(latest), labeled_by=_annotator(latest, annotators),
                labeled_at=_timestamp(field_of(latest, "updated_at") or field_of(latest, "created_at")))


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
    ascending) or "seeded" (a fixed pseudo-random order over all splits: the md5 of the tweet id)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, _CANDIDATE_COLUMNS))
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {columns}, {split} AS split, split_rank FROM {table} "
                "WHERE gold_label IS NULL AND annotation_task_id IS NULL")
        .format(columns=columns, split=sql.Literal(split), table=identifier(table))
        for split, table in tables.items())
    ordering = {"weak": sql.SQL("abs(weak_prob - 0.5) ASC NULLS LAST, tweet_id"),
                # not split_rank: the splits are cut from its order (test first), so that order
                # would label the test split first and give training no gold label for rounds
                "seeded": sql.SQL("md5(tweet_id::text), tweet_id")}[order]
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
    data = field_of(task, "data") or {}
    try:
        tweet_id, split = int(data["tweet_id"]), data["split"]
    except (KeyError, TypeError, ValueError):
        return None
    return (tweet_id, split) if split in SPLITS else None


@dataclass(frozen=True)
class ModelScores:
    """P(AI) of candidates from one registered version, and that version's decision threshold."""

    uri: str
    probabilities: Sequence[float]
    threshold: float


def _model_scores(settings: Settings, texts: Sequence[str], model_uri: str | None) -> ModelScores | None:
    """The candidates scored in this process by `model_uri` (default: the champion); None when
    there is no such model yet or MLflow cannot load it (the push then ranks by weak labels)."""
    from ai_tweets import model as classifier

    uri = model_uri or f"models:/{settings.model_name}@{classifier.CHAMPION}"
    try:
        with verified(settings, uri) as local:
            loaded = classifier.load_classifier(local)
        probabilities = classifier.predict_texts(loaded, texts)
    except Exception as exc:  # no champion yet, MLflow down, a broken artifact: all fall back to weak
        log.warning("could not score the candidates with %s (%s: %s): ranking by the weak labels' uncertainty",
                    uri, type(exc).__name__, exc)
        return None
    return ModelScores(uri, probabilities.tolist(), float(loaded.unwrap_python_model().threshold))


def push_uncertain_tasks(settings: Settings, splits: Sequence[str] = PUSH_SPLITS, batch_size: int = 100,
                         strategy: str = "model", max_pending: int | None = None, *, title: str | None = None,
                         wait: Backoff | None = None, model_uri: str | None = None, test_share: float = TEST_SHARE,
                         model_pool: int = 20_000, other_uri: str | None = None) -> dict:
    """Push up to `batch_size` unlabeled tweets, most uncertain first, as Label Studio tasks.

    `strategy` "model" scores up to `model_pool` candidates (in a seeded order over all splits) with
    `model_uri` (default: the champion) and ranks them by closeness to that model's threshold,
    "weak" if there is no model yet; "weak" ranks by |weak_prob - 0.5|; "random" takes them in
    that seeded order (the md5 of the tweet id, unrelated to which split a tweet is in);
    "disagreement" ranks the same pool by how `model_uri` (default: the champion) and `other_uri`
    (default: the challenger; without one, the weak labels) disagree (`most_disagreed`).
    `test_share` of the batch comes from the test split (less if it has too few candidates).
    `max_pending` tops the queue up to at most that many tasks nobody has labeled or skipped yet.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; expected some of {', '.join(SPLITS)}")
    if not 0.0 <= test_share <= 1.0:
        raise ValueError(f"test_share must be between 0 and 1, not {test_share!r}")
    client = label_studio_client(settings, wait)
    model_version = prediction_model_version(settings)
    project_id = ensure_project(client, title or project_title(settings), model_version)
    report = {"dataset_version": settings.dataset_version, "project_id": project_id, "strategy": strategy,
              "pushed": 0, "pushed_test": 0, "reconciled": 0}
    with connect(settings) as conn:
        tables = _existing_tables(conn, settings, splits)
        if not tables:
            raise NotPreparedError(f"no split tables of version {settings.dataset_version} "
                              f"({', '.join(splits)}): run `ai-tweets prepare` first")
        with _push_lock(conn, settings):
            tasks = _project_tasks(client, project_id)
            report["reconciled"] = _record_pushed(conn, settings, [
                (*tweet, task.id, task.created_at) for task in tasks if (tweet := _task_tweet(task))])
            pending = sum(1 for t in tasks if not t.total_annotations and not t.cancelled_annotations)
            room = batch_size if max_pending is None else max(0, min(batch_size, max_pending - pending))
            report["pending_before"] = pending
            chosen = _choose(conn, settings, tables, room, strategy, model_uri, test_share, model_pool, report,
                             other_uri)
            report["pushed_test"] = sum(1 for pick in chosen if pick.candidate.split == "test")
            for start in range(0, len(chosen), IMPORT_CHUNK):
                chunk = chosen[start:start + IMPORT_CHUNK]
                payloads = [task_payload(pick.candidate, pick.probability, model_version, pick.model_probability,
                                         pick.threshold, pick.disagreement) for pick in chunk]
                response = client.projects.import_tasks(id=project_id, request=payloads, return_task_ids=True)
                task_ids = list(getattr(response, "task_ids", None) or [])
                now = datetime.now(UTC)
                if len(task_ids) == len(chunk):
                    _record_pushed(conn, settings, [(pick.candidate.tweet_id, pick.candidate.split, task_id, now)
                                                    for pick, task_id in zip(chunk, task_ids, strict=True)])
                else:  # an edition that imports asynchronously: match the tasks by their data instead
                    _record_pushed(conn, settings, [(*tweet, task.id, task.created_at)
                                                    for task in _project_tasks(client, project_id)
                                                    if (tweet := _task_tweet(task))])
                report["pushed"] += len(chunk)
    log.info("annotate push, version %d: %d tasks pushed to project %d (%s, %d from test), %d recovered from an "
             "earlier push, %d were pending", settings.dataset_version, report["pushed"], project_id,
             report["strategy"], report["pushed_test"], report["reconciled"], pending)
    return report


@dataclass(frozen=True)
class Pick:
    """A candidate chosen for labeling: the probability it was ranked by, around `threshold`."""

    candidate: Candidate
    probability: float | None
    model_probability: float | None = None
    threshold: float = 0.5
    disagreement: float | None = None  # strategy `disagreement`: how far apart the two judges are


def most_disagreed(candidates: Sequence[Candidate], first: Sequence[float], first_threshold: float,
                   second: Sequence[float | None], second_threshold: float) -> list[Pick]:
    """Candidates the two judges label differently first, then the rest; within each, the most
    apart (by probability) first. A candidate the second judge has no probability for comes last."""
    picks = [Pick(c, p, p, first_threshold, None if q is None else abs(p - q))
             for c, p, q in zip(candidates, first, second, strict=True)]
    by_key = {id(pick): (q is None, q is not None and (p >= first_threshold) == (q >= second_threshold),
                         -(pick.disagreement or 0.0), pick.candidate.tweet_id)
              for pick, p, q in zip(picks, first, second, strict=True)}
    return sorted(picks, key=lambda pick: by_key[id(pick)])


def _disagreements(settings: Settings, pool: Sequence[Candidate], model_uri: str | None, other_uri: str | None,
                   report: dict) -> list[Pick] | None:
    """The pool ranked by `most_disagreed`: `model_uri` (default: the champion) against
    `other_uri` (default: the challenger, when it is not the champion too), else against the
    weak labels. None when there is no model yet (the push then ranks by weak labels)."""
    from ai_tweets.serving import shadow_version

    texts = [c.text for c in pool]
    first = _model_scores(settings, texts, model_uri) if pool else None
    if first is None:
        return None
    if other_uri is None and model_uri is None:
        challenger = shadow_version(settings)
        other_uri = f"models:/{settings.model_name}/{challenger}" if challenger else None
    second = _model_scores(settings, texts, other_uri) if other_uri else None
    report["model_uri"], report["threshold"] = first.uri, first.threshold
    if second is not None:
        report["strategy"], report["other_uri"] = "disagreement: model vs model", second.uri
        return most_disagreed(pool, first.probabilities, first.threshold, second.probabilities, second.threshold)
    report["strategy"] = "disagreement: model vs weak labels"
    return most_disagreed(pool, first.probabilities, first.threshold, [c.weak_prob for c in pool], 0.5)


def _choose(conn: psycopg.Connection, settings: Settings, tables: Mapping[str, str], count: int, strategy: str,
            model_uri: str | None, test_share: float, model_pool: int, report: dict,
            other_uri: str | None = None) -> list[Pick]:
    """Up to `count` picks, most uncertain (or disagreed on) first: `test_share` of them reserved
    for the test split's first, the rest the first of every split (test included)."""
    if count <= 0:
        return []
    order = "weak" if strategy == "weak" else "seeded"
    scored = strategy in ("model", "disagreement")
    pool = _select_candidates(conn, tables, order, model_pool if scored else count + model_pool)
    ranked = [Pick(c, c.weak_prob) for c in pool]
    if strategy == "disagreement":
        disagreed = _disagreements(settings, pool, model_uri, other_uri, report)
        if disagreed is None:
            strategy = report["strategy"] = "weak"
            ranked = [Pick(c, c.weak_prob) for c in _select_candidates(conn, tables, "weak", count + model_pool)]
        else:
            ranked = disagreed
    if strategy == "model":
        scores = _model_scores(settings, [c.text for c in pool], model_uri) if pool else None
        if scores is None:
            report["strategy"] = "weak"
            ranked = [Pick(c, c.weak_prob) for c in _select_candidates(conn, tables, "weak", count + model_pool)]
        else:
            report["model_uri"], report["threshold"] = scores.uri, scores.threshold
            ranked = [Pick(c, p, p, scores.threshold) for c, p in
                      most_uncertain(pool, scores.probabilities, len(pool), scores.threshold)]
    reserved = [pick for pick in ranked if pick.candidate.split == "test"][:round(count * test_share)]
    chosen = {pick.candidate.tweet_id for pick in reserved}
    rest = [pick for pick in ranked if pick.candidate.tweet_id not in chosen][:count - len(reserved)]
    rank = {pick.candidate.tweet_id: position for position, pick in enumerate(ranked)}
    return sorted(reserved + rest, key=lambda pick: rank[pick.candidate.tweet_id])


def pull_annotations(settings: Settings, *, title: str | None = None, wait: Backoff | None = None) -> dict:
    """Annotations of the version's project → gold_label/gold_labeled_by/gold_labeled_at.

    Counts: `new` (no gold label before), `changed` (another label than before), `unchanged`,
    `skipped` (tasks only skipped), `pending` (tasks nobody has touched), `ignored` (labeled only
    by users LABEL_STUDIO_ANNOTATORS does not list). Only rows whose label,
    annotator or time differ are written, so a second pull writes nothing.
    """
    client = label_studio_client(settings, wait)
    project_id = ensure_project(client, title or project_title(settings), prediction_model_version(settings))
    annotators = {user.id: user.email or str(user.id) for user in client.users.list()}
    golds: dict[str, dict[int, Gold]] = {}
    report = {"dataset_version": settings.dataset_version, "project_id": project_id, "tasks": 0, "new": 0,
              "changed": 0, "unchanged": 0, "skipped": 0, "pending": 0, "ignored": 0, "written": 0}
    for task in _project_tasks(client, project_id, fields="all"):
        report["tasks"] += 1
        tweet = _task_tweet(task)
        annotations = field_of(task, "annotations") or []
        gold = gold_from_annotations(annotations, annotators, settings.label_studio_annotators)
        if gold is None and any(gold_from_annotations([a], annotators) for a in annotations):
            report["ignored"] += 1  # labeled, but by no one LABEL_STUDIO_ANNOTATORS lists
        elif gold is None:
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
        if report["written"]:
            refresh_label_counts(conn, settings)
            conn.commit()
    log.info("annotate pull, version %d: %d new gold labels, %d changed, %d unchanged, %d skipped, %d pending",
             settings.dataset_version, report["new"], report["changed"], report["unchanged"], report["skipped"],
             report["pending"])
    return report


# --- entry points of the DAG and the command line -------------------------------------------

def bootstrap(dataset_version: int | str | None = None) -> int:
    settings = load_settings(dataset_version=dataset_version)
    return ensure_project(label_studio_client(settings), project_title(settings), prediction_model_version(settings))


def push(dataset_version: int | str | None = None, batch_size: int | str = 100, strategy: str = "model",
         max_pending: int | str | None = None) -> dict:
    return push_uncertain_tasks(load_settings(dataset_version=dataset_version), batch_size=int(batch_size),
                                strategy=strategy,
                                max_pending=None if max_pending in (None, "", "None") else int(max_pending))


def pull(dataset_version: int | str | None = None) -> dict:
    return pull_annotations(load_settings(dataset_version=dataset_version))
