"""How good the classifier is on real tweets, and whether people's labels make it better:
the logic of `make quality` (`benchmarks/quality.py`) and of its short form in the tests.

**The data.** A development set of real tweets: `tweets_2020_text.jsonl` (one `{"text": ...}` a
line) and `tweets_2020_labels.csv` (`line,label,unsure`: people's labels for some lines, made
with `label_studio/LABELING_GUIDE.md`), read from `../shared/data` beside the project.

**The held-out rule.** The labeled lines with an even line number are the evaluation rows. They
are never replayed, pushed to Label Studio or trained on, and neither is any other line whose
normalized text (`dataset.normalized_text`) is one of theirs, since a retweet of an evaluation
tweet would leak it. Every other line, labeled (odd line numbers) or not, is replayed.

**The loop**, once per strategy, each in a dataset version, Kafka topic, registered model and
Label Studio project of its own, through the stages' own functions:

    replay → Kafka → Spark ingest → prepare (dedup, splits, weak labels) → train (0 gold labels)
    round after round: the annotate stage pushes tasks (strategy `model`: the latest model's
    most uncertain tweets; `disagreement`: the tweets the champion and the latest version label
    differently, most apart first, or the champion and the weak labels while the champion is
    the latest; `random`: the control) → a simulated annotator answers them in Label
    Studio, as a person would, from the labels of the replayed lines (a tweet it has no label
    for is skipped, as a person may skip) until the round's labels are in → pull → train

After each training the newest version and the champion are scored on the evaluation rows:
precision, recall and F1 on all of them and on the sure ones (`unsure` = 0). Beside them: a
keyword baseline and the weak labels (the labeling functions and the LabelModel of the same
version), the teachers the model has to beat. Every comparison in the verdicts comes with a
paired-bootstrap interval of its difference: the evaluation rows are few, and a difference of a
hundredth is often not one they can tell.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from psycopg import sql

from ai_tweets import vocabulary
from ai_tweets.dataset import normalized_text
from ai_tweets.model_files import verified
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import (
    AI,
    LABEL_COUNTS,
    LEARNING_CURVE,
    MODEL_QUALITY,
    SPLITS,
    dedup_table_name,
    identifier,
    lf_summary_table_name,
    raw_table_name,
    split_table_name,
)
from ai_tweets.tracking import QUALITY_EXPERIMENT
from stackbase.settings import PROJECT_ROOT, Settings, load_settings

log = logging.getLogger(__name__)

DEVELOPMENT_DATA = PROJECT_ROOT.parent / "shared" / "data"
TEXTS_FILE, LABELS_FILE = "tweets_2020_text.jsonl", "tweets_2020_labels.csv"
# curve name → the annotate stage's strategy
STRATEGIES = {"uncertainty": "model", "disagreement": "disagreement", "random": "random"}
RAW_PREFIX = "quality"
FIRST_VERSION = 900_001  # dataset versions of the loops: far from a user's own
# The quality issue's bars: with at most LABEL_BUDGET gold labels the champion beats the weak labels
# by MARGIN_OVER_WEAK, aiming at TARGET_F1 (all rows, sure rows); from COMPARE_FROM_LABELS labels on,
# uncertainty sampling is at least as good as random.
LABEL_BUDGET, MARGIN_OVER_WEAK, COMPARE_FROM_LABELS = 400, 0.05, 100
TARGET_F1 = {"all": 0.85, "sure": 0.92}
WEAK = "weak labels (LFs + LabelModel)"  # the teachers' row among a run's baselines
# How sure a verdict is: a paired bootstrap over the evaluation rows (BOOTSTRAP_DRAWS resamples)
# gives each compared difference in F1 its INTERVAL (a 95 % interval).
BOOTSTRAP_DRAWS, INTERVAL = 2000, 0.95
# The keyword baseline: any AI phrase, or the acronyms AI, ML, NLP in capitals.
_KEYWORDS = re.compile(
    rf"(?i:{'|'.join((*vocabulary.AI_PHRASES, *vocabulary.ML_PHRASES, *vocabulary.DATA_SCIENCE_PHRASES))})"
    r"|\b(?:AI|A\.I\.|ML|NLP)\b")


class QualityDataMissing(FileNotFoundError):
    """The development set is not beside the project (a user's fresh clone has none)."""


# --- the data --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rows:
    """Evaluation rows: texts, people's labels, and which labels are sure."""

    texts: list[str]
    labels: np.ndarray
    sure: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class LoopData:
    """What one quality run needs: tweets to replay (JSONL lines), the simulated annotator's
    answers (normalized text → label) and the held-out evaluation rows."""

    replay_lines: list[str]
    answers: dict[str, int]
    evaluation: Rows
    description: str


def development_set(folder: Path = DEVELOPMENT_DATA) -> LoopData:
    """The real tweets and their labels, split by the held-out rule (module docstring)."""
    texts_path, labels_path = folder / TEXTS_FILE, folder / LABELS_FILE
    if not (texts_path.is_file() and labels_path.is_file()):
        raise QualityDataMissing(f"the development set ({TEXTS_FILE}, {LABELS_FILE}) is not in {folder}: "
                                 f"it lives beside the project in the development workspace only")
    lines = texts_path.read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    with labels_path.open() as file:
        labeled = {int(row["line"]): (int(row["label"]), int(row["unsure"])) for row in csv.DictReader(file)}
    held_out = sorted(number for number in labeled if number % 2 == 0)
    held_keys = {normalized_text(texts[number - 1]) for number in held_out}
    replayed = [number for number in range(1, len(texts) + 1)
                if number not in labeled or number % 2 == 1]
    replayed = [number for number in replayed if normalized_text(texts[number - 1]) not in held_keys]
    answers = {normalized_text(texts[n - 1]): labeled[n][0] for n in replayed if n in labeled}
    evaluation = Rows([texts[n - 1] for n in held_out], np.array([labeled[n][0] for n in held_out]),
                      np.array([labeled[n][1] == 0 for n in held_out]))
    return LoopData([lines[n - 1] for n in replayed], answers, evaluation,
                    f"{len(texts):,} real 2020 tweets: {len(held_out):,} labeled held out "
                    f"({int(evaluation.labels.sum())} AI, {int(evaluation.sure.sum())} sure), "
                    f"{len(replayed):,} replayed, {len(answers):,} of them answerable by the annotator")


def generated_set(count: int, held_out: int, seed: int = 0) -> LoopData:
    """Generated tweets with the generator's truth as the labels: the loop's machinery on any
    machine (the tests' short form). Every tenth tweet is left unanswered, to exercise skips."""
    from ai_tweets.generator import generate
    from ai_tweets.schema import normalize

    items = list(generate(count + held_out, seed=seed))
    texts = [normalize(item.payload).text for item in items]
    labels = [int(item.is_ai) for item in items]
    keys = [normalized_text(text) for text in texts]
    held_keys = set(keys[count:])
    replayed = [i for i in range(count) if keys[i] not in held_keys]
    answers = {keys[i]: labels[i] for i in replayed if i % 10}
    evaluation = Rows(texts[count:], np.array(labels[count:]), np.ones(held_out, dtype=bool))
    return LoopData([json.dumps(items[i].payload) for i in replayed], answers, evaluation,
                    f"{count:,} generated tweets replayed, {held_out:,} held out")


def keyword_baseline(texts: Sequence[str]) -> np.ndarray:
    """1 where a text has an AI keyword (see `_KEYWORDS`), else 0."""
    return np.array([int(_KEYWORDS.search(text) is not None) for text in texts])


def f1_difference(labels: Sequence[int], first: Sequence[int], second: Sequence[int],
                  draws: int = BOOTSTRAP_DRAWS, level: float = INTERVAL, seed: int = 0) -> tuple[float, float, float]:
    """F1 of `first` minus F1 of `second` on the same rows, and the `level` interval of that
    difference from a paired bootstrap: `draws` resamples of the rows, both scored on each."""
    labels, first, second = (np.asarray(a, dtype=bool) for a in (labels, first, second))
    if not len(labels) == len(first) == len(second):
        raise ValueError(f"f1_difference: {len(labels)} labels, {len(first)} and {len(second)} predictions")

    def f1(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        hits = (truth & predicted).sum(axis=-1)
        return 2 * hits / np.maximum(truth.sum(axis=-1) + predicted.sum(axis=-1), 1)

    rows = np.random.default_rng(seed).integers(0, len(labels), (draws, len(labels)))
    spread = f1(labels[rows], first[rows]) - f1(labels[rows], second[rows])
    low, high = np.quantile(spread, [(1 - level) / 2, (1 + level) / 2])
    return float(f1(labels, first) - f1(labels, second)), float(low), float(high)


def scores(rows: Rows, predicted: Iterable[int]) -> dict[str, float]:
    """Precision, recall and F1 on all rows and on the sure ones."""
    from sklearn.metrics import precision_recall_fscore_support

    predicted = np.asarray(list(predicted)).astype(int)
    found = {}
    for part, mask in (("all", np.ones(len(rows), dtype=bool)), ("sure", rows.sure)):
        precision, recall, f1, _ = precision_recall_fscore_support(
            rows.labels[mask], predicted[mask], average="binary", zero_division=0)
        found.update({f"precision_{part}": float(precision), f"recall_{part}": float(recall),
                      f"f1_{part}": float(f1)})
    return found


# --- a person in Label Studio, played from the answers ------------------------------------------

OPEN_TASKS = json.dumps({"filters": {"conjunction": "and", "items": [
    {"filter": f"filter:tasks:{column}", "operator": "equal", "type": "Number", "value": 0}
    for column in ("total_annotations", "cancelled_annotations")]}})


class SimulatedAnnotator:
    """Answers the tasks of a project through Label Studio's API as a person would: it signs up
    with the organization's invite link (its own user, password and token) and gives each task
    the label of the tweet's normalized text when the answers have one, a skip otherwise."""

    def __init__(self, settings: Settings, answers: Mapping[str, int], email: str):
        from ai_tweets.annotation import label_studio_client

        self.answers, self.email = answers, email
        token = _sign_up(settings, email, secrets.token_urlsafe(18))
        self.client = label_studio_client(replace(settings, label_studio_api_key=token))
        self.user_id = self.client.users.whoami().id

    def answer(self, project_id: int) -> dict[str, int]:
        """Annotate every task of the project that nobody has annotated or skipped yet."""
        from ai_tweets.annotation import CHOICES, FROM_NAME, TO_NAME

        done = {"labeled": 0, "skipped": 0}
        # Only the open tasks, filtered by Label Studio like its Data Manager does: listing every
        # task each time made the loop slower with every round (1,000 tasks: 20 s a listing).
        for task in self.client.tasks.list(project=project_id, fields="all", page_size=500, query=OPEN_TASKS):
            label = self.answers.get(normalized_text(task.data["text"]))
            if label is None:
                self.client.annotations.create(id=task.id, result=[], was_cancelled=True)
                done["skipped"] += 1
                continue
            choice = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                      "value": {"choices": [CHOICES[label]]}}
            self.client.annotations.create(id=task.id, result=[choice], was_cancelled=False)
            done["labeled"] += 1
        return done


def _sign_up(settings: Settings, email: str, password: str) -> str:
    """Sign `email` up through the organization's invite link (Label Studio's own sign-up form,
    which works without open sign-up) and return the new user's API token."""
    import re as regex

    import requests

    url = settings.label_studio_url
    invite = requests.get(f"{url}/api/invite", timeout=30,
                          headers={"Authorization": f"Token {settings.require('label_studio_api_key')}"})
    invite.raise_for_status()
    signup = f"{url}{invite.json()['invite_url']}"
    with requests.Session() as session:
        page = session.get(signup, timeout=30)
        page.raise_for_status()
        csrf = regex.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        form = {"email": email, "password": password, "csrfmiddlewaretoken": csrf.group(1) if csrf else ""}
        session.post(signup, data=form, headers={"Referer": signup}, timeout=30, allow_redirects=False)
        answer = session.get(f"{url}/api/current-user/token", timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"Label Studio at {url} did not sign {email} up (HTTP {answer.status_code}): is the "
                               f"address taken already?")
        return answer.json()["token"]


# --- one loop ---------------------------------------------------------------------------------

@dataclass
class Round:
    """The state after one training: labels so far, the newest version and the champion."""

    strategy: str
    number: int
    gold_labels: int
    pushed: int
    skipped: int
    model_version: str
    promoted: bool
    judged_on: str
    model: dict[str, float]
    champion_version: str
    champion: dict[str, float]
    seconds: float
    # 0/1 on the evaluation rows (for the verdicts' intervals)
    predicted: np.ndarray | None = field(default=None, repr=False, compare=False)
    champion_predicted: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class Loop:
    """One strategy's dataset version, topic, model and Label Studio project."""

    strategy: str
    settings: Settings
    rounds: list[Round] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_predicted: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # 0/1 on the evaluation rows


def loop_settings(strategy: str, version: int, run_id: str, base: Mapping[str, str] | None = None) -> Settings:
    return load_settings(base, tweets_topic=f"quality-{run_id}-{strategy}", raw_table_prefix=RAW_PREFIX,
                         dataset_version=version, model_name=f"ai-tweet-classifier-quality-{strategy}")


def annotator_email(settings: Settings) -> str:
    """The simulated annotator of one loop of one run (a new Label Studio user each time)."""
    return f"annotator-{settings.tweets_topic}@ai-tweets.local"


def reset(settings: Settings) -> None:
    """Forget an earlier run of this loop: its tables and rows in the shared ones, Label Studio
    project, registered model and ingest checkpoint (the topic is new for every run)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ai_tweets.annotation import label_studio_client, project_title

    with connect(settings) as conn:
        tables = [raw_table_name(settings), dedup_table_name(settings), lf_summary_table_name(settings),
                  *(split_table_name(split, settings) for split in SPLITS)]
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=identifier(table)))
        ensure_tables(conn, LABEL_COUNTS, MODEL_QUALITY)
        conn.execute("DELETE FROM label_counts WHERE dataset_version = %s", (settings.dataset_version,))
        conn.execute("DELETE FROM model_quality WHERE model_name = %s", (settings.model_name,))
        conn.commit()
    client = label_studio_client(settings)
    for project in client.projects.list(title=project_title(settings)):
        if project.title == project_title(settings):
            client.projects.delete(id=project.id)
    try:
        MlflowClient(settings.mlflow_uri()).delete_registered_model(settings.model_name)
    except MlflowException:
        pass  # none yet
    shutil.rmtree(settings.data_dir / "checkpoints" / "ingest" / raw_table_name(settings), ignore_errors=True)


def capture_and_prepare(loop: Loop, data: LoopData, progress: Callable[[str], None]) -> dict:
    """Replay the tweets into the loop's topic, ingest them with Spark, prepare the splits."""
    from ai_tweets.capture import produce_tweets
    from ai_tweets.prepare import prepare_all

    settings = loop.settings
    with tempfile.TemporaryDirectory(prefix="ai-tweets-quality-") as folder:
        replay = Path(folder) / "replay.jsonl"
        replay.write_text("\n".join(data.replay_lines) + "\n")
        produced = produce_tweets("replay", file=replay, settings=settings)
    progress(f"{loop.strategy}: {produced['delivered']:,} tweets replayed into Kafka topic {settings.tweets_topic}")
    env = {**_env(settings), "PYTHONPATH": str(PROJECT_ROOT / "include")}
    ingest = subprocess.run([sys.executable, "-m", "ai_tweets.cli", "ingest", "--available-now"], env=env,
                            capture_output=True, text=True, timeout=1800)
    if ingest.returncode:
        raise RuntimeError(f"ingest of {settings.tweets_topic} failed:\n{ingest.stderr[-3000:]}")
    prepared = prepare_all(settings.raw_table_prefix, settings.dataset_version)
    progress(f"{loop.strategy}: prepared version {settings.dataset_version}: "
             f"{prepared['dedup']['kept']:,} tweets after dedup, splits {prepared['splits']}")
    return prepared


def _env(settings: Settings) -> dict[str, str]:
    """The process environment with this loop's per-run values, for the ingest job it starts."""
    from stackbase.settings import process_environment

    return process_environment(TWEETS_TOPIC=settings.tweets_topic, RAW_TABLE_PREFIX=settings.raw_table_prefix,
                               DATASET_VERSION=str(settings.dataset_version), MODEL_NAME=settings.model_name)


def weak_label_predictions(settings: Settings, run_id: str, texts: Sequence[str]) -> np.ndarray:
    """The weak labels the version's LabelModel (MLflow run `run_id`) gives `texts`: AI = 1,
    anything else (not AI, every labeling function abstaining) = 0."""
    from ai_tweets import label_model, labeling
    from ai_tweets.prepare import load_label_model

    model = load_label_model(settings, run_id)
    labels, _ = label_model.weak_labels(model, labeling.apply_lfs(labeling.frame_from_texts(list(texts))))
    return (labels == AI).astype(int)


def model_predictions(settings: Settings, version: str, texts: Sequence[str]) -> np.ndarray:
    """0/1 of a registered version at its own threshold, loaded the way serving loads it."""
    import pandas as pd

    from ai_tweets.model import LABEL_COLUMN, load_classifier

    with verified(settings, f"models:/{settings.model_name}/{version}") as local:
        loaded = load_classifier(local)
    return loaded.predict(pd.DataFrame({"text": list(texts)}))[LABEL_COLUMN].to_numpy().astype(int)


def _champion_version(settings: Settings) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(settings.mlflow_uri()).get_model_version_by_alias(
        settings.model_name, "champion").version)


