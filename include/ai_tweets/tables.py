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
