"""The prepare stage as plain functions (the CLI and the `prepare_dataset` DAG call these):
dedup → split → weak labels (Snorkel LFs + LabelModel) → LF summary, MLflow, Parquet."""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from ai_tweets.dataset import SplitSizes, dedup_raw_tweets, refresh_label_counts, split_dataset
from ai_tweets.model_files import UntrustedModel
from ai_tweets.sources import read_texts
from ai_tweets.storage import connect, ensure_tables, table_exists, update_columns
from ai_tweets.tables import (
    ABSTAIN,
    AI,
    LABEL_MODELS,
    SPLITS,
    identifier,
    lf_summary_table_name,
    split_table_name,
    summary_table_ddl,
)
from ai_tweets.tracking import WEAK_LABEL_EXPERIMENT
from stackbase.settings import Settings, load_settings

if TYPE_CHECKING:  # pandas is imported by the functions that use it, not by DAG files
    import pandas as pd

log = logging.getLogger(__name__)

LABEL_MODEL_ARTIFACT = "label_model/label_model.pkl"
FRAME_COLUMNS = ("tweet_id", "text", "hashtags", "mentions", "urls", "author_handle", "is_retweet",
                 "gold_label")


def _settings(raw_table_prefix: str | None, dataset_version: int | str | None) -> Settings:
    return load_settings(raw_table_prefix=raw_table_prefix, dataset_version=dataset_version)


def dedup(raw_table_prefix: str | None = None, dataset_version: int | str | None = None) -> dict:
    settings = _settings(raw_table_prefix, dataset_version)
    with connect(settings) as conn:
        report = dedup_raw_tweets(conn, settings)
    return {"table": report.table, "raw_rows": report.raw_rows, "kept": report.kept,
            "removed": report.removed}


def split(raw_table_prefix: str | None = None, dataset_version: int | str | None = None,
          test_size: int = 1_000, dev_size: int = 500, snorkel_train_size: int = 10_000,
          seed: int = 0) -> dict:
    settings = _settings(raw_table_prefix, dataset_version)
    sizes = SplitSizes(test=int(test_size), dev=int(dev_size), snorkel_train=int(snorkel_train_size))
    with connect(settings) as conn:
        return split_dataset(conn, settings, sizes, seed=int(seed))


def load_split_frame(conn, settings: Settings, split_name: str) -> pd.DataFrame:
    table = split_table_name(split_name, settings)
    query = sql.SQL("SELECT {columns} FROM {table} ORDER BY tweet_id").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, FRAME_COLUMNS)), table=identifier(table))
    import pandas as pd

    rows = conn.execute(query).fetchall()
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def _gold(frame: pd.DataFrame):
    return frame["gold_label"].fillna(ABSTAIN).astype(int).to_numpy()


def weak_label(dataset_version: int | str | None = None, seed: int = 0, epochs: int = 500,
               parquet: bool = True, track: bool = True, settings: Settings | None = None) -> dict:
    """Fit the LabelModel on snorkel_train, write weak_label/weak_prob into every split, save
    the LF summary (table + MLflow), the fitted model (MLflow) and Parquet copies."""
    import pandas as pd

    from ai_tweets import label_model, labeling

    settings = settings or _settings(None, dataset_version)
    began = time.monotonic()
    with connect(settings) as conn:
        frames = {name: load_split_frame(conn, settings, name) for name in SPLITS}
    matrices = {name: labeling.apply_lfs(frame) for name, frame in frames.items()}
    fit_began = time.monotonic()
    model = label_model.fit_label_model(matrices["snorkel_train"], seed=int(seed), epochs=int(epochs))
    fit_seconds = time.monotonic() - fit_began

    report: dict = {"dataset_version": settings.dataset_version, "splits": {}}
    with connect(settings) as conn:
        for name, frame in frames.items():
            labels, probs = label_model.weak_labels(model, matrices[name])
            rows = zip(frame["tweet_id"].tolist(), labels.tolist(), probs.tolist(), strict=True)
            update_columns(conn, split_table_name(name, settings), "tweet_id", ("weak_label", "weak_prob"),
                           rows)
            frame["weak_label"], frame["weak_prob"] = labels, probs
            report["splits"][name] = _split_metrics(frame)
        summary_frame = pd.concat([frames[name] for name in SPLITS])
        has_gold = summary_frame["gold_label"].notna().any()
        summary = labeling.lf_summary(_stacked(matrices), _gold(summary_frame) if has_gold else None)
        _write_lf_summary(conn, lf_summary_table_name(settings), summary)
        refresh_label_counts(conn, settings)
        conn.commit()
    if parquet:
        report["parquet"] = str(_write_parquet(frames, settings))
    report["label_model_fit_seconds"] = round(fit_seconds, 2)
    report["seconds"] = round(time.monotonic() - began, 2)
    if track:
        report["mlflow_run_id"], digest = _track(settings, model, summary, report, seed)
        with connect(settings) as conn:
            ensure_tables(conn, LABEL_MODELS)
            conn.execute(sql.SQL("INSERT INTO {t} (dataset_version, mlflow_run_id, sha256) VALUES (%s, %s, %s)")
                         .format(t=identifier(LABEL_MODELS)),
                         (settings.dataset_version, report["mlflow_run_id"], digest))
            conn.commit()
    print(summary.to_string(index=False))
    log.info("weak labels for version %d: %s", settings.dataset_version, report["splits"])
    return report


