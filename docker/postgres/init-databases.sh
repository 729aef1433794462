#!/bin/bash
# Runs once, when the postgres-data volume is empty (docker-entrypoint-initdb.d).
# The pipeline's database `streamingdb` belongs to the role `streaming`; `streaming_reader`
# (Superset's) may only SELECT there. The services' own databases belong to the superuser.
set -euo pipefail
: "${STREAMINGDB_PASSWORD:?STREAMINGDB_PASSWORD must be set (see .env.example)}"
: "${STREAMINGDB_READER_PASSWORD:?STREAMINGDB_READER_PASSWORD must be set (see .env.example)}"

# Passwords go in on stdin (`\set`), not on psql's command line. psql substitutes :'name' as a
# quoted literal, so any password is safe; inside \set's quotes, ' is doubled and \ escaped.
quoted() { local value=${1//\\/\\\\}; printf "'%s'" "${value//\'/\'\'}"; }
{
  printf '\\set streaming_password %s\n' "$(quoted "$STREAMINGDB_PASSWORD")"
  printf '\\set reader_password %s\n' "$(quoted "$STREAMINGDB_READER_PASSWORD")"
  cat <<'SQL'
CREATE ROLE streaming LOGIN PASSWORD :'streaming_password';
CREATE ROLE streaming_reader LOGIN PASSWORD :'reader_password';
CREATE DATABASE streamingdb OWNER streaming;
GRANT CONNECT ON DATABASE streamingdb TO streaming_reader;
\connect streamingdb
GRANT USAGE ON SCHEMA public TO streaming_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE streaming IN SCHEMA public GRANT SELECT ON TABLES TO streaming_reader;
\connect postgres
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE labelstudio;
CREATE DATABASE superset;
SQL
} | psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres
