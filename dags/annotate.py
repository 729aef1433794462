"""
### Annotate: gold labels from people, most uncertain tweets first

Runs when prepare updates the `dataset_splits` Asset and every 10 minutes (the active-learning
loop), or by hand with a version. **pull** reads the Label Studio project "AI tweets
v{version}" back into `gold_label` (who and when; skips stay NULL; edits update; idempotent),
then **push** tops the queue up with the most uncertain unlabeled tweets of every split, a
quarter of them from test so that models are judged on gold labels (`strategy` model: the
champion's probability nearest its threshold, weak until there is a champion; weak:
|weak_prob - 0.5|; random; disagreement: what the champion and the challenger, or the weak
labels, label differently first), each with the weak label as a pre-annotation, never a tweet twice.
The Label Studio project carries the labeling guide as its instructions. **announce** emits the `gold_labels`
Asset only when new or changed gold labels arrived, so training follows. Label Studio down:
the tasks fail with a clear message and retry. Logic: `ai_tweets.annotation`.
"""

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ai_tweets.annotation import STRATEGIES, pull, push
from ai_tweets.assets import DATASET_SPLITS, GOLD_LABELS
from ai_tweets.dag_support import assets_or_every, dataset_params, from_trigger, pipeline_dag, stage_task


@dag(
    schedule=assets_or_every("*/10 * * * *", [DATASET_SPLITS]),
    **pipeline_dag(
        __doc__,
        tags=["annotate", "label-studio", "active-learning"],
        retries=3,
        render_template_as_native_obj=True,  # a null max_pending reaches push as None
        params={
            **dataset_params(),
            "batch_size": Param(100, type="integer", minimum=0),
            "strategy": Param("model", type="string", enum=list(STRATEGIES)),
            "max_pending": Param(200, type=["null", "integer"], minimum=0,
                                 description="top the queue up to at most this many unlabeled tasks (null: no cap)"),
        },
    ),
)
def annotate():
    @task
    def target(params=None, triggering_asset_events=None) -> int:
        """The version prepare just split, else the one chosen in the trigger form."""
        return int(from_trigger(params, triggering_asset_events, "dataset_version")["dataset_version"])

    version = target()
    pulled = stage_task(pull, task_id="pull", execution_timeout=timedelta(minutes=10))(version)
    pushed = stage_task(push, task_id="push", execution_timeout=timedelta(minutes=20))(
        version, "{{ params.batch_size }}", "{{ params.strategy }}", "{{ params.max_pending }}")

    @task(outlets=[GOLD_LABELS])
    def announce(report: dict, outlet_events=None) -> None:
        """An asset event is emitted only on success: skip when no gold label is new or changed."""
        if not (report["new"] or report["changed"]):
            raise AirflowSkipException("no new or changed gold labels")
        outlet_events[GOLD_LABELS].extra = {key: report[key] for key in ("dataset_version", "new", "changed")}

    pulled >> pushed
    announce(pulled)


annotate()
