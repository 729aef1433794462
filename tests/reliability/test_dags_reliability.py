"""Every DAG through Airflow, twice, on dataset version 0:

1. with a service down in turn (Kafka for `capture_tweets`, Label Studio for `annotate`,
   MLflow model serving for `classify_stream`): the affected task fails with a message that
   names the service and its address, Airflow retries it, and the run succeeds once the
   service is back;
2. once more with nothing new to capture: every table in streamingdb is identical before and
   after (checksums), except these logs: `classify_batches`, the stream's log of the
   micro-batches it ran (the re-run capture sends its tweets to Kafka again, and the
   classifier reads them again, without changing a row of its output), with the shadow
   scoring's `shadow_batches` and `shadow_disagreements` (the re-run train's version is the
   new challenger, which scores those batches in the champion's shadow), `model_quality`,
   one row per trained model version (a re-run of `train` trains and registers a new version,
   which the champion gate then judges), and `label_models`, one row per LabelModel fit.

Needs the pipeline of version 0 (the demo's); it runs the demo first when that is missing.
"""

from __future__ import annotations

import time

import pytest
from psycopg import sql
from reliability_helpers import wait_until
from stack_control import stack

from ai_tweets.airflow_api import AirflowClient
from ai_tweets.jobs import stop_job
from ai_tweets.storage import connect, table_exists
from ai_tweets.tables import SHADOW_BATCHES_TABLE, SHADOW_DISAGREEMENTS_TABLE, identifier
from stackbase.settings import environment, load_settings

# one row per run, batch or version
OPERATIONAL_LOGS = {"classify_batches", SHADOW_BATCHES_TABLE, SHADOW_DISAGREEMENTS_TABLE, "model_quality",
                    "label_models", "registered_models"}


@pytest.fixture(scope="module")
def pipeline(local_stack):
    """Settings and an Airflow client, with version 0 captured, prepared, trained and classified."""
    settings = load_settings()
    client = AirflowClient(settings.airflow_url, "admin", environment().get("AIRFLOW_ADMIN_PASSWORD", ""))
    from ai_tweets.serving import champion_version

    with connect(settings) as conn:
        ready = table_exists(conn, "raw_tweet_dataset_0") and table_exists(conn, "ai_tweets")
    if not (ready and champion_version(settings)):
        from ai_tweets.demo import run_demo

        print("version 0 has not been through the pipeline yet: running the demo first", flush=True)
        run_demo("generate", count=20_000, live_wait=120)
    stop_job("live-producer", settings)  # from here on, only the DAGs send tweets
    return settings, client


def _capture_conf(settings) -> dict:
    """The first 2,000 of the tweets `make demo` captured (the same seed): nothing new to capture."""
    return {"source": "generate", "count": 2_000, "seed": 0, "file": "",
            "raw_table_prefix": settings.raw_table_prefix, "dataset_version": settings.dataset_version}


def _checksums(settings) -> dict[str, tuple[int, str]]:
    """Rows and md5 of every table in streamingdb (rows in a canonical order)."""
    with connect(settings) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
        sums = {}
        for table in tables:
            sums[table] = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {t} t"
            ).format(t=identifier(table))).fetchone()
        return sums


def _classifier_idle(settings, quiet: float = 10.0) -> None:
    """Wait until the classify stream has run no batch for `quiet` seconds."""
    def batches() -> int:
        with connect(settings) as conn:
            if not table_exists(conn, "classify_batches"):
                return 0
            return conn.execute("SELECT count(*) FROM classify_batches").fetchone()[0]

    state = {"count": batches(), "since": time.monotonic()}

    def quiet_enough() -> bool:
        now = batches()
        if now != state["count"]:
            state.update(count=now, since=time.monotonic())
        return time.monotonic() - state["since"] >= quiet

    wait_until(quiet_enough, 600, "the classify stream to go idle", every=2)


