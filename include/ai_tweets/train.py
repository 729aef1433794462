"""The train stage as plain functions (the CLI and the `train_model` DAG call these):
split tables → Keras classifier → evaluation (gold first) → MLflow run and registry →
`champion` alias only if it beats the current champion on the same test split."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from psycopg.types.json import Jsonb

from ai_tweets.model_files import record_version, verified
from ai_tweets.precision import precision_curve
from ai_tweets.sources import read_texts
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import ABSTAIN, AI, MODEL_QUALITY, lf_summary_table_name
from ai_tweets.tracking import CLASSIFIER_EXPERIMENT
from stackbase.settings import Settings, load_settings

log = logging.getLogger(__name__)

SELECTION_METRIC = "f1"
COMPARED_METRICS = ("f1", "precision", "recall")  # what a promotion request shows of both versions
GOLD_WEIGHT = 5.0  # a person's label counts as much as five of the labeling functions' votes
# Once people's labels are among the training rows, the threshold is placed on out-of-fold
# predictions of this many models (`model.train`): on the model's own predictions it moved with
# each new set of labels and lost up to 0.05 of F1 on held-out real tweets (README, "Quality").
THRESHOLD_FOLDS = 5
MIN_GOLD = 50  # gold labels in the test split (of both classes) before models are judged on gold


def _texts_and_targets(frame, gold_weight: float = GOLD_WEIGHT):
    """Gold labels where people gave them (weight `gold_weight`), weak probabilities elsewhere
    (weight 1); tweets every labeling function abstained on and nobody labeled carry no signal:
    dropped. Returns texts, soft targets, weights, hard labels and the number of gold rows."""
    import numpy as np

    gold = frame["gold_label"].notna()
    usable = frame[gold | (frame["weak_label"] != ABSTAIN)]
    gold = usable["gold_label"].notna().to_numpy()
    gold_labels = usable["gold_label"].astype(float).fillna(0.0)  # object dtype when some are None
    soft = np.where(gold, gold_labels, usable["weak_prob"].astype(float))
    hard = np.where(gold, gold_labels.astype(int), (usable["weak_label"] == AI).astype(int))
    weights = np.where(gold, gold_weight, 1.0)
    return usable["text"].tolist(), soft, weights, hard, int(gold.sum())


def judging_rows(test, min_gold: int = MIN_GOLD) -> tuple[list[str], list[int], str]:
    """The test rows a model is judged on, their labels, and which labels they are: the gold
    labels when there are at least `min_gold` of them with both classes, else the weak labels
    (what the labeling functions say, so agreement with them, not quality)."""
    gold = test[test["gold_label"].notna()]
    if len(gold) >= min_gold and gold["gold_label"].nunique() == 2:
        return gold["text"].tolist(), gold["gold_label"].astype(int).tolist(), "gold"
    weak = test[test["weak_label"] != ABSTAIN]
    return weak["text"].tolist(), (weak["weak_label"] == AI).astype(int).tolist(), "weak"


def judged_in_words(source: str, rows: int) -> str:
    """How a model was judged, for the demo's summary and the dashboard."""
    if source == "gold":
        return f"on gold labels of {rows:,} test tweets"
    return (f"on weak labels of {rows:,} test tweets (no {MIN_GOLD} gold labels yet: agreement with the "
            f"labeling functions, not quality)")


def load_frames(settings: Settings) -> dict:
    import pandas as pd
    from psycopg import sql

    from ai_tweets.tables import identifier, split_table_name

    frames = {}
    with connect(settings) as conn:
        for split in ("train", "snorkel_train", "dev", "test"):
            rows = conn.execute(sql.SQL("SELECT tweet_id, text, weak_label, weak_prob, gold_label FROM {t} "
                                        "ORDER BY tweet_id").format(t=identifier(split_table_name(split, settings))))
            frames[split] = pd.DataFrame(rows.fetchall(),
                                         columns=["tweet_id", "text", "weak_label", "weak_prob", "gold_label"])
    if frames["train"]["weak_label"].isna().all():
        raise LookupError(f"train_dataset_{settings.dataset_version} has no weak labels: run the prepare stage")
    return frames


