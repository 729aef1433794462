"""Each service of the local stack answers, through the same clients the pipeline uses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from capture_helpers import python_env

from ai_tweets.health import CHECKS
from stackbase.settings import environment

ROOT = Path(__file__).resolve().parents[2]


def test_postgres_streamingdb_answers(settings):
    import psycopg

    with psycopg.connect(settings.streamingdb_conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "streamingdb"
        conn.execute("CREATE TEMP TABLE probe (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO probe VALUES (1), (2) ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 2


@pytest.fixture(scope="module")
def kafka_topic_with_messages(settings):
    from confluent_kafka import Producer

    from ai_tweets.kafka import client_config

    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    producer = Producer({**client_config(settings, "producer"), "acks": "all", "enable.idempotence": True})
    sent = [{"id": str(i), "text": f"message {i}"} for i in range(5)]
    for message in sent:
        producer.produce(topic, key=message["id"], value=json.dumps(message))
    assert producer.flush(30) == 0
    return topic, sent


def test_kafka_produce_consume_round_trip(settings, kafka_topic_with_messages):
    from confluent_kafka import Consumer

    topic, sent = kafka_topic_with_messages
    from ai_tweets.kafka import client_config

    consumer = Consumer({**client_config(settings, "consumer"), "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + 60
    while len(received) < len(sent) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            received.append(json.loads(message.value()))
    consumer.close()
    assert sorted(received, key=lambda m: m["id"]) == sent


def _denied(config: dict, topic: str, role: str) -> str:
    """What the broker answers when `config` tries `role`'s one thing on `topic`: '' if allowed."""
    from confluent_kafka import Consumer, KafkaError, Producer

    errors: list[str] = []
    config = {**config, "error_cb": lambda error: errors.append(error.name())}
    if role == "produce":
        producer = Producer({**config, "message.timeout.ms": 8_000})
        producer.produce(topic, value=b"x", on_delivery=lambda error, _m: error and errors.append(error.name()))
        producer.flush(15)
        return errors[0] if errors else ""
    consumer = Consumer({**config, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not errors:
            message = consumer.poll(0.5)
            if message is not None and message.error() and message.error().code() != KafkaError._PARTITION_EOF:
                return message.error().name()
            if message is not None and not message.error():
                return ""
        return errors[0] if errors else "no answer"
    finally:
        consumer.close()


def test_kafka_asks_who_connects_and_each_account_does_only_its_part(settings, kafka_topic_with_messages):
    """SASL/SCRAM with ACLs: no login, no stream; the consumers' account cannot write the topic,
    the producer's cannot read it (and a wrong password is refused)."""
    from ai_tweets.kafka import client_config

    topic, _ = kafka_topic_with_messages
    anonymous = {"bootstrap.servers": settings.kafka_bootstrap_servers, "security.protocol": "PLAINTEXT",
                 "socket.timeout.ms": 5_000}
    assert _denied(anonymous, topic, "produce"), "a client without a login must not write"
    wrong = {**client_config(settings, "consumer"), "sasl.password": "not-the-password-at-all"}
    assert _denied(wrong, topic, "consume"), "a wrong password must be refused"
    assert "AUTHORIZATION" in _denied(client_config(settings, "consumer"), topic, "produce")
    assert "AUTHORIZATION" in _denied(client_config(settings, "producer"), topic, "consume")
    assert _denied(client_config(settings, "consumer"), topic, "consume") == ""


def test_spark_reads_kafka_with_the_connector(settings, kafka_topic_with_messages, tmp_path):
    topic, sent = kafka_topic_with_messages
    script = f"""
import json, sys
from ai_tweets.kafka import spark_options
from stackbase.settings import load_settings
from ai_tweets.spark import spark_session
settings = load_settings()
spark = spark_session("stack-test", settings)
rows = (spark.read.format("kafka").options(**spark_options(settings))
        .option("subscribe", {topic!r}).option("startingOffsets", "earliest")
        .option("endingOffsets", "latest").load()
        .selectExpr("CAST(value AS STRING) AS v").collect())
query = (spark.readStream.format("kafka").options(**spark_options(settings))
         .option("subscribe", {topic!r}).option("startingOffsets", "earliest").load()
         .selectExpr("CAST(value AS STRING) AS v").writeStream.format("parquet")
         .option("path", {str(tmp_path / 'out')!r})
         .option("checkpointLocation", {str(tmp_path / 'ckpt')!r})
         .trigger(availableNow=True).start())
query.awaitTermination()
streamed = spark.read.parquet({str(tmp_path / 'out')!r}).count()
driver = spark._jvm.org.apache.spark.util.Utils.classForName("org.postgresql.Driver", True, False)
print("RESULT" + json.dumps({{"batch": sorted(json.loads(r.v)["id"] for r in rows),
                             "streamed": streamed, "driver": driver.getName()}}))
spark.stop()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=python_env())
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, result.stderr[-3000:]
    got = json.loads(line[len("RESULT"):])
    assert got == {"batch": [m["id"] for m in sent], "streamed": len(sent), "driver": "org.postgresql.Driver"}


def test_mlflow_tracks_a_run(settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_uri())
    mlflow.set_experiment(f"stack-test-{uuid.uuid4().hex[:6]}")
    with mlflow.start_run() as run:
        mlflow.log_metric("answer", 42)
        mlflow.log_text("artifact body", "probe.txt")
    client = MlflowClient(settings.mlflow_uri())
    assert client.get_run(run.info.run_id).data.metrics["answer"] == 42
    assert client.download_artifacts(run.info.run_id, "probe.txt") and True
    body = Path(client.download_artifacts(run.info.run_id, "probe.txt")).read_text()
    assert body == "artifact body"


def _mlflow_call(settings, path: str, body: dict | None = None, login: tuple[str, str] | None = None) -> int:
    """The HTTP status MLflow's REST API answers `path` with (POST when there is a `body`)."""
    import base64
    import urllib.error

    headers = {"Content-Type": "application/json"}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    request = urllib.request.Request(f"{settings.mlflow_tracking_uri}{path}", headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_mlflow_asks_who_connects_and_people_can_only_read(settings):
    """A registry write is code execution (serving loads what `champion` points at): without a
    login MLflow refuses it (401); the people's `viewer` account reads, and cannot move the
    champion alias, add a version or change a run of the pipeline's model (403). MLflow lets any
    account create models of its own, so the stack made the pipeline's model (and experiments)
    first: nobody else can take that name."""
    import subprocess

    from ai_tweets.tracking import CLASSIFIER_EXPERIMENT, VIEWER

    viewer = (VIEWER, environment(ROOT / ".env")["MLFLOW_VIEWER_PASSWORD"])
    pipeline = (settings.mlflow_username, settings.mlflow_password)
    model = settings.model_name
    create = "/api/2.0/mlflow/registered-models/create"
    alias = {"name": model, "alias": "champion", "version": "1"}
    assert _mlflow_call(settings, "/health") == 200, "the health check needs no login"
    assert _mlflow_call(settings, create, {"name": f"intruder-{uuid.uuid4().hex[:8]}"}) == 401
    assert _mlflow_call(settings, "/api/2.0/mlflow/registered-models/alias", alias) == 401
    assert _mlflow_call(settings, "/api/2.0/mlflow/registered-models/alias", alias,
                        login=(VIEWER, "wrong-password-0000")) == 401

    # The stack claimed the pipeline's names as the pipeline (again here: idempotent).
    claimed = subprocess.run([sys.executable, "-m", "ai_tweets.cli", "mlflow-accounts"], capture_output=True,
                             text=True, timeout=120, env=python_env())
    assert claimed.returncode == 0, claimed.stdout + claimed.stderr
    assert _mlflow_call(settings, f"/api/2.0/mlflow/registered-models/get?name={model}", login=viewer) == 200
    assert _mlflow_call(settings, create, {"name": model}, login=viewer) == 400, "the name is taken"
    assert _mlflow_call(settings, "/api/2.0/mlflow/registered-models/alias", alias, login=viewer) == 403
    version = {"name": model, "source": "mlflow-artifacts:/0/evil/artifacts/model"}
    assert _mlflow_call(settings, "/api/2.0/mlflow/model-versions/create", version, login=viewer) == 403
    experiment = f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={CLASSIFIER_EXPERIMENT}"
    assert _mlflow_call(settings, experiment, login=viewer) == 200
    assert _mlflow_call(settings, "/api/2.0/mlflow/experiments/search", {"max_results": 5}, login=viewer) == 200
    assert _mlflow_call(settings, f"/api/2.0/mlflow/registered-models/get?name={model}", login=pipeline) == 200


def _airflow_token(settings) -> str:
    env = environment(ROOT / ".env")
    request = urllib.request.Request(
        f"{settings.airflow_url}/auth/token", method="POST",
        data=json.dumps({"username": "admin", "password": env["AIRFLOW_ADMIN_PASSWORD"]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def test_airflow_api_lists_the_project_dags(settings):
    token = _airflow_token(settings)
    expected = {path.stem for path in (ROOT / "dags").glob("*.py")}
    deadline = time.monotonic() + 120  # the dag-processor parses new files every 20 s
    dag_ids: set[str] = set()
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{settings.airflow_url}/api/v2/dags?limit=100",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            dag_ids = {dag["dag_id"] for dag in json.loads(response.read())["dags"]}
        if expected <= dag_ids:
            break
        time.sleep(3)
    assert expected <= dag_ids
    with urllib.request.urlopen(f"{settings.airflow_url}/api/v2/monitor/health", timeout=10) as response:
        health = json.loads(response.read())
    assert {part["status"] for part in health.values()} == {"healthy"}


def test_label_studio_api_with_the_token(settings):
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=settings.label_studio_url, api_key=settings.label_studio_api_key)
    assert isinstance(list(client.projects.list()), list)
    bad = LabelStudio(base_url=settings.label_studio_url, api_key="0" * 40)
    with pytest.raises(Exception, match="401|403|nvalid|uthenticat"):
        list(bad.projects.list())


def test_health_cli_reports_every_service_up(settings):
    result = subprocess.run([sys.executable, "-m", "ai_tweets.cli", "health"], capture_output=True,
                            text=True, timeout=120, env=python_env())
    assert result.returncode == 0, result.stdout + result.stderr
    ok = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")}
    assert ok == set(CHECKS), result.stdout


@pytest.mark.parametrize(("service", "path"), [("airflow_url", "/api/v2/dags"),
                                              ("superset_url", "/api/v1/dashboard/"),
                                              ("label_studio_url", "/api/projects"),
                                              ("mlflow_tracking_uri", "/api/2.0/mlflow/registered-models/search")])
def test_each_ui_asks_who_you_are(settings, service, path):
    """Without credentials the APIs answer 401/403, not data."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{getattr(settings, service)}{path}", timeout=30).close()
    assert refused.value.code in (401, 403), refused.value.code


def test_a_fresh_service_database_is_restored_from_the_copy_its_migrations_made(tmp_path, monkeypatch):
    """A service's metadata database is migrated once per lock file: an empty one later gets the
    cached copy of the migrated schema (not the users or secrets stored after it); a database
    that is not empty is migrated as before and leaves the copy alone."""
    from localstack.runtime import Context
    from localstack.services import migrate_from_template, psql

    monkeypatch.setenv("AI_TWEETS_CACHE", str(tmp_path))
    ctx = Context.load()
    database = f"template_probe_{uuid.uuid4().hex[:8]}"
    role = f"{database}_owner"  # a service's own role: what is restored belongs to it
    migrated: list[str] = []

    def migrate() -> None:
        migrated.append(database)
        psql(ctx, "CREATE TABLE schema_version (version int); INSERT INTO schema_version VALUES (42);"
                  "CREATE TABLE app_user (name text);", database=database)

    def rows(table: str) -> list[str]:
        return psql(ctx, 'SELECT * FROM :"table" ORDER BY 1', database=database, variables={"table": table}).split()

    def fresh() -> None:
        psql(ctx, f"DROP DATABASE IF EXISTS {database}")
        psql(ctx, f"CREATE DATABASE {database} OWNER {role}")

    def owners() -> list[str]:
        return psql(ctx, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                    database=database).split()

    psql(ctx, f"CREATE ROLE {role}")
    fresh()
    try:
        assert migrate_from_template(ctx, database, "k1", migrate, role=role) is False
        assert migrated == [database]
        (template,) = (tmp_path / "db-templates").glob(f"{database}-k1.dump")
        psql(ctx, "INSERT INTO app_user VALUES ('admin')", database=database)  # a user made after the copy

        fresh()
        assert migrate_from_template(ctx, database, "k1", migrate, role=role) is True, "an empty database is restored"
        assert migrated == [database], "…without running the migrations"
        assert rows("schema_version") == ["42"] and rows("app_user") == []
        assert owners() == [role], "the restored tables belong to the service's role"

        copied = template.stat().st_mtime_ns
        assert migrate_from_template(ctx, database, "k1", lambda: migrated.append("again"), role=role) is False
        assert migrated == [database, "again"], "a database that is not empty is migrated"
        assert template.stat().st_mtime_ns == copied

        fresh()
        assert migrate_from_template(ctx, database, "k2", migrate, role=role) is False, "another lock file: migrated"
        assert sorted(p.name for p in (tmp_path / "db-templates").iterdir()) == [f"{database}-k1.dump",
                                                                                  f"{database}-k2.dump"]
    finally:
        psql(ctx, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        psql(ctx, f"DROP ROLE IF EXISTS {role}")


def test_each_service_reaches_postgres_as_its_own_role_and_only_its_databases():
    """Least privilege (issue 16): every service's connections use its own role; a role gets into
    its own databases only; no service process holds the superuser's password."""
    import psycopg

    from localstack.runtime import Context
    from localstack.services import SERVICE_DATABASES, SERVICE_ROLES, psql, role_of, role_password

    ctx = Context.load()
    seen = [line.split("|") for line in psql(
        ctx, "SELECT DISTINCT datname, usename FROM pg_stat_activity WHERE datname = ANY(:'dbs'::text[])",
        variables={"dbs": "{" + ",".join(SERVICE_DATABASES) + "}"}).split()]
    assert {"airflow", "mlflow"} <= {database for database, _ in seen}, seen
    assert all(user == role_of(database) for database, user in seen), seen
    port = ctx.port_of("STREAMINGDB_URL")
    for role in SERVICE_ROLES:
        others = [db for other, (_, dbs) in SERVICE_ROLES.items() if other != role for db in dbs]
        for database in ("streamingdb", *others):
            with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
                psycopg.connect(host="127.0.0.1", port=port, user=role, password=role_password(ctx, role),
                                dbname=database, connect_timeout=5)
        own = SERVICE_ROLES[role][1][0]
        with psycopg.connect(host="127.0.0.1", port=port, user=role, password=role_password(ctx, role),
                             dbname=own, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == role
    superuser_password = ctx.env["POSTGRES_PASSWORD"].encode()
    holders = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if b"POSTGRES_PASSWORD=" + superuser_password in environ.read_bytes().split(b"\0"):
                command = (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ")[:100]
                holders.append(command.decode(errors="replace"))
        except OSError:
            continue
    assert not [h for h in holders if "pytest" not in h and "make" not in h], holders