def train_and_score(loop: Loop, data: LoopData, number: int, gold: int, pushed: int, skipped: int,
                    began: float, epochs: int) -> Round:
    from ai_tweets.train import train_model

    report = train_model(settings=loop.settings, epochs=epochs, experiment=QUALITY_EXPERIMENT)
    champion = _champion_version(loop.settings)
    predicted = model_predictions(loop.settings, report["model_version"], data.evaluation.texts)
    champion_predicted = predicted if champion == report["model_version"] else model_predictions(
        loop.settings, champion, data.evaluation.texts)
    result = Round(loop.strategy, number, gold, pushed, skipped, report["model_version"],
                   report["decision"]["promoted"], report["evaluated_on"], scores(data.evaluation, predicted),
                   champion, scores(data.evaluation, champion_predicted), round(time.monotonic() - began, 1),
                   predicted, champion_predicted)
    loop.rounds.append(result)
    return result


def label_round(loop: Loop, annotator: SimulatedAnnotator, wanted: int, model_uri: str | None,
                other_uri: str | None = None) -> dict[str, int]:
    """Push and answer tasks until `wanted` new labels are in (or nothing is left to push), then pull."""
    from ai_tweets.annotation import pull_annotations, push_uncertain_tasks

    labeled = skipped = pushed = 0
    project_id = None
    while labeled < wanted:
        report = push_uncertain_tasks(loop.settings, batch_size=wanted - labeled,
                                      strategy=STRATEGIES[loop.strategy], model_uri=model_uri, other_uri=other_uri)
        project_id = report["project_id"]
        if not report["pushed"]:
            break
        pushed += report["pushed"]
        done = annotator.answer(project_id)
        labeled, skipped = labeled + done["labeled"], skipped + done["skipped"]
    pulled = pull_annotations(loop.settings)
    return {"labeled": labeled, "skipped": skipped, "pushed": pushed, "gold": pulled["new"] + pulled["unchanged"]
            + pulled["changed"]}