def _stacked(matrices: dict):
    import numpy as np

    return np.vstack([matrices[name] for name in SPLITS])


def _split_metrics(frame: pd.DataFrame) -> dict:
    """Coverage and AI share; against gold labels where people gave any."""
    rows = len(frame)
    metrics = {"rows": rows, "covered": float((frame["weak_label"] != ABSTAIN).mean()) if rows else 0.0,
               "weak_ai_share": float((frame["weak_label"] == AI).mean()) if rows else 0.0}
    gold = frame[frame["gold_label"].notna()]
    metrics["gold_labels"] = len(gold)
    if len(gold):
        metrics.update(gold_metrics(gold["gold_label"].astype(int), (gold["weak_label"] == AI).astype(int)))
    return metrics


def gold_metrics(gold, predicted) -> dict:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(gold, predicted, average="binary",
                                                               zero_division=0)
    return {"gold_accuracy": float(accuracy_score(gold, predicted)), "gold_precision": float(precision),
            "gold_recall": float(recall), "gold_f1": float(f1)}


LF_SUMMARY_COLUMNS = {"lf": "text PRIMARY KEY", "description": "text", "polarity": "text", "coverage": "real",
                      "overlaps": "real", "conflicts": "real", "correct": "integer", "incorrect": "integer",
                      "emp_accuracy": "real"}


def _write_lf_summary(conn, table: str, summary: pd.DataFrame) -> None:
    """Replace the table's rows with `summary`, unless they are the same already: a re-run on
    the same data leaves the table (and its `computed_at`) untouched."""
    columns = list(LF_SUMMARY_COLUMNS)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    # Quoted column names: `overlaps` is an SQL keyword.
    definitions = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                                     for name, kind in LF_SUMMARY_COLUMNS.items())
    stage = sql.Identifier(f"stage_{table}"[:63])
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {s}").format(s=stage))
        conn.execute(sql.SQL("CREATE TEMP TABLE {s} ({definitions})").format(s=stage, definitions=definitions))
        with conn.cursor().copy(sql.SQL("COPY {s} ({c}) FROM STDIN").format(s=stage, c=names)) as copy:
            for row in summary.itertuples(index=False):
                record = row._asdict()
                copy.write_row([_plain(record.get(column)) for column in columns])
        if table_exists(conn, table) and _same_columns(conn, table, ["computed_at", *columns]):
            differences = conn.execute(sql.SQL(
                "SELECT count(*) FROM ((SELECT {c} FROM {s} EXCEPT ALL SELECT {c} FROM {t}) "
                "UNION ALL (SELECT {c} FROM {t} EXCEPT ALL SELECT {c} FROM {s})) d"
            ).format(c=names, s=stage, t=identifier(table))).fetchone()[0]
            if differences == 0:
                return
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=identifier(table)))
        conn.execute(summary_table_ddl(table, definitions))
        conn.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(t=identifier(table), c=names,
                                                                               s=stage))


def _same_columns(conn, table: str, columns: list[str]) -> bool:
    found = {row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s",
        (table,)).fetchall()}
    return found == set(columns)


def _plain(value):
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value) if isinstance(value, list | tuple) else value


