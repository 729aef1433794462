"""The SparkSession every Spark job of the pipeline uses (local stack or cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ai_tweets.settings import PROJECT_ROOT, Settings, SettingsError


def spark_jars(settings: Settings) -> list[str]:
    """The Kafka connector and Postgres JDBC jars, fetched from Maven Central by `make install`.

    Empty when Spark ships them already (the Docker image copies them into pyspark's jars).
    """
    folder = settings.spark_jars_dir or PROJECT_ROOT / ".local" / "jars" / "spark"
    jars = sorted(str(path) for path in folder.glob("*.jar"))
    if jars:
        return jars
    import pyspark

    if list((Path(pyspark.__file__).parent / "jars").glob("spark-sql-kafka-0-10_*.jar")):
        return []
    raise SettingsError(
        f"SPARK_JARS_DIR={folder} holds no jars and Spark has no Kafka connector: run `make install` "
        f"(fetches the connector and the Postgres JDBC driver), or point SPARK_JARS_DIR at them."
    )


def spark_session(app_name: str, settings: Settings, *, submitted: bool = False, master: str | None = None,
                  shuffle_partitions: int = 4):
    """A session with the connector jars; workers use this interpreter (not the system one).
    `submitted`: under spark-submit, which started the JVM and chose the master itself."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    jars = spark_jars(settings)
    builder = SparkSession.builder.appName(app_name)
    if master or not submitted:  # spark-submit gave the master and started the JVM with its options
        builder = builder.master(master or settings.spark_master)
        if settings.spark_driver_java_options:
            builder = builder.config("spark.driver.extraJavaOptions", settings.spark_driver_java_options)
    if jars:
        # JDBC's DriverManager only sees the application class path.
        builder = builder.config("spark.jars", ",".join(jars)).config(
            "spark.driver.extraClassPath", ":".join(jars))
    return (
        builder
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        # Kafka's SASL login (kafka.sasl.jaas.config) never shows in a plan or a log
        .config("spark.sql.redaction.options.regex", "(?i)url|jaas|password|secret")
        .getOrCreate()
    )


class StreamStopped(RuntimeError):
    """A streaming query failed; the message is Spark's account of why (e.g. data lost in Kafka)."""


def run_until_stopped(spark, query) -> None:
    """Wait for a query (available-now ends by itself; Ctrl-C stops a continuous one), then stop Spark."""
    from pyspark.errors import StreamingQueryException

    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
    except StreamingQueryException as exc:
        raise StreamStopped(f"the streaming query {query.name} stopped: {str(exc).strip()[:3000]}") from exc
    finally:
        spark.stop()
