"""`make demo`: drive the real DAGs through Airflow's API on the running stack and print
what each stage produced. Stages not built yet are listed as such, not faked."""

from __future__ import annotations

import time
from pathlib import Path

from ai_tweets.airflow_api import AirflowClient
from ai_tweets.capture import raw_table_report
from ai_tweets.settings import SettingsError, environment, load_settings

PIPELINE_DAGS = ("capture_tweets",)


def run_demo(source: str = "generate", file: str | None = None, count: int = 20_000) -> dict:
    settings = load_settings()
    env = environment()
    if source == "replay" and not (file and Path(file).is_file()):
        raise SettingsError(f"SOURCE=replay needs FILE=path/to/tweets.jsonl (got {file!r})")
    client = AirflowClient(settings.airflow_url, "admin", env.get("AIRFLOW_ADMIN_PASSWORD", ""))
    print("waiting for Airflow to list the pipeline's DAGs …", flush=True)
    client.wait_for_dags(set(PIPELINE_DAGS))

    began = time.monotonic()
    conf = {"source": source, "count": 0 if source == "replay" else count,
            "file": str(Path(file).resolve()) if file else "",
            "raw_table_prefix": settings.raw_table_prefix, "dataset_version": settings.dataset_version}
    print(f"[1/1] capture_tweets: {source} → Kafka → Spark → {settings.raw_table_prefix}_"
          f"{settings.dataset_version} …", flush=True)
    client.unpause("capture_tweets")
    run_id = client.trigger("capture_tweets", conf)
    client.wait("capture_tweets", run_id)
    report = raw_table_report(settings.raw_table_prefix, settings.dataset_version)
    print(f"      done in {time.monotonic() - began:.0f} s: {report['rows']:,} rows in {report['table']}, "
          f"{report['quarantined']:,} quarantined")

    print("\nSummary")
    print(f"  raw tweets          {report['rows']:>10,}  ({report['table']})")
    print(f"  quarantined         {report['quarantined']:>10,}")
    print("  not built yet: prepare, annotate, train, classify (see the README's status table)")
    print("\nUIs")
    print(f"  Airflow       {settings.airflow_url}  (admin / AIRFLOW_ADMIN_PASSWORD in .env)")
    print(f"  MLflow        {settings.mlflow_tracking_uri}")
    print(f"  Label Studio  {settings.label_studio_url}")
    print("\nThe stack keeps running: `make status`, `make down` to stop it.")
    return report
