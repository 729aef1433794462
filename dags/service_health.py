"""
### Service health

Every 15 minutes, checks that each service the pipeline depends on answers: PostgreSQL
(`streamingdb`), Kafka, the MLflow tracking server and Label Studio (with the pipeline's
token); that model serving did not reject the champion; and that no message expired from
Kafka unread in the last day (the stream's recorded gaps). A failed check retries with
exponential backoff, then fails with a message that names the service, its address and what
to do. Then it deletes the stream's logs past their retention (quarantine, batch log). The
checks are `ai_tweets.health.check_service` (by hand: `ai-tweets health`), the pruning
`ai_tweets.retention.prune` (`ai-tweets prune`).
"""

from datetime import timedelta

from airflow.sdk import dag

from ai_tweets.dag_support import every, pipeline_dag, stage_task
from ai_tweets.health import check_service
from ai_tweets.retention import prune

SERVICES = ("postgres", "kafka", "mlflow", "label_studio", "champion", "stream")


@dag(
    schedule=every("*/15 * * * *"),
    **pipeline_dag(
        __doc__,
        tags=["ops", "health"],
        task_options={"execution_timeout": timedelta(minutes=2)},
    ),
)
def service_health():
    checks = [stage_task(check_service, task_id=f"check_{service}")(service) for service in SERVICES]
    checks >> stage_task(prune, task_id="prune_stream_logs", trigger_rule="all_done")()


service_health()
