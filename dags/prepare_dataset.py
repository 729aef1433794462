"""
### Prepare the dataset

Runs when a capture updates the `raw_tweets` Asset (or by hand, with a version): dedup the
raw table into `deduplicated_{prefix}_{version}`, split it into
`test/dev/snorkel_train/train_dataset_{version}` (seeded, sticky: re-runs keep every tweet's
split and gold label), then fit the Snorkel LabelModel on snorkel_train and write
`weak_label`/`weak_prob` into every split, the LF summary (`lf_summary_{version}`, MLflow)
and Parquet copies. Emits the `dataset_splits` Asset for annotation and training.
Logic: `ai_tweets.prepare`.
"""

from datetime import timedelta

from airflow.sdk import Param, dag, task

from ai_tweets.assets import DATASET_SPLITS, RAW_TWEETS
from ai_tweets.dag_support import dataset_params, fails_fast, from_trigger, pipeline_dag, stage_task
from ai_tweets.prepare import dedup, split, weak_label


@dag(
    schedule=[RAW_TWEETS],
    **pipeline_dag(
        __doc__,
        tags=["prepare", "snorkel"],
        params={
            **dataset_params(raw_table_prefix=True),
            "test_size": Param(1_000, type="integer", minimum=1),
            "dev_size": Param(500, type="integer", minimum=1),
            "snorkel_train_size": Param(10_000, type="integer", minimum=1),
            "seed": Param(0, type="integer", minimum=0),
        },
    ),
)
def prepare_dataset():
    @task
    def target(params=None, triggering_asset_events=None) -> dict:
        """The version a capture just updated, else the one chosen in the trigger form."""
        return from_trigger(params, triggering_asset_events, "raw_table_prefix", "dataset_version")

    version = target()
    deduplicated = stage_task(dedup, task_id="dedup")(version["raw_table_prefix"], version["dataset_version"])
    splits = stage_task(split, task_id="split")(
        version["raw_table_prefix"], version["dataset_version"], "{{ params.test_size }}",
        "{{ params.dev_size }}", "{{ params.snorkel_train_size }}", "{{ params.seed }}")

    @task(outlets=[DATASET_SPLITS], execution_timeout=timedelta(minutes=30))
    def label(version: dict, seed=None, outlet_events=None) -> dict:
        report = fails_fast(weak_label)(version["dataset_version"], seed=int(seed or 0))
        outlet_events[DATASET_SPLITS].extra = {"dataset_version": report["dataset_version"],
                                               "splits": report["splits"]}
        return report

    deduplicated >> splits >> label(version, seed="{{ params.seed }}")


prepare_dataset()