def _write_parquet(frames: dict[str, pd.DataFrame], settings: Settings) -> Path:
    folder = settings.data_dir / "datasets" / f"v{settings.dataset_version}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _track(settings: Settings, model, summary: pd.DataFrame, report: dict, seed: int) -> tuple[str, str]:
    """The fit's MLflow run: parameters, metrics, the LF summary and the pickled model; returns
    the run id and the pickle's SHA-256."""
    import mlflow

    from ai_tweets import label_model

    mlflow.set_tracking_uri(settings.mlflow_uri())
    mlflow.set_experiment(WEAK_LABEL_EXPERIMENT)
    with mlflow.start_run(run_name=f"weak-labels-v{settings.dataset_version}") as run:
        mlflow.set_tag("dataset_version", str(settings.dataset_version))
        mlflow.log_params({"dataset_version": settings.dataset_version, "seed": seed,
                           "labeling_functions": len(summary)})
        for name, metrics in report["splits"].items():
            mlflow.log_metrics({f"{name}_{key}": value for key, value in metrics.items()})
        mlflow.log_metric("label_model_fit_seconds", report["label_model_fit_seconds"])
        mlflow.log_text(summary.to_csv(index=False), "lf_summary.csv")
        pickled = label_model.dump_label_model(model)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "label_model.pkl"
            path.write_bytes(pickled)
            mlflow.log_artifact(str(path), artifact_path="label_model")
        return run.info.run_id, hashlib.sha256(pickled).hexdigest()


def load_recorded_label_model(settings: Settings, dataset_version: int | None = None):
    """The label model of the newest fit the pipeline recorded in streamingdb (`label_models`)
    for a dataset version (default DATASET_VERSION), and its MLflow run id. Never "the newest run
    in MLflow": anyone who can write to MLflow could start a run that looks newer, and loading a
    pickle is running its code; and the pickle's bytes must be the ones the pipeline recorded."""
    version = settings.dataset_version if dataset_version is None else int(dataset_version)
    with connect(settings) as conn:
        ensure_tables(conn, LABEL_MODELS)
        row = conn.execute(sql.SQL("SELECT mlflow_run_id FROM {t} WHERE dataset_version = %s "
                                   "ORDER BY fitted_at DESC LIMIT 1").format(t=identifier(LABEL_MODELS)),
                           (version,)).fetchone()
        conn.commit()
    if row is None:
        raise LookupError(f"no label model recorded for dataset version {version} in {LABEL_MODELS}: run "
                          f"`ai-tweets prepare` first")
    return load_label_model(settings, row[0]), row[0]


def load_label_model(settings: Settings, run_id: str):
    """The label model that the weak-labeling MLflow run `run_id` fitted, unpickled only if its
    bytes have the SHA-256 the pipeline recorded for that run in `label_models` (UntrustedModel
    otherwise: a run the pipeline did not record, or a pickle replaced in the artifact store)."""
    import mlflow

    from ai_tweets import label_model

    with connect(settings) as conn:
        ensure_tables(conn, LABEL_MODELS)
        row = conn.execute(sql.SQL("SELECT sha256 FROM {t} WHERE mlflow_run_id = %s AND sha256 IS NOT NULL "
                                   "LIMIT 1").format(t=identifier(LABEL_MODELS)), (run_id,)).fetchone()
        conn.commit()
    if row is None:
        raise UntrustedModel(f"the label model of MLflow run {run_id} has no recorded SHA-256 in {LABEL_MODELS} "
                             f"(not fitted by the pipeline, or before it recorded them): run `ai-tweets prepare`")
    mlflow.set_tracking_uri(settings.mlflow_uri())
    pickled = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=LABEL_MODEL_ARTIFACT)).read_bytes()
    if hashlib.sha256(pickled).hexdigest() != row[0]:
        raise UntrustedModel(f"the label model of MLflow run {run_id} changed since the pipeline recorded it: "
                             f"not loaded")
    return label_model.load_label_model(pickled)


def score_file(input_path: Path, output_path: Path, settings: Settings | None = None) -> int:
    """`ai-tweets weak-label`: JSONL of {"text": ...} → CSV text,weak_label,weak_prob."""
    import pandas as pd

    from ai_tweets import label_model, labeling

    settings = settings or load_settings()
    texts = read_texts(input_path)
    model, run_id = load_recorded_label_model(settings)
    labels, probs = label_model.weak_labels(model, labeling.apply_lfs(labeling.frame_from_texts(texts)))
    out = pd.DataFrame({"text": texts, "weak_label": labels, "weak_prob": probs})
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    output_path.write_text(buffer.getvalue())
    log.info("scored %d texts with the label model of MLflow run %s → %s", len(texts), run_id, output_path)
    return len(texts)


def prepare_all(raw_table_prefix: str | None = None, dataset_version: int | str | None = None,
                sizes: SplitSizes | None = None, seed: int = 0) -> dict:
    """`ai-tweets prepare`: the whole stage, as the DAG runs it."""
    sizes = sizes or SplitSizes()
    return {
        "dedup": dedup(raw_table_prefix, dataset_version),
        "splits": split(raw_table_prefix, dataset_version, sizes.test, sizes.dev, sizes.snorkel_train, seed),
        "weak_labels": weak_label(_settings(raw_table_prefix, dataset_version).dataset_version, seed=seed),
    }