def train_model(dataset_version: int | str | None = None, epochs: int = 30, min_gold: int = MIN_GOLD,
                seed: int = 0, batch_size: int = 256, patience: int = 3, gold_weight: float = GOLD_WEIGHT,
                settings: Settings | None = None, experiment: str = CLASSIFIER_EXPERIMENT) -> dict:
    """Train, evaluate, register, and promote if better. Returns what was decided and why."""
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from ai_tweets import model as classifier

    settings = settings or load_settings(dataset_version=dataset_version)
    began = time.monotonic()
    frames = load_frames(settings)
    # The classifier learns from every labeled tweet outside dev and test: the train split and
    # the snorkel_train split the LabelModel was fitted on.
    learn_from = pd.concat([frames["train"], frames["snorkel_train"]], ignore_index=True)
    train_texts, train_targets, train_weights, train_labels, train_gold = _texts_and_targets(learn_from, gold_weight)
    dev_texts, dev_targets, _, dev_labels, dev_gold = _texts_and_targets(frames["dev"], gold_weight)
    test_texts, test_labels, judged_on = judging_rows(frames["test"], int(min_gold))
    trained = classifier.train(train_texts, train_targets, dev_texts, dev_targets, epochs=int(epochs),
                               batch_size=int(batch_size), seed=int(seed), patience=int(patience),
                               train_weights=train_weights, train_labels=train_labels, dev_labels=dev_labels,
                               threshold_folds=THRESHOLD_FOLDS if train_gold else 0)
    train_seconds = time.monotonic() - began
    probabilities = trained.predict(test_texts)
    metrics = classifier.evaluate(probabilities, np.asarray(test_labels).astype(int), trained.threshold)
    metrics["train_seconds"] = train_seconds
    metrics.update(_both_judgements(trained, frames["test"]))
    dataset_info = {"version": settings.dataset_version, "train_rows": len(train_texts),
                    "train_gold": train_gold, "dev_rows": len(dev_texts), "dev_gold": dev_gold,
                    "test_rows": len(test_texts), "test_gold": int(frames["test"]["gold_label"].notna().sum()),
                    "evaluated_on": judged_on}
    words = judged_in_words(judged_on, len(test_texts))
    with tempfile.TemporaryDirectory(prefix="ai-tweets-plots-") as tmp:
        plots = [classifier.plot_pr_curve(probabilities, test_labels, Path(tmp) / "pr_curve.png", trained.threshold,
                                          title=f"Precision-recall, {judged_on} labels (test)"),
                 classifier.plot_confusion_matrix(metrics, Path(tmp) / "confusion_matrix.png",
                                                  title=f"Confusion matrix, {judged_on} labels (test)")]
        version = classifier.log_and_register(
            trained, metrics, tracking_uri=settings.mlflow_uri(), model_name=settings.model_name,
            params={"gold_weight": gold_weight, "min_gold": min_gold}, plots=plots,
            tags={"evaluated_on": judged_on, "evaluated_in_words": words,
                  "lf_summary_table": lf_summary_table_name(settings)},
            dataset_info=dataset_info, experiment_name=experiment)

    # Recorded before it can become the champion: whoever loads it checks its files against this.
    record_version(settings, settings.model_name, str(version.version))

    def champion_metrics(champion) -> dict[str, float]:
        with verified(settings, f"models:/{settings.model_name}/{champion.version}") as local:
            scores = classifier.predict_texts(classifier.load_classifier(local), test_texts)
        judged = classifier.evaluate(scores, test_labels, _threshold_of(champion, settings))
        return {key: float(judged[key]) for key in COMPARED_METRICS}

    decision = classifier.promote_if_better(
        MlflowClient(settings.mlflow_uri()), settings.model_name, version, metrics[SELECTION_METRIC],
        SELECTION_METRIC, champion_metrics, judged_on=judged_on, approval=settings.promotion_approval,
        new_metrics={key: float(metrics[key]) for key in COMPARED_METRICS}, compared_rows=len(test_texts))
    curve = precision_curve(probabilities, test_labels) if judged_on == "gold" else None
    record_quality(settings, str(version.version), judged_on, words, metrics, dataset_info, trained.threshold,
                    decision, curve)
    report = {"dataset_version": settings.dataset_version, "model_version": str(version.version),
              "evaluated_on": judged_on, "evaluated_in_words": words,
              "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
              "threshold": trained.threshold, "decision": decision, "seconds": round(time.monotonic() - began, 1)}
    log.info("trained %s version %s (test F1 %.3f %s): %s", settings.model_name, version.version,
             metrics[SELECTION_METRIC], words, "champion" if decision["promoted"] else
             f"challenger ({decision['reason']})")
    return report


