"""Every table of streamingdb is declared in `ai_tweets.tables`, and only there."""

from __future__ import annotations

import re
from pathlib import Path

from psycopg import sql

from ai_tweets import tables

INCLUDE = Path(__file__).parents[2] / "include"


def test_create_statements_live_in_the_tables_module_only():
    pattern = re.compile(r"CREATE\s+(TABLE|VIEW|OR\s+REPLACE\s+VIEW|(UNIQUE\s+)?INDEX)", re.I)
    offenders = [str(path.relative_to(INCLUDE)) for path in INCLUDE.rglob("*.py")
                 if path.name != "tables.py" and any(pattern.search(line) and not line.lstrip().startswith("#")
                                                      for line in path.read_text().splitlines())]
    assert offenders == [], f"DDL outside ai_tweets/tables.py: {offenders}"


def test_each_fixed_table_s_ddl_creates_the_table_it_is_filed_under():
    for name, statements in tables.DDL.items():
        assert f"CREATE TABLE IF NOT EXISTS {name} (" in statements[0], name
        # then its indexes, columns added since (for databases made before them) and checks
        # remade when they changed (a DO block that alters this table only)
        assert all(f" ON {name} " in statement or statement.startswith(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS ")
                   or (statement.startswith("DO $$") and {f"ALTER TABLE {name} "} ==
                       set(re.findall(r"ALTER TABLE \w+ ", statement)))
                   for statement in statements[1:]), name


def test_the_split_table_keeps_the_raw_types_of_the_columns_it_copies():
    raw = dict(tables.RAW_TABLE_COLUMNS)
    text = tables.split_table_ddl("t").as_string(None)
    for column in tables.SPLIT_COLUMNS:
        assert f'"{column}" {raw[column]}' in text
    assert f"gold_label\" smallint CHECK (gold_label IN ({tables.NOT_AI}, {tables.AI}))" in text


def test_the_raw_columns_are_the_ingest_rows_order():
    from datetime import UTC, datetime

    from ai_tweets.ingest import raw_row
    from ai_tweets.schema import normalize
    from ai_tweets.stream import Message

    tweet = normalize({"id": "7", "text": "hello", "created_at": datetime(2024, 1, 1, tzinfo=UTC).isoformat(),
                       "author_id": "1"})
    row = raw_row(tweet, Message(key=None, value=b"{}", topic="t", partition=2, offset=9))
    assert len(row) == len(tables.RAW_COLUMNS)
    values = dict(zip(tables.RAW_COLUMNS, row, strict=True))
    assert (values["tweet_id"], values["text"], values["kafka_partition"], values["kafka_offset"]) == (7, "hello", 2, 9)


def test_configured_names_are_quoted_identifiers():
    statement = tables.raw_table_ddl("raw_tweet_dataset_3")
    assert isinstance(statement, sql.Composed)
    assert '"raw_tweet_dataset_3"' in statement.as_string(None)
