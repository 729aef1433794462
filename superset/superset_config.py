"""Superset settings shared by the local stack and Compose: metadata in the stack's Postgres
(database `superset`), secrets from the environment, nothing phoning home.

The local stack sets SUPERSET_METADATA_HOST/PORT to its Postgres; Compose uses the defaults
(the `postgres` service). Set SUPERSET_CONFIG_PATH to this file.
"""

import os

from sqlalchemy.engine import URL

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

# Built with URL.create so that any character in the password is escaped.
SQLALCHEMY_DATABASE_URI = URL.create(
    "postgresql+psycopg2",
    username=os.environ.get("SUPERSET_DB_USER", "superset"),  # the role of its own that owns `superset`
    password=os.environ["SUPERSET_DB_PASSWORD"],
    host=os.environ.get("SUPERSET_METADATA_HOST", "postgres"),
    port=int(os.environ.get("SUPERSET_METADATA_PORT", "5432")),
    database="superset",
).render_as_string(hide_password=False)