def record_quality(settings: Settings, version: str, judged_on: str, words: str, metrics: dict, dataset_info: dict,
                    threshold: float, decision: dict, curve: list | None = None) -> None:
    """One row of `model_quality` per trained version: how it was judged, on gold and on weak
    labels side by side, whether it became the champion (what the dashboard shows), and its
    precision at each threshold on gold labels (what automatic retweets are limited by)."""
    with connect(settings) as conn:
        ensure_tables(conn, MODEL_QUALITY)
        conn.execute(
            "INSERT INTO model_quality (model_name, model_version, dataset_version, judged_on, judged_in_words, f1, "
            "precision, recall, gold_f1, gold_rows, weak_f1, weak_rows, train_gold, threshold, promoted, decision, "
            "gold_precision_curve) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (model_name, model_version) DO NOTHING",
            (settings.model_name, version, settings.dataset_version, judged_on, words, metrics["f1"],
             metrics["precision"], metrics["recall"], metrics.get("gold_f1"), int(metrics.get("gold_rows", 0)),
             metrics.get("weak_f1"), int(metrics.get("weak_rows", 0)), int(dataset_info["train_gold"]), threshold,
             decision["promoted"], decision["reason"], None if curve is None else Jsonb(curve)))
        conn.commit()


def _both_judgements(trained, test) -> dict[str, float]:
    """F1, precision and recall against the test split's gold labels (however few) and against
    its weak labels, side by side: `gold_f1`, `weak_f1`, ... (a side with no rows is left out)."""
    import numpy as np

    from ai_tweets import model as classifier

    found = {}
    gold = test[test["gold_label"].notna()]
    weak = test[test["weak_label"] != ABSTAIN]
    for side, rows, labels in (("gold", gold, gold["gold_label"]), ("weak", weak, weak["weak_label"] == AI)):
        if len(rows):
            scores = classifier.evaluate(trained.predict(rows["text"].tolist()),
                                         np.asarray(labels).astype(int), trained.threshold)
            found.update({f"{side}_{key}": scores[key] for key in ("f1", "precision", "recall")})
            found[f"{side}_rows"] = float(len(rows))
    return found


def _threshold_of(champion, settings: Settings) -> float:
    """The decision threshold logged with a registered version."""
    from mlflow import MlflowClient

    run = MlflowClient(settings.mlflow_uri()).get_run(champion.run_id)
    return float(run.data.params.get("threshold", 0.5))


def predict_file(input_path: Path, output_path: Path, model_uri: str | None = None,
                 settings: Settings | None = None) -> int:
    """`ai-tweets predict`: JSONL of {"text": ...} → CSV text,ai_probability,label."""
    import pandas as pd

    from ai_tweets import model as classifier

    settings = settings or load_settings()
    texts = read_texts(input_path)
    uri = model_uri or f"models:/{settings.model_name}@champion"
    with verified(settings, uri) as local:
        loaded = classifier.load_classifier(local)
    output = loaded.predict(pd.DataFrame({"text": texts}))
    pd.DataFrame({"text": texts, "ai_probability": output["ai_probability"],
                  "label": output["label"]}).to_csv(output_path, index=False)
    return len(texts)
