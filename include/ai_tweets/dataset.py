"""Prepare, first half: dedup the raw table and split it into versioned datasets.

- `deduplicated_{prefix}_{version}`: one tweet per normalized text (case, whitespace,
  `RT @user:` prefixes, t.co links and trailing ellipses ignored), the earliest kept.
- `test_dataset_{v}`, `dev_dataset_{v}`, `snorkel_train_dataset_{v}`, `train_dataset_{v}`:
  sizes configurable, assignment seeded and sticky: a tweet keeps its split across re-runs
  (and keeps its gold label), new tweets fill the splits that are short, the rest go to train.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ai_tweets.storage import count_rows, ensure_tables, lock_ddl, table_exists
from ai_tweets.tables import (
    AI,
    LABEL_COUNTS,
    NOT_AI,
    SPLIT_COLUMNS,
    SPLITS,
    dedup_table_name,
    identifier,
    raw_table_name,
    split_table_ddl,
    split_table_name,
    table_as_select,
)
from stackbase.errors import DeterministicError
from stackbase.settings import Settings

log = logging.getLogger(__name__)

# Label values everywhere (weak_label, gold_label, Snorkel): the snorkel-tutorials convention.

# The text key that two tweets must share to be duplicates (SQL over the raw table's `text`);
# `normalized_text` is the same key in Python (a test holds the two equal).
NORMALIZED_TEXT = r"""
    btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(lower(text),
        '^rt @\w+:\s*', ''),            -- retweet prefix
        'https?://t\.co/\S*', '', 'g'), -- shortened links
        '(…|\.\.\.)\s*$', ''),          -- trailing ellipsis of a cut text
        '\s+', ' ', 'g'))
