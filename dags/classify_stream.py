"""
### Classify the live stream

Keeps the long-running Spark job `spark_jobs/classify.py` running: Kafka topic `tweets` →
batched calls to MLflow model serving (the `champion`) → `ai_tweets`, `tweet_urls` and
`classify_batches` in streamingdb, with an optional retweet of AI tweets with links
(dry-run by default).

The task does not run the stream itself (that would hold a worker slot forever): every five
minutes, and whenever a new champion is promoted, it starts the job as a detached process if
it is not running (so a job that died comes back), and returns at once. Triggering it twice
is harmless. Until a first champion exists it only reports that it is waiting.
Logic: `ai_tweets.jobs.ensure_classifier`, `ai_tweets.classify`.
"""


from airflow.sdk import Param, dag

from ai_tweets.assets import CHAMPION_MODEL
from ai_tweets.dag_support import assets_or_every, pipeline_dag, stage_task
from ai_tweets.jobs import ensure_classifier


@dag(
    schedule=assets_or_every("*/5 * * * *", [CHAMPION_MODEL]),
    **pipeline_dag(
        __doc__,
        tags=["classify", "spark", "streaming"],
        render_template_as_native_obj=True,
        params={"retweet": Param(True, type="boolean", description="retweet AI tweets with links (dry-run "
                                                                    "unless X_RETWEET_DRY_RUN=false)")},
    ),
)
def classify_stream():
    stage_task(ensure_classifier, task_id="ensure_classifier_running")(retweet="{{ params.retweet }}")


classify_stream()
