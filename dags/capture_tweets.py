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
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, dag, task

from ai_tweets.assets import RAW_TWEETS
from ai_tweets.capture import produce_requested, raw_table_report
from ai_tweets.dag_support import dataset_params, pipeline_dag, stage_task
from ai_tweets.settings import spark_driver_java_options, spark_jars_dir

INGEST_JOB = str(Path(__file__).resolve().parents[1] / "spark_jobs" / "ingest.py")
# The Kafka connector and JDBC jars (local stack); the Docker image has them in Spark already.
SPARK_JARS = f"{jars}/*.jar" if (jars := spark_jars_dir()) else None


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

    ingest = SparkSubmitOperator(
        task_id="ingest",
        application=INGEST_JOB,
        conn_id="spark_default",
        jars=SPARK_JARS,
        conf={"spark.driver.extraJavaOptions": options} if (options := spark_driver_java_options()) else None,
        name="ai-tweets-ingest",
        # `--flag=value` keeps each argument a string under native template rendering.
        application_args=["--available-now", "--raw-table-prefix={{ params.raw_table_prefix }}",
                          "--dataset-version={{ params.dataset_version }}"],
        execution_timeout=timedelta(hours=1),
    )

    @task(outlets=[RAW_TWEETS])
    def report(params=None, outlet_events=None) -> dict:
        counts = raw_table_report(params["raw_table_prefix"], params["dataset_version"])
        outlet_events[RAW_TWEETS].extra = counts
        return counts

    produce >> ingest >> report()


capture_tweets()
