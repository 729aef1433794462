"""Superset settings for the Compose stack: metadata in Postgres, secrets from the environment."""

import os

from sqlalchemy.engine import URL

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

# Built with URL.create so that any character in the password is escaped.
SQLALCHEMY_DATABASE_URI = URL.create(
    "postgresql+psycopg2",
    username="postgres",
    password=os.environ["POSTGRES_PASSWORD"],
    host="postgres",
    port=5432,
    database="superset",
).render_as_string(hide_password=False)