def run_loop(loop: Loop, data: LoopData, rounds: int, per_round: int, epochs: int,
             progress: Callable[[str], None]) -> Loop:
    """Capture, prepare and train once, then `rounds` rounds of labeling and training."""
    began = time.monotonic()
    reset(loop.settings)
    prepared = capture_and_prepare(loop, data, progress)
    evaluation = data.evaluation
    loop.baseline_predicted["keyword baseline"] = keyword_baseline(evaluation.texts)
    loop.baseline_predicted[WEAK] = weak_label_predictions(
        loop.settings, prepared["weak_labels"]["mlflow_run_id"], evaluation.texts)
    loop.baselines.update({name: scores(evaluation, predicted) for name, predicted in loop.baseline_predicted.items()})
    first = train_and_score(loop, data, 0, 0, 0, 0, began, epochs)
    progress(_round_line(first))
    annotator = SimulatedAnnotator(loop.settings, data.answers, annotator_email(loop.settings))
    for number in range(1, rounds + 1):
        began = time.monotonic()
        latest = loop.rounds[-1]
        learner = f"models:/{loop.settings.model_name}/{latest.model_version}"
        if loop.strategy == "disagreement":  # the champion against the latest version, or the weak labels
            champion = f"models:/{loop.settings.model_name}/{latest.champion_version}"
            labeled = label_round(loop, annotator, per_round, champion,
                                  learner if latest.model_version != latest.champion_version else None)
        else:
            labeled = label_round(loop, annotator, per_round, learner if loop.strategy == "uncertainty" else None)
        if not labeled["labeled"]:
            progress(f"{loop.strategy}: nothing left to label after {loop.rounds[-1].gold_labels} gold labels")
            break
        result = train_and_score(loop, data, number, labeled["gold"], labeled["pushed"], labeled["skipped"],
                                 began, epochs)
        progress(_round_line(result))
    return loop


