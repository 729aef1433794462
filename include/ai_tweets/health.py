"""Is every service the pipeline needs answering? Used by `ai-tweets health` and the
`service_health` DAG; each check returns a one-line detail or raises ServiceDown."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from stackbase.settings import Settings

TIMEOUT_SECONDS = 5.0


class ServiceDown(RuntimeError):
    """A service did not answer; the message names it, its address and what to do."""


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def _down(service: str, address: str, exc: BaseException) -> ServiceDown:
    return ServiceDown(f"{service} at {address} is not answering ({exc}). "
                       f"Start the stack (`make up`) or check the address in .env.")


def check_postgres(settings: Settings) -> str:
    import psycopg

    try:
        with psycopg.connect(settings.streamingdb_conninfo, connect_timeout=int(TIMEOUT_SECONDS)) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.OperationalError as exc:
        raise _down("PostgreSQL", settings.streamingdb_url, exc) from exc
    return f"PostgreSQL {version}, database streamingdb"


def check_kafka(settings: Settings) -> str:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from ai_tweets.kafka import client_config

    admin = AdminClient(client_config(settings, "consumer"))
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_SECONDS)
    except KafkaException as exc:
        raise _down("Kafka", settings.kafka_bootstrap_servers, exc) from exc
    return f"Kafka: {len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"


def check_mlflow(settings: Settings) -> str:
    try:
        body = _get(f"{settings.mlflow_tracking_uri}/health").decode()
    except (urllib.error.URLError, OSError) as exc:
        raise _down("MLflow", settings.mlflow_tracking_uri, exc) from exc
    return f"MLflow tracking server: {body.strip()}"


def check_model_serving(settings: Settings) -> str:
    """The champion's MLflow model server (only meaningful once a champion exists)."""
    try:
        _get(f"{settings.model_serving_url}/ping")
    except (urllib.error.URLError, OSError) as exc:
        raise _down("MLflow model serving", settings.model_serving_url, exc) from exc
    return f"model serving answers at {settings.model_serving_url}"


def check_champion(settings: Settings) -> str:
    """The champion is the version being served: model serving did not reject it."""
    from ai_tweets.serving import champion_version, rejected_reason

    try:
        version = champion_version(settings)
        reason = rejected_reason(settings, version) if version else None
    except Exception as exc:  # any registry failure is the registry being down
        raise _down("MLflow", settings.mlflow_tracking_uri, exc) from exc
    if version is None:
        return f"no champion of {settings.model_name} yet"
    if reason:
        raise ServiceDown(
            f"model serving rejected champion version {version} of {settings.model_name}: {reason}. The "
            f"previous version keeps serving. Fix the model and promote a new version, or move the "
            f"`champion` alias back.")
    return f"champion {settings.model_name} version {version}"


def check_stream(settings: Settings) -> str:
    """No messages expired from Kafka unread in the last day (recorded by a job started with
    --on-data-loss record, see ai_tweets.stream)."""
    import psycopg
    from psycopg import sql

    from ai_tweets.retrying import Backoff
    from ai_tweets.storage import connect, table_exists
    from ai_tweets.tables import GAPS_TABLE, identifier

    try:
        with connect(settings, wait=Backoff(budget=0)) as conn:
            if not table_exists(conn, GAPS_TABLE):
                return "no data loss recorded"
            gaps = conn.execute(sql.SQL(
                "SELECT query_name, topic, kafka_partition, first_offset, last_offset FROM {t} "
                "WHERE detected_at > now() - interval '1 day' ORDER BY detected_at").format(
                t=identifier(GAPS_TABLE))).fetchall()
    except (psycopg.OperationalError, RuntimeError) as exc:
        raise _down("PostgreSQL", settings.streamingdb_url, exc) from exc
    if gaps:
        listed = "; ".join(f"{q}: {t} partition {p} offsets {a}–{b}" for q, t, p, a, b in gaps[:5])
        raise ServiceDown(f"messages expired from Kafka before the stream read them (last 24 h, table "
                          f"{GAPS_TABLE}): {listed}. They are lost; raise Kafka's retention or keep the jobs "
                          f"running (the classify_stream DAG restarts the classifier).")
    return "no data loss in the last 24 h"


def check_label_studio(settings: Settings) -> str:
    token = settings.require("label_studio_api_key")
    try:
        version = json.loads(_get(f"{settings.label_studio_url}/api/version",
                                  headers={"Authorization": f"Token {token}"}))
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ServiceDown(f"Label Studio at {settings.label_studio_url} refused LABEL_STUDIO_API_KEY "
                              f"(HTTP {exc.code}): check the token in .env.") from exc
        raise _down("Label Studio", settings.label_studio_url, exc) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _down("Label Studio", settings.label_studio_url, exc) from exc
    return f"Label Studio {version.get('release', '?')}"


def check_airflow(settings: Settings) -> str:
    try:
        health = json.loads(_get(f"{settings.airflow_url}/api/v2/monitor/health"))
    except (urllib.error.URLError, OSError) as exc:
        raise _down("Airflow", settings.airflow_url, exc) from exc
    unhealthy = [name for name, part in health.items() if part.get("status") != "healthy"]
    if unhealthy:
        raise ServiceDown(f"Airflow at {settings.airflow_url}: unhealthy components {', '.join(unhealthy)}")
    return f"Airflow: {', '.join(health)} healthy"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "postgres": check_postgres,
    "kafka": check_kafka,
    "mlflow": check_mlflow,
    "label_studio": check_label_studio,
    "airflow": check_airflow,
    "champion": check_champion,
    "stream": check_stream,
}


def check_service(name: str) -> str:
    """Check one service by name with the current settings; raise ServiceDown if it is down."""
    from stackbase.settings import load_settings

    if name not in CHECKS:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(CHECKS)}")
    return CHECKS[name](load_settings())