"""


_RETWEET_PREFIX = re.compile(r"^rt @\w+:\s*")
_SHORT_LINK = re.compile(r"https?://t\.co/\S*")
_TRAILING_ELLIPSIS = re.compile(r"(…|\.\.\.)\s*$")
_SPACES = re.compile(r"\s+")


def normalized_text(text: str) -> str:
    """The dedup key of `NORMALIZED_TEXT`, in Python: lower case, no `RT @user:` prefix, no t.co
    links, no trailing ellipsis, whitespace collapsed and trimmed."""
    key = _SHORT_LINK.sub("", _RETWEET_PREFIX.sub("", text.lower(), count=1))
    return _SPACES.sub(" ", _TRAILING_ELLIPSIS.sub("", key, count=1)).strip()


class DatasetTooSmall(DeterministicError, ValueError):
    """The version has too few deduplicated tweets to split (fewer than `MIN_TWEETS`)."""


MIN_TWEETS = 20  # below this, no split would hold enough tweets to learn or measure anything
SHRUNK_SHARE = 0.9  # test + dev + snorkel_train of a dataset smaller than their sizes; train keeps the rest


@dataclass(frozen=True)
class SplitSizes:
    """Target sizes of test, dev and snorkel_train; train gets the rest.

    The rule for small data (`fit`): when the deduplicated tweets are fewer than the three sizes
    plus one, the three shrink in proportion to take 90% of the tweets (each at least one) and
    train keeps the other 10%, so a file of 10,000 tweets splits 7.8% / 3.9% / 78.3% / 10%
    with the defaults, and train is never empty. Under `MIN_TWEETS` tweets: `DatasetTooSmall`.
    """

    test: int = 1_000
    dev: int = 500
    snorkel_train: int = 10_000

    @property
    def needed(self) -> int:
        return self.test + self.dev + self.snorkel_train + 1  # train gets the rest, at least one

    def of(self, split: str) -> int | None:
        return None if split == "train" else getattr(self, split)

    def fit(self, total: int, table: str = "the dataset") -> SplitSizes:
        """These sizes for `total` deduplicated tweets, shrunk by the rule above when they do not fit."""
        if total < MIN_TWEETS:
            raise DatasetTooSmall(
                f"{table} has {total:,} deduplicated tweets; splitting needs at least {MIN_TWEETS}. "
                f"Capture more tweets for this dataset version first.")
        if total >= self.needed:
            return self
        share = SHRUNK_SHARE * total / (self.needed - 1)
        return SplitSizes(*(max(1, int(size * share)) for size in (self.test, self.dev, self.snorkel_train)))


def ensure_split_table(conn: psycopg.Connection, table: str) -> None:
    """A split table (`tables.split_table_ddl`); idempotent."""
    lock_ddl(conn)
    conn.execute(split_table_ddl(table))


@dataclass(frozen=True)
class DedupReport:
    table: str
    raw_rows: int
    kept: int

    @property
    def removed(self) -> int:
        return self.raw_rows - self.kept


def dedup_raw_tweets(conn: psycopg.Connection, settings: Settings) -> DedupReport:
    """Rebuild `deduplicated_{prefix}_{version}` from the raw table, atomically: one tweet per
    normalized text, the earliest (then the smallest id) kept. Deterministic."""
    raw, dedup = raw_table_name(settings), dedup_table_name(settings)
    building = f"{dedup}__building"[:63]
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {building}").format(building=identifier(building)))
        conn.execute(table_as_select(building, sql.SQL(
            "SELECT DISTINCT ON (normalized_text) r.* "
            "FROM (SELECT *, {key} AS normalized_text FROM {raw}) r "
            "ORDER BY normalized_text, created_at, tweet_id"
        ).format(key=sql.SQL(NORMALIZED_TEXT), raw=identifier(raw))))
        conn.execute(sql.SQL("ALTER TABLE {building} ADD PRIMARY KEY (tweet_id)")
                     .format(building=identifier(building)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {dedup}").format(dedup=identifier(dedup)))
        conn.execute(sql.SQL("ALTER TABLE {building} RENAME TO {dedup}")
                     .format(building=identifier(building), dedup=identifier(dedup)))
        report = DedupReport(dedup, count_rows(conn, raw), count_rows(conn, dedup))
    log.info("dedup: %s has %d tweets, %d duplicates removed → %s (%d)", raw, report.raw_rows,
             report.removed, dedup, report.kept)
    return report




def _rank(seed: int) -> sql.Composable:
    """A seeded pseudo-random rank in [0, 1) per tweet: md5, so it is the same everywhere."""
    return sql.SQL("('x' || substr(md5({seed} || ':' || d.tweet_id::text), 1, 13))::bit(52)::bigint "
                   "/ 4503599627370496.0").format(seed=sql.Literal(str(seed)))


def split_dataset(conn: psycopg.Connection, settings: Settings, sizes: SplitSizes | None = None,
                  seed: int = 0) -> dict[str, int]:
    """Assign deduplicated tweets to the four splits; returns the size of each split.

    Sticky and deterministic: tweets already in a split stay there (with their labels); the
    others, in seeded-random order, fill test, dev and snorkel_train up to their sizes (shrunk
    for a small dataset, see `SplitSizes.fit`), and the rest go to train. A tweet is never in
    two splits.
    """
    dedup = dedup_table_name(settings)
    total = count_rows(conn, dedup)
    configured = sizes or SplitSizes()
    sizes = configured.fit(total, dedup)
    if sizes != configured:
        log.info("%s has %d tweets, fewer than the split sizes need (%d): shrunk to test %d, dev %d, "
                 "snorkel_train %d, train the rest", dedup, total, configured.needed, sizes.test, sizes.dev,
                 sizes.snorkel_train)
    tables = {split: split_table_name(split, settings) for split in SPLITS}
    with conn.transaction():
        for table in tables.values():
            ensure_split_table(conn, table)
        not_assigned = sql.SQL(" AND ").join(
            sql.SQL("NOT EXISTS (SELECT 1 FROM {t} s WHERE s.tweet_id = d.tweet_id)").format(t=identifier(t))
            for t in tables.values())
        columns = sql.SQL(", ").join(map(sql.Identifier, SPLIT_COLUMNS))
        counts = {}
        for split, table in tables.items():
            have = count_rows(conn, table)
            target = sizes.of(split)
            limit = sql.SQL("") if target is None else sql.SQL("LIMIT {n}").format(
                n=sql.Literal(max(target - have, 0)))
            conn.execute(sql.SQL(
                "INSERT INTO {table} ({columns}, split_rank) "
                "SELECT {d_columns}, {rank} AS split_rank FROM {dedup} d WHERE {not_assigned} "
                "ORDER BY split_rank, d.tweet_id {limit}"
            ).format(table=identifier(table), columns=columns,
                     d_columns=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c))
                                                  for c in SPLIT_COLUMNS),
                     rank=_rank(seed), dedup=identifier(dedup), not_assigned=not_assigned, limit=limit))
            counts[split] = count_rows(conn, table)
    log.info("splits of version %d: %s", settings.dataset_version,
             ", ".join(f"{split} {count:,}" for split, count in counts.items()))
    return counts


def refresh_label_counts(conn: psycopg.Connection, settings: Settings) -> int:
    """Recount the weak and gold labels of every split of the version into `label_counts`
    (what the dashboard shows); prepare calls it after weak labeling, annotate after a pull.
    Idempotent: a count that did not change keeps its row (and its `counted_at`), a count that
    is gone is deleted. Returns the number of rows inserted or changed."""
    ensure_tables(conn, LABEL_COUNTS)
    label = sql.SQL("CASE {c} WHEN {ai} THEN 'AI' WHEN {not_ai} THEN 'not AI' ELSE 'abstain' END")
    parts = [sql.SQL("SELECT {split}::text, {source}::text, {label}, count(*) FROM {table} "
                     "WHERE {c} IS NOT NULL GROUP BY 3").format(
                split=sql.Literal(split), source=sql.Literal(source), table=identifier(table),
                c=sql.Identifier(column), label=label.format(c=sql.Identifier(column), ai=sql.Literal(AI),
                                                             not_ai=sql.Literal(NOT_AI)))
             for split in SPLITS if table_exists(conn, table := split_table_name(split, settings))
             for source, column in (("weak", "weak_label"), ("gold", "gold_label"))]
    version = sql.Literal(settings.dataset_version)
    with conn.transaction():
        if not parts:
            conn.execute("DELETE FROM label_counts WHERE dataset_version = %s", (settings.dataset_version,))
            return 0
        return conn.execute(sql.SQL("""
            WITH counts (split, label_source, label, tweets) AS ({union}),
            gone AS (
                DELETE FROM label_counts l WHERE l.dataset_version = {version} AND NOT EXISTS (
                    SELECT 1 FROM counts c
                    WHERE (c.split, c.label_source, c.label) = (l.split, l.label_source, l.label)))
            INSERT INTO label_counts (dataset_version, split, label_source, label, tweets)
            SELECT {version}, split, label_source, label, tweets FROM counts
            ON CONFLICT (dataset_version, split, label_source, label) DO UPDATE
                SET tweets = EXCLUDED.tweets, counted_at = now()
                WHERE label_counts.tweets IS DISTINCT FROM EXCLUDED.tweets""").format(
                version=version, union=sql.SQL(" UNION ALL ").join(parts))).rowcount
