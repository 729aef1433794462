"""The SparkSession every Spark job of the pipeline uses (local stack or cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ai_tweets.settings import PROJECT_ROOT, SettingsError


def spark_jars() -> list[str]:
    """The Kafka connector and Postgres JDBC jars, fetched from Maven Central by `make install`."""
    folder = Path(os.environ.get("SPARK_JARS_DIR") or PROJECT_ROOT / ".local" / "jars" / "spark")
    jars = sorted(str(path) for path in folder.glob("*.jar"))
    if not jars:
        raise SettingsError(
            f"SPARK_JARS_DIR={folder} holds no jars: run `make install` (fetches the Kafka "
            f"connector and the Postgres JDBC driver), or point SPARK_JARS_DIR at them."
        )
    return jars


def spark_session(app_name: str, master: str | None = None, shuffle_partitions: int = 4):
    """A session with the connector jars; workers use this interpreter (not the system one)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    jars = spark_jars()
    return (
        SparkSession.builder.appName(app_name)
        .master(master or os.environ.get("SPARK_MASTER", "local[2]"))
        .config("spark.jars", ",".join(jars))
        # JDBC's DriverManager only sees the application class path.
        .config("spark.driver.extraClassPath", ":".join(jars))
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "1g"))
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
