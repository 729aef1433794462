"""Table names of the pipeline, derived from configuration and always quoted by the driver.

Names are validated as SQL identifiers when settings load; here they become
`psycopg.sql.Identifier`s, so no configured name is ever formatted into SQL text.
"""

from __future__ import annotations

from psycopg import sql

from ai_tweets.settings import Settings, validate_identifier

SPLITS = ("test", "dev", "snorkel_train", "train")


def raw_table_name(settings: Settings) -> str:
    """`{prefix}_{version}`, e.g. raw_tweet_dataset_0."""
    return validate_identifier(f"{settings.raw_table_prefix}_{settings.dataset_version}", "RAW_TABLE_PREFIX")


def dedup_table_name(settings: Settings) -> str:
    return validate_identifier(f"deduplicated_{raw_table_name(settings)}", "RAW_TABLE_PREFIX")


def split_table_name(split: str, settings: Settings) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return validate_identifier(f"{split}_dataset_{settings.dataset_version}", "DATASET_VERSION")


def identifier(name: str) -> sql.Identifier:
    """A validated table name as a driver-quoted identifier."""
    return sql.Identifier(validate_identifier(name, "table name"))


def lf_summary_table_name(settings: Settings) -> str:
    """The labeling functions' summary of a dataset version."""
    return validate_identifier(f"lf_summary_{settings.dataset_version}", "DATASET_VERSION")


# --- tables that stages write for whoever shows them (the dashboard, `make quality`) -----------

LABEL_COUNTS = "label_counts"  # weak and gold labels per split; prepare and annotate refresh their version's rows
MODEL_QUALITY = "model_quality"  # one row per trained version: how it was judged, on gold and on weak labels
LEARNING_CURVE = "learning_curve"  # `make quality`: F1 on held-out real tweets against gold labels used
LABEL_MODELS = "label_models"  # one row per LabelModel fit: the MLflow run the pipeline itself recorded

DDL: dict[str, str] = {
    LABEL_COUNTS: """
        CREATE TABLE IF NOT EXISTS label_counts (
            dataset_version integer NOT NULL,
            split           text NOT NULL,
            label_source    text NOT NULL CHECK (label_source IN ('weak', 'gold')),
            label           text NOT NULL CHECK (label IN ('AI', 'not AI', 'abstain')),
            tweets          bigint NOT NULL,
            counted_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (dataset_version, split, label_source, label)
        )""",
    MODEL_QUALITY: """
        CREATE TABLE IF NOT EXISTS model_quality (
            model_name        text NOT NULL,
            model_version     text NOT NULL,
            dataset_version   integer NOT NULL,
            trained_at        timestamptz NOT NULL DEFAULT now(),
            judged_on         text NOT NULL CHECK (judged_on IN ('gold', 'weak')),
            judged_in_words   text NOT NULL,
            f1                double precision NOT NULL,
            precision         double precision NOT NULL,
            recall            double precision NOT NULL,
            gold_f1           double precision,
            gold_rows         integer NOT NULL,
            weak_f1           double precision,
            weak_rows         integer NOT NULL,
            train_gold        integer NOT NULL,
            threshold         double precision NOT NULL,
            promoted          boolean NOT NULL,
            decision          text NOT NULL,
            PRIMARY KEY (model_name, model_version)
        )""",
    LEARNING_CURVE: """
        CREATE TABLE IF NOT EXISTS learning_curve (
            run_id          text NOT NULL,
            run_at          timestamptz NOT NULL,
            strategy        text NOT NULL,
            round           integer NOT NULL,
            gold_labels     integer NOT NULL,
            model_version   text NOT NULL,
            champion        boolean NOT NULL,
            f1_all          double precision NOT NULL,
            precision_all   double precision NOT NULL,
            recall_all      double precision NOT NULL,
            f1_sure         double precision NOT NULL,
            PRIMARY KEY (run_id, strategy, round)
        )""",
    LABEL_MODELS: """
        CREATE TABLE IF NOT EXISTS label_models (
            dataset_version integer NOT NULL,
            mlflow_run_id   text NOT NULL,
            fitted_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (dataset_version, mlflow_run_id)
        )""",
}
