"""
### Train the classifier

Runs when the prepare stage updates the splits or new gold labels arrive (or by hand): trains
the Keras text classifier (words and the labeling functions' vocabulary as signals) on the
train and snorkel_train splits (gold labels where present, weighted 5, weak probabilities
elsewhere) with early stopping on dev, judges it on the test split (gold labels once there are
`min_gold` of them, else weak labels, and says which in words), logs the run to MLflow,
registers `ai-tweet-classifier` and writes a row of `model_quality`. The `champion` alias moves
only if the new version beats the champion on the same test rows, and never to a version
judged on weak labels over one judged on gold (else `challenger`); a new champion updates the
`champion_model` Asset, which restarts classification with it. With `PROMOTION_APPROVAL` on, a
version that would replace the champion stays the `challenger` and updates the
`challenger_model` Asset instead: `promote_challenger` asks a person. Logic: `ai_tweets.train`.
"""

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ai_tweets.assets import CHALLENGER_MODEL, CHAMPION_MODEL, DATASET_SPLITS, GOLD_LABELS
from ai_tweets.dag_support import dataset_params, fails_fast, from_trigger, pipeline_dag
from ai_tweets.train import train_model


@dag(
    dag_id="train_model",
    schedule=(DATASET_SPLITS | GOLD_LABELS),
    **pipeline_dag(
        __doc__,
        tags=["train", "mlflow"],
        params={
            **dataset_params(),
            "epochs": Param(30, type="integer", minimum=1, maximum=200),
            "min_gold": Param(50, type="integer", minimum=1,
                              description="gold labels in the test split needed to judge models on gold"),
            "seed": Param(0, type="integer", minimum=0),
        },
    ),
)
def train_model_dag():
    @task(execution_timeout=timedelta(hours=1))
    def train(params=None, triggering_asset_events=None) -> dict:
        version = from_trigger(params, triggering_asset_events, "dataset_version")["dataset_version"]
        return fails_fast(train_model)(version, epochs=params["epochs"], min_gold=params["min_gold"],
                                       seed=params["seed"])

    @task(outlets=[CHAMPION_MODEL])
    def announce_champion(report: dict, outlet_events=None) -> dict:
        """Emits `champion_model` only when the alias moved."""
        if not report["decision"]["promoted"]:
            raise AirflowSkipException(f"version {report['model_version']} is a challenger, not champion")
        outlet_events[CHAMPION_MODEL].extra = {"version": report["model_version"], **report["metrics"]}
        return report["decision"]

    @task(outlets=[CHALLENGER_MODEL])
    def announce_challenger(report: dict, outlet_events=None) -> dict:
        """Emits `challenger_model` only when the new version waits for a person's approval."""
        if not report["decision"].get("awaiting_approval"):
            raise AirflowSkipException(f"version {report['model_version']} does not wait for an approval")
        outlet_events[CHALLENGER_MODEL].extra = {"version": report["model_version"], **report["metrics"]}
        return report["decision"]

    report = train()
    announce_champion(report)
    announce_challenger(report)


train_model_dag()
