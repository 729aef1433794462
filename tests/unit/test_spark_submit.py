"""Every Spark job starts the same way: `spark-submit spark_jobs/<job>.py` with one set of options."""

from __future__ import annotations

import sys
from pathlib import Path

from ai_tweets.spark import JOBS_DIR, submit_command
from stackbase.settings import load_settings

ENV = {"STREAMINGDB_URL": "postgresql://streaming:pw-not-on-the-line@127.0.0.1:55432/streamingdb",
       "KAFKA_BOOTSTRAP_SERVERS": "h:1", "MLFLOW_TRACKING_URI": "http://m:1", "MODEL_SERVING_URL": "http://s:1",
       "LABEL_STUDIO_URL": "http://l:1", "AIRFLOW_URL": "http://a:1"}


def test_the_command_carries_the_settings_and_the_jars_but_no_secret(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    for name in ("spark-sql-kafka.jar", "postgresql.jar"):
        (jars / name).write_bytes(b"")
    settings = load_settings({**ENV, "SPARK_JARS_DIR": str(jars), "SPARK_MASTER": "spark://m:7077",
                              "SPARK_DRIVER_MEMORY": "3g", "SPARK_DRIVER_JAVA_OPTIONS": "-Dx=1"})
    argv = submit_command("classify", ["--retweet"], settings)
    assert Path(argv[0]).name == "spark-submit" and Path(argv[0]).exists()
    assert argv[-2:] == [str(JOBS_DIR / "classify.py"), "--retweet"] and Path(argv[-2]).exists()
    options = dict(zip(argv[1:-2:2], argv[2:-2:2], strict=True))
    assert options["--master"] == "spark://m:7077" and options["--driver-memory"] == "3g"
    assert options["--name"] == "ai-tweets-classify" and options["--driver-java-options"] == "-Dx=1"
    assert sorted(options["--jars"].split(",")) == sorted(str(p) for p in jars.glob("*.jar"))
    assert f"spark.pyspark.python={sys.executable}" in argv
    assert not any("pw-not-on-the-line" in arg for arg in argv)


def test_both_jobs_are_submitted_alike(tmp_path):
    (tmp_path / "connector.jar").write_bytes(b"")
    settings = load_settings({**ENV, "SPARK_JARS_DIR": str(tmp_path)})
    ingest, classify = submit_command("ingest", [], settings), submit_command("classify", [], settings)
    assert [a for a in ingest if "ingest" not in a] == [a for a in classify if "classify" not in a]
