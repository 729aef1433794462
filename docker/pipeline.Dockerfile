# syntax=docker/dockerfile:1
# The project image: Airflow 3.3 with the pipeline's exact environment (requirements.txt),
# the ai_tweets package, a Java runtime and the Spark Kafka/JDBC jars. One image runs every
# Airflow component, the Spark master and worker, the tweet producer, MLflow model serving
# and the Superset dashboard's provisioning, so the Spark driver (inside the Airflow
# scheduler, client mode) and the executors (inside spark-worker) run the same Python,
# pyspark and package versions.
#
# Build context: the repository root (see pipeline.Dockerfile.dockerignore).

# Extra jars for pyspark 4.2.0 (Kafka source/sink, Postgres JDBC), from Maven Central.
FROM maven:3.9.12-eclipse-temurin-17 AS spark-jars
COPY localstack/maven/spark/pom.xml /build/pom.xml
RUN mvn -q -B -f /build/pom.xml dependency:copy-dependencies \
        -DoutputDirectory=/spark-jars -DincludeScope=runtime

FROM apache/airflow:3.3.2-python3.11

USER root
# Spark 4.2 runs on Java 17 or 21; the distribution's default JRE is one of them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/ai-tweets /data /opt/airflow/auth \
 && chown airflow:0 /opt/ai-tweets /data /opt/airflow/auth
USER airflow

WORKDIR /opt/ai-tweets
COPY --chown=airflow:0 requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# Editable install: settings.PROJECT_ROOT is /opt/ai-tweets, laid out as in a checkout.
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 include/ include/
RUN pip install --no-cache-dir --no-deps -e .

# The pom leaves out every jar pyspark already ships, so the extra jars go straight onto
# the classpath of every Spark JVM (driver, master, worker): no spark.jars needed here.
RUN --mount=type=bind,from=spark-jars,source=/spark-jars,target=/tmp/spark-jars \
    cp /tmp/spark-jars/*.jar "$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars/"

COPY --chown=airflow:0 dags/ dags/
COPY --chown=airflow:0 plugins/ plugins/
COPY --chown=airflow:0 spark_jobs/ spark_jobs/
COPY --chown=airflow:0 label_studio/ label_studio/
# The Superset dashboard bundle, imported by `python -m ai_tweets.dashboard` (superset-provision).
COPY --chown=airflow:0 superset/dashboard/ superset/dashboard/

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/ai-tweets/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ai-tweets/plugins \
    DATA_DIR=/data \
    MLFLOW_DISABLE_TELEMETRY=true
WORKDIR /opt/airflow
