"""PostgreSQL access of the pipeline: connections with retry, the raw and quarantine
tables, and fast idempotent writes (COPY into a staging table, then INSERT … ON CONFLICT).

Table names come from `ai_tweets.tables` and are always quoted with `sql.Identifier`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import sql

from ai_tweets.retrying import STREAM_WAIT_SECONDS, Backoff, retry_call, service_wait
from ai_tweets.tables import DDL, QUARANTINE_TABLE, identifier, raw_table_ddl
from stackbase.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")



class DatabaseUnavailable(RuntimeError):
    """PostgreSQL did not answer after the retries; the message names the address."""


def connect(settings: Settings, wait: Backoff | None = None, autocommit: bool = False) -> psycopg.Connection:
    """Connect to streamingdb, retrying with the one retry policy while the server is down
    (`wait`, by default the stage's AI_TWEETS_SERVICE_WAIT_SECONDS); then DatabaseUnavailable
    naming the address.

    Nothing hangs unnoticed: every statement is cancelled after STREAMINGDB_STATEMENT_TIMEOUT
    seconds, a lock wait after STREAMINGDB_LOCK_TIMEOUT, and a session idle inside a
    transaction for as long as a statement may run is closed by the server. The errors are
    OperationalErrors, so `in_transaction` retries the write and then names what failed."""
    options = (f"-c statement_timeout={settings.statement_timeout_seconds}s "
               f"-c lock_timeout={settings.lock_timeout_seconds}s "
               f"-c idle_in_transaction_session_timeout={settings.statement_timeout_seconds}s")

    def gave_up(exc: BaseException, attempts: int, waited: float) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"PostgreSQL at {settings.streamingdb_url} is not answering after {attempts} attempt(s) over "
            f"{waited:.0f} s ({str(exc).strip()}). Is the stack up (`make status`)?")

    return retry_call(
        lambda: psycopg.connect(settings.streamingdb_conninfo, connect_timeout=10, autocommit=autocommit,
                                options=options),
        wait or service_wait(settings), retry_on=lambda exc: isinstance(exc, psycopg.OperationalError),
        what=f"PostgreSQL at {settings.streamingdb_url} not answering", give_up=gave_up)


def in_transaction(settings: Settings, work: Callable[[psycopg.Connection], T], what: str,
                   wait: Backoff | None = None) -> T:
    """`work(conn)` in one transaction, run again from the start (with the one retry policy) if
    PostgreSQL goes away midway, e.g. restarted: the failed transaction was rolled back, so `work`
    must be idempotent (the upserts here are). The stream jobs write through this and ride out
    an outage of up to `STREAM_WAIT_SECONDS` by default. Gives up with DatabaseUnavailable
    naming the address."""
    def attempt() -> T:
        with connect(settings, wait=Backoff(budget=0)) as conn:
            return work(conn)

    def gave_up(exc: BaseException, attempts: int, waited: float) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"PostgreSQL at {settings.streamingdb_url}: {what} failed {attempts} times over {waited:.0f} s "
            f"({str(exc).strip()}). Is the stack up (`make status`)?")

    return retry_call(attempt, wait or Backoff(budget=STREAM_WAIT_SECONDS),
                      retry_on=lambda exc: isinstance(exc, psycopg.OperationalError | DatabaseUnavailable),
                      what=f"{what}: PostgreSQL at {settings.streamingdb_url} went away", give_up=gave_up)


# `CREATE TABLE IF NOT EXISTS` is not safe against itself: two sessions creating the same
# table at once fail with a unique violation in pg_type. Every ensure_* first takes this
# transaction-level advisory lock, so Spark workers and DAG tasks can call them concurrently.
_DDL_LOCK = 7_042_011


def lock_ddl(conn: psycopg.Connection) -> None:
    """Serialize schema changes until the end of the current transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))


def ensure_tables(conn: psycopg.Connection, *names: str) -> None:
    """The fixed-name tables `names` (their DDL is in `ai_tweets.tables.DDL`), created if missing."""
    lock_ddl(conn)
    for name in names:
        for statement in DDL[name]:
            conn.execute(statement)


def ensure_raw_table(conn: psycopg.Connection, table: str) -> None:
    """The raw table of one dataset version (and the quarantine beside it)."""
    lock_ddl(conn)
    conn.execute(raw_table_ddl(table))
    ensure_tables(conn, QUARANTINE_TABLE)


@dataclass(frozen=True)
class QuarantinedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


def copy_upsert(conn: psycopg.Connection, table: str, columns: Sequence[str],
                rows: Iterable[Sequence], conflict: Sequence[str]) -> int:
    """COPY rows into a temporary staging table, then insert the new ones; returns how many.

    Idempotent: rows whose `conflict` key exists already are left as they are, so a replayed
    batch changes nothing.
    """
    stage = f"stage_{table}"[:63]
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS)")
                 .format(stage=sql.Identifier(stage), table=identifier(table)))
    conn.execute(sql.SQL("TRUNCATE {stage}").format(stage=sql.Identifier(stage)))
    with conn.cursor().copy(sql.SQL("COPY {stage} ({columns}) FROM STDIN")
                            .format(stage=sql.Identifier(stage), columns=column_list)) as copy:
        for row in rows:
            copy.write_row(row)
    inserted = conn.execute(sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT ({key}) DO NOTHING"
    ).format(table=identifier(table), columns=column_list, stage=sql.Identifier(stage),
             key=sql.SQL(", ").join(map(sql.Identifier, conflict)))).rowcount
    return inserted


def update_columns(conn: psycopg.Connection, table: str, key: str, columns: Sequence[str],
                   rows: Iterable[Sequence]) -> int:
    """Set `columns` of existing rows, matched on `key`, from (key, *values) rows: one COPY
    into a staging table and one UPDATE, not a statement per row."""
    stage = f"upd_{table}"[:63]
    names = sql.SQL(", ").join(map(sql.Identifier, (key, *columns)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {stage}").format(stage=sql.Identifier(stage)))
    conn.execute(sql.SQL("CREATE TEMP TABLE {stage} AS SELECT {names} FROM {table} WITH NO DATA")
                 .format(stage=sql.Identifier(stage), names=names, table=identifier(table)))
    with conn.cursor().copy(sql.SQL("COPY {stage} ({names}) FROM STDIN")
                            .format(stage=sql.Identifier(stage), names=names)) as copy:
        for row in rows:
            copy.write_row(row)
    assignments = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in columns)
    return conn.execute(sql.SQL("UPDATE {table} t SET {assignments} FROM {stage} s WHERE t.{key} = s.{key}")
                        .format(table=identifier(table), assignments=assignments, stage=sql.Identifier(stage),
                                key=sql.Identifier(key))).rowcount


def write_quarantine(conn: psycopg.Connection, target_table: str,
                     messages: Sequence[QuarantinedMessage]) -> int:
    if not messages:
        return 0
    columns = ("target_table", "topic", "kafka_partition", "kafka_offset", "message_key",
               "message_value", "reason")
    rows = ((target_table, m.topic, m.partition, m.offset, m.key, m.value, m.reason) for m in messages)
    return copy_upsert(conn, QUARANTINE_TABLE, columns, rows,
                       ("target_table", "topic", "kafka_partition", "kafka_offset"))


def count_rows(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {table}").format(table=identifier(table))).fetchone()[0]


def count_quarantined(conn: psycopg.Connection, target_table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {q} WHERE target_table = %s").format(q=identifier(QUARANTINE_TABLE))
    return conn.execute(query, (target_table,)).fetchone()[0]


def table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{table}"',)).fetchone()[0]
