"""
### Train the classifier

Runs when the prepare stage updates the splits or new gold labels arrive (or by hand): trains
the Keras text classifier on `train_dataset_{version}` (gold labels where present, weak
probabilities elsewhere) with early stopping on dev, evaluates it on the test split (gold
labels when there are enough, else weak, and says which), logs the run to MLflow and
registers `ai-tweet-classifier`. The `champion` alias moves only if the new version beats
the champion on the same test split (else `challenger`); a new champion updates the
`champion_model` Asset, which restarts classification with it. Logic: `ai_tweets.train`.
"""

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ai_tweets.assets import CHAMPION_MODEL, DATASET_SPLITS, GOLD_LABELS
from ai_tweets.train import train_model


@dag(
    dag_id="train_model",
    schedule=(DATASET_SPLITS | GOLD_LABELS),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["train", "mlflow"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        "dataset_version": Param(0, type="integer", minimum=0),
        "epochs": Param(30, type="integer", minimum=1, maximum=200),
        "model_type": Param("naive", enum=["naive"], description="the Keras embedding-bag model"),
        "min_gold": Param(200, type="integer", minimum=1, description="gold test labels to evaluate on gold"),
        "seed": Param(0, type="integer", minimum=0),
    },
)
def train_model_dag():
    @task(execution_timeout=timedelta(hours=1))
    def train(params=None, triggering_asset_events=None) -> dict:
        events = [event for events in (triggering_asset_events or {}).values() for event in events]
        version = events[-1].extra.get("dataset_version", params["dataset_version"]) if events \
            else params["dataset_version"]
        return train_model(version, epochs=params["epochs"], min_gold=params["min_gold"], seed=params["seed"])

    @task(outlets=[CHAMPION_MODEL])
    def announce_champion(report: dict, outlet_events=None) -> dict:
        """Emits `champion_model` only when the alias moved."""
        if not report["decision"]["promoted"]:
            raise AirflowSkipException(f"version {report['model_version']} is a challenger, not champion")
        outlet_events[CHAMPION_MODEL].extra = {"version": report["model_version"], **report["metrics"]}
        return report["decision"]

    announce_champion(train())


train_model_dag()
