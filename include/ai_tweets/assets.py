"""Airflow Assets that chain the stages (imported by the DAG files only).

Each event carries the dataset version and row counts in its `extra`, so a downstream DAG
knows which version to work on.
"""

from airflow.sdk import Asset

# The raw table of a dataset version in streamingdb (`{prefix}_{version}`).
RAW_TWEETS = Asset("raw_tweets")
# The four split tables of a dataset version, with weak labels (`{split}_dataset_{version}`).
DATASET_SPLITS = Asset("dataset_splits")
# Updated when a new model version takes the `champion` alias.
CHAMPION_MODEL = Asset("champion_model")
# Gold labels from people arrived for a dataset version (new or changed `gold_label`s).
GOLD_LABELS = Asset("gold_labels")
# A trained version beat the champion and waits for a person's approval (PROMOTION_APPROVAL).
CHALLENGER_MODEL = Asset("challenger_model")
