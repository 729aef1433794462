#!/bin/bash
# Runs once, when the postgres-data volume is empty (docker-entrypoint-initdb.d).
# The pipeline's database `streamingdb` belongs to the role `streaming`; the services'
# own databases belong to the superuser.
set -euo pipefail
: "${STREAMINGDB_PASSWORD:?STREAMINGDB_PASSWORD must be set (see .env.example)}"

# psql substitutes :'streaming_password' as a quoted literal, so any password is safe.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     --set streaming_password="$STREAMINGDB_PASSWORD" <<'SQL'
CREATE ROLE streaming LOGIN PASSWORD :'streaming_password';
CREATE DATABASE streamingdb OWNER streaming;
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE labelstudio;
CREATE DATABASE superset;
SQL