def _round_line(result: Round) -> str:
    return (f"{result.strategy} round {result.number}: {result.gold_labels} gold labels → version "
            f"{result.model_version} F1 {result.model['f1_all']:.3f} (sure {result.model['f1_sure']:.3f}), "
            f"{'champion' if result.promoted else 'challenger'} (judged on {result.judged_on}); champion v"
            f"{result.champion_version} F1 {result.champion['f1_all']:.3f} ({result.seconds:.0f} s)")


# --- the whole run: both strategies, the table, the curve ----------------------------------------

@dataclass
class QualityRun:
    run_id: str
    started: datetime
    description: str
    loops: dict[str, Loop]
    seconds: float = 0.0
    plot: Path | None = None
    mlflow_run_id: str | None = None
    labels: np.ndarray | None = field(default=None, repr=False)  # the evaluation rows' (people's)

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        return next(iter(self.loops.values())).baselines

    @property
    def weak_predicted(self) -> np.ndarray | None:
        return next(iter(self.loops.values())).baseline_predicted.get(WEAK)

    def zero_gold(self) -> dict[str, float]:
        return next(iter(self.loops.values())).rounds[0].champion


def run_quality(data: LoopData, rounds: int = 8, per_round: int = 50, epochs: int = 30,
                strategies: Sequence[str] = tuple(STRATEGIES), base_env: Mapping[str, str] | None = None,
                progress: Callable[[str], None] = print) -> QualityRun:
    """Both loops (or `strategies`), then the learning curve in `learning_curve`, MLflow and a PNG."""
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
    began = time.monotonic()
    run = QualityRun(run_id, datetime.now(UTC), data.description, {}, labels=data.evaluation.labels)
    for offset, strategy in enumerate(strategies):
        settings = loop_settings(strategy, FIRST_VERSION + offset, run_id, base_env)
        run.loops[strategy] = run_loop(Loop(strategy, settings), data, rounds, per_round, epochs, progress)
    run.seconds = round(time.monotonic() - began, 1)
    settings = next(iter(run.loops.values())).settings
    record_curve(settings, run)
    run.plot = settings.data_dir / "quality" / f"learning_curve_{run_id}.png"
    plot_learning_curve(run, run.plot)
    run.mlflow_run_id = log_to_mlflow(settings, run)
    return run


