"""Helpers for capture tests: isolated topics and tables, real ingest runs (spark-submit)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from ai_tweets.storage import connect
from ai_tweets.tables import identifier
from ai_tweets_devkit.env import python_env  # noqa: F401 (the tests import it from here too)
from stackbase.settings import Settings, environment, load_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Isolated:
    """A topic, table prefix and checkpoint folder of their own, so tests never collide."""

    env: dict[str, str]
    settings: Settings

    @classmethod
    def create(cls, tmp_path: Path, version: int = 0) -> Isolated:
        tag = uuid.uuid4().hex[:8]
        overrides = {"TWEETS_TOPIC": f"test-tweets-{tag}", "RAW_TABLE_PREFIX": f"test_raw_{tag}",
                     "DATASET_VERSION": str(version), "DATA_DIR": str(tmp_path / "data")}
        env = {**environment(ROOT / ".env"), **overrides}
        return cls(env=env, settings=load_settings(env))

    def with_version(self, version: int) -> Isolated:
        env = {**self.env, "DATASET_VERSION": str(version)}
        return Isolated(env=env, settings=load_settings(env))

    def ingest(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run the Spark ingest job to completion (available-now) in its own process."""
        result = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--available-now",
                                 *args], env=python_env(**self.env), capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    def store_raw(self, count: int, seed: int) -> None:
        """`count` generated tweets written straight into the raw table, as ingest writes them
        (for tests of the later stages: no Kafka round trip, no Spark job to start)."""
        from ai_tweets.generator import generate
        from ai_tweets.ingest import raw_row
        from ai_tweets.schema import normalize
        from ai_tweets.storage import copy_upsert, ensure_raw_table
        from ai_tweets.stream import Message
        from ai_tweets.tables import RAW_COLUMNS

        rows = [raw_row(normalize(item.payload), Message(self.settings.tweets_topic, 0, offset, None,
                                                          json.dumps(item.payload).encode()))
                for offset, item in enumerate(generate(count, seed=seed))]
        with connect(self.settings) as conn:
            ensure_raw_table(conn, self.raw_table)
            copy_upsert(conn, self.raw_table, RAW_COLUMNS, rows, ("tweet_id",))
            conn.commit()

    def start_ingest(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), *args],
                                env=python_env(**self.env), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def query(self, query: str, params: tuple = (), **tables: str) -> list[tuple]:
        """Run `query`; `{name}` placeholders become the quoted table names given as name=table."""
        statement = sql.SQL(query).format(**{name: identifier(t) for name, t in tables.items()})
        with connect(self.settings) as conn:
            return conn.execute(statement, params).fetchall()

    def counts(self, table: str) -> tuple[int, int]:
        """(rows, distinct tweet ids) of a raw table, (0, 0) if it does not exist yet."""
        if not self.query("SELECT to_regclass(%s) IS NOT NULL", (f'public."{table}"',))[0][0]:
            return 0, 0
        return self.query("SELECT count(*), count(DISTINCT tweet_id) FROM {table}", table=table)[0]

    @property
    def raw_table(self) -> str:
        from ai_tweets.tables import raw_table_name

        return raw_table_name(self.settings)

    def checksum(self, table: str, with_text: bool = True) -> str:
        """sha256 over every row in tweet_id order (all columns, or all but the payload)."""
        rows = self.query("SELECT * FROM {table} ORDER BY tweet_id", table=table)
        if not with_text:
            rows = [row[:1] + row[2:] for row in rows]
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    def produce_raw(self, messages: list[tuple[bytes | None, bytes]]) -> None:
        from confluent_kafka import Producer

        from ai_tweets.kafka import ensure_topic, producer_config

        ensure_topic(self.settings)
        producer = Producer(producer_config(self.settings))
        for key, value in messages:
            producer.produce(self.settings.tweets_topic, key=key, value=value)
            producer.poll(0)
        assert producer.flush(60) == 0


def arrow_batch(topic: str, values: list[bytes | None], first_offset: int):
    """What Spark hands a stream job's partition writer: one Arrow batch of Kafka messages."""
    import pyarrow as pa

    now = datetime.now(UTC)
    return pa.RecordBatch.from_pydict({
        "topic": [topic] * len(values), "partition": [0] * len(values),
        "offset": list(range(first_offset, first_offset + len(values))), "key": [None] * len(values),
        "value": values, "timestamp": [now] * len(values)})


MALFORMED = [
    (b"not json at all {", "invalid JSON"),
    (json.dumps({"text": "no id here", "created_at": "2020-04-05T10:00:00Z"}).encode(), "missing id"),
    (json.dumps({"id": "123", "created_at": "2020-04-05T10:00:00Z"}).encode(), "missing text"),
    (json.dumps({"id": [1], "text": "id is a list", "created_at": "2020-04-05T10:00:00Z"}).encode(),
     "id is not a whole number"),
    (json.dumps({"id": "124", "text": 42, "created_at": "2020-04-05T10:00:00Z"}).encode(),
     "text is not a string"),
    (json.dumps({"id": "125", "text": "x" * 300_000, "created_at": "2020-04-05T10:00:00Z"}).encode(),
     "message too large"),
    (b"[1, 2, 3]", "not a JSON object"),
    (json.dumps({"id": "126", "text": "bad date", "created_at": "yesterday"}).encode(),
     "created_at is not a date"),
]
