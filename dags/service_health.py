"""
### Service health

Every 15 minutes, checks that each service the pipeline depends on answers: PostgreSQL
(`streamingdb`), Kafka, the MLflow tracking server and Label Studio (with the pipeline's
token). A failed check retries with exponential backoff, then fails with a message that
names the service, its address and what to do. The checks are
`ai_tweets.health.check_service`, also run by hand with `ai-tweets health`.
"""

from datetime import datetime, timedelta

from airflow.sdk import dag

from ai_tweets.dag_support import every, stage_task
from ai_tweets.health import check_service

SERVICES = ("postgres", "kafka", "mlflow", "label_studio")


@dag(
    schedule=every("*/15 * * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ops", "health"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=2),
    },
)
def service_health():
    for service in SERVICES:
        stage_task(check_service, task_id=f"check_{service}")(service)


service_health()
