"""
### Capture tweets

A bounded capture run: tweets from a source (`generate`, `replay` or `x`) → Kafka topic
`tweets` → Spark Structured Streaming ingest (available-now) → the raw table
`{prefix}_{version}` in streamingdb. Idempotent: re-running for the same version adds only
new tweets (primary key tweet id); malformed messages land in `ingest_quarantine`.

Emits the `raw_tweets` Asset with the table, version and row counts, which schedules the
prepare stage. Trigger it from the UI form to choose the source, size and version.
Logic: `ai_tweets.capture` and `spark_jobs/ingest.py`.
"""

from datetime import timedelta

from airflow.sdk import Param, dag, task

from ai_tweets.assets import RAW_TWEETS
from ai_tweets.capture import produce_requested, raw_table_report
from ai_tweets.dag_support import dataset_params, pipeline_dag, stage_task
from ai_tweets.ingest import ingest_available_now


@dag(
    schedule=None,
    **pipeline_dag(
        __doc__,
        tags=["capture", "kafka", "spark"],
        render_template_as_native_obj=True,
        params={
            "source": Param("generate", enum=["generate", "replay", "x"], description="where tweets come from"),
            "count": Param(20_000, type="integer", minimum=0, description="tweets to capture (0: use seconds)"),
            "seconds": Param(0, type="number", minimum=0, description="capture duration (0: use count)"),
            "file": Param("", type="string", description="JSONL file in REPLAY_DIR for the replay source "
                                                          "(a name; paths outside that folder are refused)"),
            "seed": Param(0, type="integer", minimum=0, description="generator seed"),
            **dataset_params(raw_table_prefix=True),
        },
    ),
)
def capture_tweets():
    produce = stage_task(produce_requested, task_id="produce")(
        source="{{ params.source }}", count="{{ params.count }}", seconds="{{ params.seconds }}",
        file="{{ params.file }}", seed="{{ params.seed }}")

    # spark-submit of spark_jobs/ingest.py, as the classify job starts (ai_tweets.spark.submit_command)
    ingest = stage_task(ingest_available_now, task_id="ingest", execution_timeout=timedelta(hours=1))(
        raw_table_prefix="{{ params.raw_table_prefix }}", dataset_version="{{ params.dataset_version }}")

    @task(outlets=[RAW_TWEETS])
    def report(params=None, outlet_events=None) -> dict:
        counts = raw_table_report(params["raw_table_prefix"], params["dataset_version"])
        outlet_events[RAW_TWEETS].extra = counts
        return counts

    produce >> ingest >> report()


capture_tweets()