def record_curve(settings: Settings, run: QualityRun) -> None:
    """The run's rounds into `learning_curve`, with its teachers' F1 and its bar (the dashboard
    shows the latest run)."""
    weak = run.baselines[WEAK]["f1_all"]
    rows = [(run.run_id, run.started, r.strategy, r.number, r.gold_labels, r.model_version, r.promoted,
             r.model["f1_all"], r.model["precision_all"], r.model["recall_all"], r.model["f1_sure"],
             weak, weak + MARGIN_OVER_WEAK)
            for loop in run.loops.values() for r in loop.rounds]
    with connect(settings) as conn:
        ensure_tables(conn, LEARNING_CURVE)
        conn.cursor().executemany(
            "INSERT INTO learning_curve (run_id, run_at, strategy, round, gold_labels, model_version, champion, "
            "f1_all, precision_all, recall_all, f1_sure, weak_f1_all, bar_f1_all) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
        conn.commit()


def plot_learning_curve(run: QualityRun, path: Path) -> Path:
    """The learning curve as a PNG (`learning_curve_figure`)."""
    figure = learning_curve_figure(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def learning_curve_figure(run: QualityRun):
    """F1 on the held-out rows (all and sure) against gold labels used, one line per strategy, with
    the teachers' F1, the bar (weak labels + margin, all rows), the target and the label budget. The
    F1 axis spans the plotted figures, not 0–1: the rounds differ by hundredths."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5.6), dpi=100)
    weak = run.baselines.get(WEAK)
    for column, part in enumerate(("all", "sure")):
        axes = figure.add_subplot(1, 2, column + 1)
        shown = []
        for strategy, loop in run.loops.items():
            f1 = [r.model[f"f1_{part}"] for r in loop.rounds]
            axes.plot([r.gold_labels for r in loop.rounds], f1, marker="o", label=strategy)
            shown += f1
        for (name, figures), style in zip(run.baselines.items(), (":", "--"), strict=False):
            axes.axhline(figures[f"f1_{part}"], color="grey", linestyle=style, label=name)
            shown.append(figures[f"f1_{part}"])
        if weak and part == "all":
            bar = weak["f1_all"] + MARGIN_OVER_WEAK
            axes.axhline(bar, color="tab:red", linestyle="-.", label=f"bar: weak + {MARGIN_OVER_WEAK}")
            shown.append(bar)
        axes.axhline(TARGET_F1[part], color="tab:green", linestyle="-.", label=f"target {TARGET_F1[part]}")
        shown.append(TARGET_F1[part])
        axes.axvline(LABEL_BUDGET, color="black", alpha=0.3, linewidth=1)
        axes.set(xlabel="gold labels used", ylabel="F1", title=f"held-out real tweets: {part} rows",
                 ylim=(max(0.0, min(shown) - 0.02), min(1.0, max(shown) + 0.02)))
        axes.grid(alpha=0.3)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=7)
    figure.tight_layout()
    return figure


def log_to_mlflow(settings: Settings, run: QualityRun) -> str:
    """One MLflow run: the baselines, each round's F1 (step = gold labels), the plot and the table."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri())
    mlflow.set_experiment(QUALITY_EXPERIMENT)
    with mlflow.start_run(run_name=f"quality-{run.run_id}") as active:
        mlflow.set_tags({"data": run.description, "quality_run_id": run.run_id})
        for name, figures in run.baselines.items():
            key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
            mlflow.log_metrics({f"{key}.{metric}": value for metric, value in figures.items()})
        for strategy, loop in run.loops.items():
            for r in loop.rounds:
                mlflow.log_metrics({f"{strategy}.{metric}": value for metric, value in r.model.items()},
                                   step=r.gold_labels)
                mlflow.log_metrics({f"{strategy}.champion_f1_all": r.champion["f1_all"]}, step=r.gold_labels)
        if run.plot:
            mlflow.log_artifact(str(run.plot), artifact_path="plots")
        mlflow.log_text(report_markdown(run), "quality.md")
        return active.info.run_id


def verdicts(run: QualityRun, budget: int = LABEL_BUDGET, margin: float = MARGIN_OVER_WEAK,
             from_labels: int = COMPARE_FROM_LABELS) -> list[str]:
    """The quality issue's bars, each with the figures it compares and, when the run kept the
    predictions, the difference's interval (`f1_difference`)."""
    weak = run.baselines[WEAK]
    lines = []
    zero = run.zero_gold()
    first = next(iter(run.loops.values())).rounds[0]
    lines.append(_verdict(zero["f1_all"] >= weak["f1_all"],
                          f"0 gold labels: champion F1 {zero['f1_all']:.3f} ≥ weak labels' {weak['f1_all']:.3f}"
                          + _aside(_difference(run, first.champion_predicted, run.weak_predicted))))
    loop = run.loops.get("uncertainty")
    if loop and len(loop.rounds) > 1:
        within = [r for r in loop.rounds if 0 < r.gold_labels <= budget]
        best = max(within, key=lambda r: r.champion["f1_all"]) if within else loop.rounds[-1]
        lines.append(_verdict(best.champion["f1_all"] >= weak["f1_all"] + margin,
                              f"≤ {budget} gold labels: champion F1 {best.champion['f1_all']:.3f} (sure "
                              f"{best.champion['f1_sure']:.3f}) at {best.gold_labels} labels ≥ weak labels' "
                              f"{weak['f1_all']:.3f} + {margin}"
                              + _aside(_difference(run, best.champion_predicted, run.weak_predicted))))
        top = {part: max(r.champion[f"f1_{part}"] for r in within or loop.rounds[-1:]) for part in TARGET_F1}
        lines.append(_verdict(all(top[part] >= TARGET_F1[part] for part in TARGET_F1),
                              f"target within {budget} gold labels: best champion F1 " + ", ".join(
                                  f"{top[part]:.3f} on {part} rows (target {TARGET_F1[part]})" for part in TARGET_F1)))
    if loop and "random" in run.loops:
        random_f1 = {r.gold_labels: r.model["f1_all"] for r in run.loops["random"].rounds}
        pairs = [(r.gold_labels, r.model["f1_all"], random_f1[r.gold_labels]) for r in loop.rounds
                 if r.gold_labels >= from_labels and r.gold_labels in random_f1]
        worse = [f"{labels}: {u:.3f} < {v:.3f}" for labels, u, v in pairs if u < v]
        lines.append(_verdict(bool(pairs) and not worse,
                              f"uncertainty ≥ random at every round from {from_labels} labels"
                              + (f" (not at {'; '.join(worse)})" if worse else f" ({len(pairs)} rounds)")))
        random_predicted = {r.gold_labels: r.predicted for r in run.loops["random"].rounds}
        spans = {r.gold_labels: _difference(run, r.predicted, random_predicted[r.gold_labels])
                 for r in loop.rounds if r.gold_labels >= from_labels and r.gold_labels in random_predicted}
        if spans and all(spans.values()):
            lines.append("INFO  uncertainty − random, F1 of the newest version: "
                         + "; ".join(f"{labels} labels: {text}" for labels, text in spans.items()))
    if "disagreement" in run.loops:  # issue 18: how disagreement sampling compares (no bar of its own)
        f1 = {name: {r.gold_labels: r.model["f1_all"] for r in loop.rounds} for name, loop in run.loops.items()}
        rounds = [r.gold_labels for r in run.loops["disagreement"].rounds if r.gold_labels >= from_labels]
        cells = [f"{labels}: " + " / ".join(f"{f1[name][labels]:.3f}" if labels in f1[name] else "–"
                                            for name in ("disagreement", "uncertainty", "random"))
                 for labels in rounds]
        lines.append("INFO  disagreement / uncertainty / random, F1 of the newest version: "
                     + ("; ".join(cells) or f"no round from {from_labels} labels"))
    return lines


def _difference(run: QualityRun, first: np.ndarray | None, second: np.ndarray | None) -> str:
    """'difference +0.005, 95 % interval -0.022 to +0.031': F1 of `first` minus `second` on the
    evaluation rows (`f1_difference`); empty when the run kept no predictions."""
    if run.labels is None or first is None or second is None:
        return ""
    difference, low, high = f1_difference(run.labels, first, second)
    return f"difference {difference:+.3f}, {INTERVAL:.0%} interval {low:+.3f} to {high:+.3f}"


def _aside(text: str) -> str:
    return f" ({text})" if text else ""


def _verdict(ok: bool, text: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {text}"


def report_markdown(run: QualityRun) -> str:
    """The table of the teachers and the loops, and the verdicts, as Markdown."""
    def row(name: str, figures: Mapping[str, float]) -> str:
        return (f"| {name} | {figures['precision_all']:.3f} | {figures['recall_all']:.3f} | {figures['f1_all']:.3f} "
                f"| {figures['precision_sure']:.3f} | {figures['recall_sure']:.3f} | {figures['f1_sure']:.3f} |")

    lines = [f"# Quality on held-out real tweets ({run.started:%Y-%m-%d %H:%M} UTC, {run.seconds / 60:.0f} min)", "",
             run.description, "",
             "| model | precision | recall | F1 | precision (sure) | recall (sure) | F1 (sure) |",
             "|---|---|---|---|---|---|---|"]
    lines += [row(name, figures) for name, figures in run.baselines.items()]
    lines.append(row("champion, 0 gold labels", run.zero_gold()))
    for strategy, loop in run.loops.items():
        lines += [row(f"{strategy}, {r.gold_labels} gold labels (v{r.model_version}"
                      f"{', champion' if r.promoted else ''})", r.model) for r in loop.rounds[1:]]
    lines += ["", "## Learning curve (F1 on all rows / sure rows)", "",
              "| gold labels | " + " | ".join(run.loops) + " |", "|---|" + "---|" * len(run.loops)]
    by_labels: dict[int, dict[str, str]] = {}
    for strategy, loop in run.loops.items():
        for r in loop.rounds:
            by_labels.setdefault(r.gold_labels, {})[strategy] = f"{r.model['f1_all']:.3f} / {r.model['f1_sure']:.3f}"
    lines += [f"| {labels} | " + " | ".join(cells.get(s, "") for s in run.loops) + " |"
              for labels, cells in sorted(by_labels.items())]
    lines += ["", *(f"- {line}" for line in verdicts(run)), ""]
    return "\n".join(lines)
