"""`make demo`: the whole product on the running stack, driven through Airflow's API.

It triggers `capture_tweets`; the Assets then run `prepare_dataset`, `annotate` and
`train_model` in turn, and a new champion starts `classify_stream`. A background producer
keeps a generated stream flowing, so the live classifier has something to find. The demo
waits for each DAG run, prints what it produced and ends with a summary and the UIs; the
stack keeps running.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ai_tweets.airflow_api import AirflowClient
from ai_tweets.settings import PROJECT_ROOT, SettingsError, environment, load_settings
from ai_tweets.storage import connect

PIPELINE_DAGS = ("capture_tweets", "prepare_dataset", "annotate", "train_model", "classify_stream")


def _scalar(conn, query: str, params: tuple = ()):
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _table_rows(conn, table: str) -> int | None:
    from psycopg import sql

    from ai_tweets.storage import table_exists
    from ai_tweets.tables import identifier

    if not table_exists(conn, table):
        return None
    return conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=identifier(table))).fetchone()[0]


def run_demo(source: str = "generate", file: str | None = None, count: int = 20_000,
             live_rate: float = 50.0, live_wait: float = 180.0) -> dict:
    settings = load_settings()
    env = environment()
    if source == "replay" and not (file and Path(file).is_file()):
        raise SettingsError(f"SOURCE=replay needs FILE=path/to/tweets.jsonl (got {file!r})")
    client = AirflowClient(settings.airflow_url, "admin", env.get("AIRFLOW_ADMIN_PASSWORD", ""))
    print("waiting for Airflow to list the pipeline's DAGs …", flush=True)
    client.wait_for_dags(set(PIPELINE_DAGS))
    for dag_id in PIPELINE_DAGS:
        client.unpause(dag_id)

    version = settings.dataset_version
    began = time.monotonic()
    steps = [
        ("capture_tweets", f"{source} → Kafka → Spark → {settings.raw_table_prefix}_{version}"),
        ("prepare_dataset", "dedup, splits, Snorkel weak labels (scheduled by the raw_tweets Asset)"),
        ("annotate", "most uncertain tweets → Label Studio (scheduled by the dataset_splits Asset)"),
        ("train_model", "Keras classifier → MLflow registry, champion alias (dataset_splits Asset)"),
        ("classify_stream", "live classification via model serving (started by the demo, then every 5 min)"),
    ]
    since = datetime.now(UTC)
    # Each stage's run is the one its upstream run's Asset event created (a timed run of the
    # same DAG may be running too): capture → prepare → annotate and train.
    caused_by = {"prepare_dataset": "capture_tweets", "annotate": "prepare_dataset", "train_model": "prepare_dataset"}
    runs: dict[str, str] = {}
    conf = {"source": source, "count": 0 if source == "replay" else count,
            "file": str(Path(file).resolve()) if file else "",
            "raw_table_prefix": settings.raw_table_prefix, "dataset_version": version}
    for number, (dag_id, what) in enumerate(steps, start=1):
        print(f"[{number}/{len(steps)}] {dag_id}: {what} …", flush=True)
        step_began = time.monotonic()
        if dag_id == "capture_tweets":
            run_id = client.trigger(dag_id, conf)
        elif dag_id == "classify_stream":
            # A new champion triggers it through its Asset, but a re-run may keep the old champion.
            run_id = client.trigger(dag_id, {"retweet": True})
        else:
            upstream = caused_by[dag_id]
            run_id = client.run_caused_by(dag_id, upstream, runs[upstream], timeout=900)
        runs[dag_id] = run_id
        client.wait(dag_id, run_id, timeout=3600)
        print(f"      success in {time.monotonic() - step_began:.0f} s (run {run_id})", flush=True)

    print(f"[live] a generated stream keeps flowing at {live_rate:.0f} tweets/s; waiting for the classifier …",
          flush=True)
    from ai_tweets.jobs import ensure_job

    producer = ensure_job("live-producer", [sys.executable, "-m", "ai_tweets.cli", "capture", "--source", "generate",
                                            "--seed", str(int(time.time()) % 60_000), "--rate", str(live_rate)],
                          settings)
    live = _wait_for_live_rows(settings, since, live_wait)
    summary = _summary(settings, version)
    summary.update({"live_ai_tweets": live, "producer": producer, "seconds": round(time.monotonic() - began)})
    _print_summary(settings, summary)
    return summary


def _wait_for_live_rows(settings, since: datetime, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        with connect(settings) as conn:
            if _table_rows(conn, "ai_tweets") is not None:
                found = _scalar(conn, "SELECT count(*) FROM ai_tweets WHERE classified_at >= %s", (since,))
        if found:
            return found
        time.sleep(5)
    return found


def _summary(settings, version: int) -> dict:
    from ai_tweets.tables import SPLITS, dedup_table_name, raw_table_name, split_table_name

    with connect(settings) as conn:
        tables = {name: _table_rows(conn, name) for name in
                  [raw_table_name(settings), dedup_table_name(settings),
                   *(split_table_name(split, settings) for split in SPLITS),
                   "ai_tweets", "tweet_urls", "retweets", "ingest_quarantine"]}
        weak = None
        if tables[split_table_name("train", settings)] is not None:
            from psycopg import sql

            from ai_tweets.tables import identifier

            union = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT weak_label, gold_label, annotation_task_id FROM {t}").format(
                    t=identifier(split_table_name(split, settings))) for split in SPLITS)
            weak = conn.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE weak_label = 1), count(*) FILTER (WHERE weak_label = 0), "
                "count(*) FILTER (WHERE weak_label = -1), count(gold_label), count(annotation_task_id) "
                "FROM ({union}) s").format(union=union)).fetchone()
        retweets = dict(conn.execute("SELECT action, count(*) FROM retweets GROUP BY 1").fetchall()) \
            if tables["retweets"] is not None else {}
        top_domains = conn.execute(
            "SELECT domain, count(*) FROM tweet_urls WHERE NOT is_twitter GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
        ).fetchall() if tables["tweet_urls"] is not None else []
    totals = list(weak) if weak else [0] * 5
    return {"tables": tables, "weak_ai": totals[0], "weak_not_ai": totals[1], "weak_abstain": totals[2],
            "gold_labels": totals[3], "pushed_to_label_studio": totals[4], "retweets": retweets,
            "top_domains": top_domains, "champion": _champion_metrics(settings)}


def _champion_metrics(settings) -> dict:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.model_name, "champion")
    except MlflowException:
        return {}
    run = client.get_run(version.run_id)
    metrics = run.data.metrics
    return {"version": version.version, "evaluated_on": run.data.tags.get("evaluated_on"),
            **{key: round(metrics[key], 3) for key in ("f1", "precision", "recall", "roc_auc") if key in metrics}}


def _print_times(demo_seconds: int) -> None:
    """How long this checkout took to install and start (recorded by the stack in
    .local/timings.json), and since `make demo` began: from nothing to a filled dashboard."""
    try:
        timings = json.loads((PROJECT_ROOT / ".local" / "timings.json").read_text())
    except (OSError, ValueError):
        timings = {}
    print("\nTimes")
    if install := timings.get("install"):
        print(f"  install ({install['at']}): {install['seconds']:.0f} s in all, stage by stage:")
        for line in install.get("lines", []):
            print(f"    {line}")
    if up := timings.get("up"):
        print(f"  stack start ({up['at']}): {up['seconds']:.0f} s")
    print(f"  demo (capture → prepare → annotate → train → live classification): {demo_seconds} s")
    if started := os.environ.get("AI_TWEETS_MAKE_STARTED", "").strip():
        elapsed = round(time.time() - int(started))
        print(f"  since `make` began: {elapsed // 60} min {elapsed % 60:02d} s")


def _print_summary(settings, summary: dict) -> None:
    print("\nSummary")
    for table, rows in summary["tables"].items():
        print(f"  {table:<38}{'-' if rows is None else f'{rows:,}':>10}")
    print(f"  weak labels: AI {summary['weak_ai']:,}, not AI {summary['weak_not_ai']:,}, "
          f"abstain {summary['weak_abstain']:,}; gold labels {summary['gold_labels']:,}; "
          f"tasks in Label Studio {summary['pushed_to_label_studio']:,}")
    champion = summary["champion"]
    if champion:
        print(f"  champion model: {settings.model_name} v{champion['version']}, test F1 {champion.get('f1')} "
              f"(precision {champion.get('precision')}, recall {champion.get('recall')}) on "
              f"{champion.get('evaluated_on')} labels")
    print(f"  AI tweets found live since the demo started: {summary['live_ai_tweets']:,}")
    print(f"  retweet decisions (dry run): {summary['retweets'] or 'none yet'}")
    if summary["top_domains"]:
        print("  top linked domains: " + ", ".join(f"{d} ({n})" for d, n in summary["top_domains"]))
    _print_times(summary["seconds"])
    env = environment()
    print("\nUIs (logins from .env)")
    print(f"  Superset      {settings.superset_url}/superset/dashboard/ai-tweets/  "
          f"(admin / {env.get('SUPERSET_ADMIN_PASSWORD', '')})")
    print(f"  Airflow       {settings.airflow_url}  (admin / {env.get('AIRFLOW_ADMIN_PASSWORD', '')})")
    print(f"  Label Studio  {settings.label_studio_url}  "
          f"({env.get('LABEL_STUDIO_USERNAME', '')} / {env.get('LABEL_STUDIO_PASSWORD', '')})")
    print(f"  MLflow        {settings.mlflow_tracking_uri}  (no login)")
    print(f"  Model serving {settings.model_serving_url}/invocations  (no login)")
    print(f"\nThe stack and the live stream keep running (`make status`); the producer's log is "
          f"{settings.data_dir / 'logs' / 'live-producer.log'}. `make down` stops everything.")
