"""Prepare on the real stack: dedup, sticky seeded splits, weak labels, gold labels kept."""

from __future__ import annotations

import random

import pytest
from capture_helpers import Isolated

from ai_tweets.capture import produce_tweets
from ai_tweets.dataset import NORMALIZED_TEXT, DatasetTooSmall, SplitSizes, dedup_raw_tweets, split_dataset
from ai_tweets.storage import connect
from ai_tweets.tables import SPLITS, dedup_table_name, split_table_name

pytestmark = pytest.mark.usefixtures("local_stack")

SIZES = SplitSizes(test=1_000, dev=500, snorkel_train=10_000)


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Isolated:
    """20,000 generated tweets (the generator re-posts about 3% of texts) in a raw table of a
    version of its own."""
    iso = Isolated.create(tmp_path_factory.mktemp("prepare"), version=random.randint(100_000, 999_999))
    produce_tweets("generate", count=20_000, seed=21, settings=iso.settings)
    iso.ingest()
    return iso


def _split_ids(iso: Isolated) -> dict[str, set[int]]:
    return {split: {row[0] for row in iso.query("SELECT tweet_id FROM {table}",
                                                 table=split_table_name(split, iso.settings))}
            for split in SPLITS}


def test_dedup_split_rerun_and_gold_labels(captured):
    iso = captured
    with connect(iso.settings) as conn:
        report = dedup_raw_tweets(conn, iso.settings)
        counts = split_dataset(conn, iso.settings, SIZES, seed=3)
    assert report.raw_rows == 20_000
    distinct = iso.query("SELECT count(DISTINCT " + NORMALIZED_TEXT + ") FROM {raw}",  # noqa: S608
                         raw=iso.raw_table)[0][0]
    assert report.removed == 20_000 - distinct > 0, "exactly the re-posts are removed"
    kept = iso.query("SELECT count(*), count(DISTINCT normalized_text) FROM {table}",
                     table=dedup_table_name(iso.settings))[0]
    assert kept == (report.kept, report.kept)
    # The earliest of each group of duplicates is kept.
    later_kept = iso.query(
        "SELECT count(*) FROM (SELECT " + NORMALIZED_TEXT + " AS normalized_text, min(created_at) AS first "  # noqa: S608 - a constant
        "FROM {raw} GROUP BY 1) g JOIN {dedup} d USING (normalized_text) WHERE d.created_at <> g.first",
        raw=iso.raw_table, dedup=dedup_table_name(iso.settings))[0][0]
    assert later_kept == 0

    assert counts == {"test": 1_000, "dev": 500, "snorkel_train": 10_000, "train": report.kept - 11_500}
    ids = _split_ids(iso)
    assert sum(map(len, ids.values())) == report.kept
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not ids[a] & ids[b], f"{a} and {b} overlap"

    test_table = split_table_name("test", iso.settings)
    iso.query("UPDATE {table} SET gold_label = 1, gold_labeled_by = 'tester', gold_labeled_at = now() "
              "WHERE tweet_id IN (SELECT tweet_id FROM {table} ORDER BY tweet_id LIMIT 7) RETURNING 1",
              table=test_table)
    checksums = {s: iso.checksum(split_table_name(s, iso.settings)) for s in SPLITS}
    with connect(iso.settings) as conn:
        dedup_raw_tweets(conn, iso.settings)
        again = split_dataset(conn, iso.settings, SIZES, seed=3)
    assert again == counts
    assert {s: iso.checksum(split_table_name(s, iso.settings)) for s in SPLITS} == checksums
    assert iso.query("SELECT count(*) FROM {table} WHERE gold_label = 1 AND gold_labeled_by = 'tester'",
                     table=test_table)[0][0] == 7


def test_normalized_text_ignores_case_space_retweets_links_and_ellipses(captured):
    same = ["Deep Learning  rocks https://t.co/AbC123", "RT @someone: deep learning rocks…",
            "deep learning rocks...", "  DEEP learning\nrocks "]
    keys = captured.query("SELECT DISTINCT " + NORMALIZED_TEXT + " FROM unnest(%s::text[]) AS t(text)",  # noqa: S608
                          (same,))
    assert keys == [("deep learning rocks",)]


def test_too_few_rows_is_a_clear_error(tmp_path):
    iso = Isolated.create(tmp_path, version=random.randint(100_000, 999_999))
    produce_tweets("generate", count=300, seed=22, settings=iso.settings)
    iso.ingest()
    with connect(iso.settings) as conn:
        report = dedup_raw_tweets(conn, iso.settings)
        with pytest.raises(DatasetTooSmall) as error:
            split_dataset(conn, iso.settings, SIZES)
    message = str(error.value)
    assert f"{report.kept:,} deduplicated tweets" in message and "at least 11,501" in message
