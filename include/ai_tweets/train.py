"""The train stage as plain functions (the CLI and the `train_model` DAG call these):
split tables → Keras classifier → evaluation (gold first) → MLflow run and registry →
`champion` alias only if it beats the current champion on the same test split."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from ai_tweets.dataset import ABSTAIN
from ai_tweets.settings import Settings, load_settings
from ai_tweets.sources import read_texts
from ai_tweets.storage import connect

log = logging.getLogger(__name__)

EXPERIMENT = "ai-tweet-classifier"
SELECTION_METRIC = "f1"


def _texts_and_targets(frame, soft: bool):
    """Gold labels where people gave them, weak labels (probabilities if `soft`) elsewhere;
    tweets every labeling function abstained on and nobody labeled carry no signal: dropped."""
    gold = frame["gold_label"].notna()
    usable = frame[gold | (frame["weak_label"] != ABSTAIN)]
    gold = usable["gold_label"].notna()
    weak = usable["weak_prob"] if soft else (usable["weak_label"] == 1).astype(float)
    targets = usable["gold_label"].where(gold, weak).astype(float)
    return usable["text"].tolist(), targets.to_numpy(), int(gold.sum())


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


def train_model(dataset_version: int | str | None = None, epochs: int = 30, min_gold: int = 200,
                seed: int = 0, batch_size: int = 256, patience: int = 5) -> dict:
    """Train, evaluate, register, and promote if better. Returns what was decided and why."""
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from ai_tweets import model as classifier

    settings = load_settings(dataset_version=dataset_version)
    began = time.monotonic()
    frames = load_frames(settings)
    # The classifier learns from every weakly labeled tweet outside dev and test: the train split
    # and the snorkel_train split the LabelModel was fitted on.
    learn_from = pd.concat([frames["train"], frames["snorkel_train"]], ignore_index=True)
    train_texts, train_targets, train_gold = _texts_and_targets(learn_from, soft=True)
    dev_texts, dev_targets, _ = _texts_and_targets(frames["dev"], soft=False)
    test_texts, test_labels, test_gold = _texts_and_targets(frames["test"], soft=False)
    # Evaluate against gold labels when there are enough of them, else against weak labels.
    if test_gold >= min_gold:
        gold_rows = frames["test"][frames["test"]["gold_label"].notna()]
        test_texts, test_labels = gold_rows["text"].tolist(), gold_rows["gold_label"].astype(int).to_numpy()
        label_source = "gold"
    else:
        label_source = "weak"
    trained = classifier.train(train_texts, train_targets, dev_texts, dev_targets, epochs=int(epochs),
                               batch_size=int(batch_size), seed=int(seed), patience=int(patience),
                               dev_labels=(np.asarray(dev_targets) >= 0.5).astype(int))
    train_seconds = time.monotonic() - began
    probabilities = trained.predict(test_texts)
    metrics = classifier.evaluate(probabilities, np.asarray(test_labels).astype(int), trained.threshold)
    metrics["train_seconds"] = train_seconds
    dataset_info = {"version": settings.dataset_version, "train_rows": len(train_texts),
                    "train_gold": train_gold, "dev_rows": len(dev_texts), "test_rows": len(test_texts),
                    "test_gold": test_gold, "evaluated_on": label_source}
    with tempfile.TemporaryDirectory(prefix="ai-tweets-plots-") as tmp:
        plots = [classifier.plot_pr_curve(probabilities, test_labels, Path(tmp) / "pr_curve.png"),
                 classifier.plot_confusion_matrix(metrics, Path(tmp) / "confusion_matrix.png")]
        version = classifier.log_and_register(
            trained, metrics, tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name,
            params={"model_type": "naive", "min_gold": min_gold}, plots=plots,
            tags={"evaluated_on": label_source, "lf_summary_table": f"lf_summary_{settings.dataset_version}"},
            dataset_info=dataset_info, experiment_name=EXPERIMENT)

    def champion_score(champion) -> float:
        scores = classifier.predict_texts(f"models:/{settings.model_name}/{champion.version}", test_texts,
                                          settings.mlflow_tracking_uri)
        return classifier.evaluate(scores, test_labels, _threshold_of(champion, settings))[SELECTION_METRIC]

    decision = classifier.promote_if_better(MlflowClient(settings.mlflow_tracking_uri), settings.model_name,
                                            version, metrics[SELECTION_METRIC], SELECTION_METRIC, champion_score)
    if decision["promoted"]:
        from ai_tweets.dashboard import sync_champion_metrics

        with connect(settings) as conn:
            sync_champion_metrics(conn, settings)  # the dashboard's "champion" panel
    report = {"dataset_version": settings.dataset_version, "model_version": str(version.version),
              "evaluated_on": label_source, "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
              "threshold": trained.threshold, "decision": decision, "seconds": round(time.monotonic() - began, 1)}
    log.info("trained %s version %s (%s-labelled test F1 %.3f): %s", settings.model_name, version.version,
             label_source, metrics[SELECTION_METRIC], "champion" if decision["promoted"] else "challenger")
    return report


def _threshold_of(champion, settings: Settings) -> float:
    """The decision threshold logged with a registered version."""
    from mlflow import MlflowClient

    run = MlflowClient(settings.mlflow_tracking_uri).get_run(champion.run_id)
    return float(run.data.params.get("threshold", 0.5))


def predict_file(input_path: Path, output_path: Path, model_uri: str | None = None,
                 settings: Settings | None = None) -> int:
    """`ai-tweets predict`: JSONL of {"text": ...} → CSV text,ai_probability,label."""
    import pandas as pd

    from ai_tweets import model as classifier

    settings = settings or load_settings()
    texts = read_texts(input_path)
    uri = model_uri or f"models:/{settings.model_name}@champion"
    loaded = classifier.load_classifier(uri, settings.mlflow_tracking_uri)
    output = loaded.predict(pd.DataFrame({"text": texts}))
    pd.DataFrame({"text": texts, "ai_probability": output["ai_probability"],
                  "label": output["label"]}).to_csv(output_path, index=False)
    return len(texts)
