#!/bin/bash
# Runs once, when the postgres-data volume is empty (docker-entrypoint-initdb.d).
# The pipeline's database `streamingdb` belongs to the role `streaming`; `streaming_reader`
# (Superset's) may only SELECT there. Each service's database belongs to a role of its own
# (airflow, mlflow, labelstudio, superset) that may connect to no other database.
set -euo pipefail
for name in STREAMINGDB_PASSWORD STREAMINGDB_READER_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD \
            LABEL_STUDIO_DB_PASSWORD SUPERSET_DB_PASSWORD; do
  [ -n "${!name:-}" ] || { echo "$name must be set (see .env.example)" >&2; exit 1; }
done

# Passwords go in on stdin (`\set`), not on psql's command line. psql substitutes :'name' as a
# quoted literal, so any password is safe; inside \set's quotes, ' is doubled and \ escaped.
quoted() { local value=${1//\\/\\\\}; printf "'%s'" "${value//\'/\'\'}"; }
{
  printf '\\set streaming_password %s\n' "$(quoted "$STREAMINGDB_PASSWORD")"
  printf '\\set reader_password %s\n' "$(quoted "$STREAMINGDB_READER_PASSWORD")"
  printf '\\set airflow_password %s\n' "$(quoted "$AIRFLOW_DB_PASSWORD")"
  printf '\\set mlflow_password %s\n' "$(quoted "$MLFLOW_DB_PASSWORD")"
  printf '\\set labelstudio_password %s\n' "$(quoted "$LABEL_STUDIO_DB_PASSWORD")"
  printf '\\set superset_password %s\n' "$(quoted "$SUPERSET_DB_PASSWORD")"
  cat <<'SQL'
CREATE ROLE streaming LOGIN PASSWORD :'streaming_password';
CREATE ROLE streaming_reader LOGIN PASSWORD :'reader_password';
CREATE DATABASE streamingdb OWNER streaming;
REVOKE ALL ON DATABASE streamingdb FROM PUBLIC;
GRANT CONNECT ON DATABASE streamingdb TO streaming_reader;
\connect streamingdb
GRANT USAGE ON SCHEMA public TO streaming_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE streaming IN SCHEMA public GRANT SELECT ON TABLES TO streaming_reader;
\connect postgres
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE labelstudio LOGIN PASSWORD :'labelstudio_password';
CREATE ROLE superset LOGIN PASSWORD :'superset_password';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE labelstudio OWNER labelstudio;
CREATE DATABASE superset OWNER superset;
REVOKE ALL ON DATABASE airflow, mlflow, labelstudio, superset FROM PUBLIC;
SQL
} | psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres
