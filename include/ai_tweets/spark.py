"""The SparkSession every Spark job of the pipeline uses (local stack or cluster)."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from stackbase import processes
from stackbase.settings import PROJECT_ROOT, Settings, SettingsError, process_environment

log = logging.getLogger(__name__)

JOBS_DIR = PROJECT_ROOT / "spark_jobs"


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


def submit_command(job: str, args: Sequence[str], settings: Settings) -> list[str]:
    """`spark-submit spark_jobs/<job>.py <args>`: how every Spark job of the pipeline starts (the
    capture DAG's bounded ingest, the long-running classify job), with one set of options: the
    master (SPARK_MASTER), the driver's memory and Java options, the connector jars, and this
    interpreter for the driver and the workers. No secret: they travel in the environment."""
    argv = [_spark_submit_binary(), "--master", settings.spark_master,
            "--name", f"ai-tweets-{job}", "--driver-memory", settings.spark_driver_memory,
            "--conf", f"spark.pyspark.python={sys.executable}",
            "--conf", f"spark.pyspark.driver.python={sys.executable}"]
    if jars := spark_jars(settings):  # JDBC's DriverManager only sees the application class path
        argv += ["--jars", ",".join(jars), "--driver-class-path", ":".join(jars)]
    if settings.spark_driver_java_options:
        argv += ["--driver-java-options", settings.spark_driver_java_options]
    return [*argv, str(JOBS_DIR / f"{job}.py"), *args]


def _spark_submit_binary() -> str:
    """pyspark's own `bin/spark-submit`: beside its jars, it finds its Spark home by itself
    (the environment's `bin/spark-submit` asks a `python3` on PATH, which may lack pyspark)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "spark-submit"
        if binary.exists():
            return str(binary)
    return "spark-submit"


class SparkJobFailed(RuntimeError):
    """A bounded Spark job exited with an error; the message ends with its last `error:` line."""


def run_job(job: str, args: Sequence[str], settings: Settings) -> None:
    """Run a bounded Spark job to its end through `submit_command`, its output in this
    process's log (an Airflow task's). A bad setting fails at once (SettingsError, not retried);
    any other failure raises SparkJobFailed, which Airflow retries."""
    command = submit_command(job, args, settings)
    log.info("$ %s", " ".join(command))
    include = str(PROJECT_ROOT / "include")
    python_path = os.pathsep.join(filter(None, [include, process_environment().get("PYTHONPATH")]))
    child = processes.start(command, env=process_environment(PYTHONPATH=python_path), cwd=PROJECT_ROOT,
                            output=subprocess.PIPE)
    last_error = None
    for raw in child.stdout:
        line = raw.decode(errors="replace").rstrip()
        log.info("%s", line)
        if line.startswith("error:"):
            last_error = line
    code = child.wait()
    if code == 2 and last_error:  # the CLI's exit code for a bad setting
        raise SettingsError(f"the Spark job {job} stopped: {last_error}")
    if code != 0:
        raise SparkJobFailed(f"the Spark job {job} exited with {code}" + (f": {last_error}" if last_error else ""))


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