def _fails_then_recovers(client: AirflowClient, dag_id: str, run_id: str, task_id: str, service: str,
                         message: str, figures) -> None:
    """`task_id` fails with `message` while `service` is down, is retried, and the run succeeds
    once the service is started again."""
    began = time.monotonic()

    def first_try_failed() -> dict | None:
        instance = client.task_instance(dag_id, run_id, task_id)
        assert instance["state"] not in ("success", "failed"), \
            f"{dag_id}.{task_id} ended {instance['state']} while {service} was down"
        return instance if instance["state"] == "up_for_retry" else None

    instance = wait_until(first_try_failed, 900, f"{dag_id}.{task_id} to fail while {service} is down", every=3)
    failed_after = time.monotonic() - began
    log = client.task_log(dag_id, run_id, task_id, instance["try_number"])
    assert message in log, f"the failed try's log should say {message!r}; its end:\n{log[-3000:]}"
    stack("up", service)
    back = time.monotonic()
    client.wait(dag_id, run_id, timeout=1800)
    instance = client.task_instance(dag_id, run_id, task_id)
    assert instance["state"] == "success" and instance["try_number"] >= 2, instance
    figures(f"{service} down: {dag_id}.{task_id} failed after {failed_after:.0f} s saying {message!r}; "
            f"{service} restarted; retry {instance['try_number']} succeeded "
            f"{time.monotonic() - back:.0f} s later")


@pytest.mark.timeout(3600)
def test_services_down_in_turn_then_a_rerun_of_every_dag_changes_no_table(disruptive, pipeline, figures):
    settings, client = pipeline
    for dag_id in ("capture_tweets", "prepare_dataset", "annotate", "train_model", "classify_stream"):
        client.unpause(dag_id)

    # Pass 1: each service down in turn while its DAG runs. Each run checked is one the test
    # triggered or one that the Asset event of such a run created (timed schedules are held).
    began = time.monotonic()
    stack("down", "kafka")
    stack("down", "label-studio")  # capture and prepare do not need it; annotate, run after them, does
    capture = client.trigger("capture_tweets", _capture_conf(settings))
    _fails_then_recovers(client, "capture_tweets", capture, "produce", "kafka",
                         f"Kafka at {settings.kafka_bootstrap_servers}", figures)
    prepare = client.run_caused_by("prepare_dataset", "capture_tweets", capture)
    client.wait("prepare_dataset", prepare, timeout=1800)
    annotate = client.run_caused_by("annotate", "prepare_dataset", prepare)
    _fails_then_recovers(client, "annotate", annotate, "pull", "label-studio",
                         f"Label Studio at {settings.label_studio_url}", figures)
    client.wait("train_model", client.run_caused_by("train_model", "prepare_dataset", prepare), timeout=3600)
    stack("down", "model-serving")
    run = client.trigger("classify_stream", {"retweet": True})
    _fails_then_recovers(client, "classify_stream", run, "ensure_classifier_running", "model-serving",
                         f"MLflow model serving at {settings.model_serving_url}", figures)
    _classifier_idle(settings)
    first_pass = time.monotonic() - began

    # Pass 2: the same runs again, with nothing new to capture.
    before = _checksums(settings)
    began = time.monotonic()
    capture = client.trigger("capture_tweets", _capture_conf(settings))
    client.wait("capture_tweets", capture, timeout=1800)
    prepare = client.run_caused_by("prepare_dataset", "capture_tweets", capture)
    client.wait("prepare_dataset", prepare, timeout=3600)
    for dag_id in ("annotate", "train_model"):
        client.wait(dag_id, client.run_caused_by(dag_id, "prepare_dataset", prepare), timeout=3600)
    client.wait("classify_stream", client.trigger("classify_stream", {"retweet": True}), timeout=900)
    _classifier_idle(settings)
    after = _checksums(settings)

    changed = sorted(table for table in before.keys() | after.keys()
                     if table not in OPERATIONAL_LOGS and before.get(table) != after.get(table))
    assert not changed, {table: (before.get(table), after.get(table)) for table in changed}
    compared = [t for t in before if t not in OPERATIONAL_LOGS]
    figures(f"every DAG re-run for version 0: {len(compared)} tables, {sum(before[t][0] for t in compared):,} rows, "
            f"identical checksums (raw {before['raw_tweet_dataset_0'][0]:,}, ai_tweets "
            f"{before['ai_tweets'][0]:,} rows); pass with services down {first_pass:.0f} s, re-run "
            f"{time.monotonic() - began:.0f} s")
