"""Prepare on the real stack: dedup, sticky seeded splits, weak labels, gold labels kept."""

from __future__ import annotations

import random

import pytest
from capture_helpers import Isolated
from psycopg import sql

from ai_tweets.dataset import (
    NORMALIZED_TEXT,
    DatasetTooSmall,
    SplitSizes,
    dedup_raw_tweets,
    normalized_text,
    split_dataset,
)
from ai_tweets.storage import connect
from ai_tweets.tables import SPLITS, dedup_table_name, split_table_name
from stackbase.errors import DeterministicError

pytestmark = pytest.mark.usefixtures("local_stack")

SIZES = SplitSizes(test=1_000, dev=500, snorkel_train=10_000)


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Isolated:
    """20,000 generated tweets (the generator re-posts about 3% of texts) in a raw table of a
    version of its own, written as ingest writes them (capture → ingest: test_capture.py)."""
    iso = Isolated.create(tmp_path_factory.mktemp("prepare"), version=random.randint(100_000, 999_999))
    iso.store_raw(20_000, seed=21)
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


def test_the_python_dedup_key_is_the_sql_one(captured):
    from ai_tweets.generator import generate
    from ai_tweets.schema import normalize

    texts = [normalize(item.payload).text for item in generate(300, seed=41)] + [
        "RT @someone: Deep  Learning\n rocks https://t.co/abc…", "  tabs\tand …", "rt @a: rt @b: x",
        "ends with dots...", "https://t.co/x only", ""]
    with connect(captured.settings) as conn:
        keys = conn.execute(sql.SQL("SELECT {key} FROM unnest(%s::text[]) WITH ORDINALITY AS t(text, n) ORDER BY n")
                            .format(key=sql.SQL(NORMALIZED_TEXT)), (texts,)).fetchall()
    assert [key for (key,) in keys] == [normalized_text(text) for text in texts]


def test_a_small_dataset_gets_proportional_splits_and_a_tiny_one_a_clear_error(tmp_path):
    iso = Isolated.create(tmp_path, version=random.randint(100_000, 999_999))
    iso.store_raw(300, seed=22)  # capture → ingest is tested elsewhere; this is about the splits
    with connect(iso.settings) as conn:
        report = dedup_raw_tweets(conn, iso.settings)
        counts = split_dataset(conn, iso.settings, SIZES)
    expected = SIZES.fit(report.kept)
    assert (counts["test"], counts["dev"], counts["snorkel_train"]) == \
        (expected.test, expected.dev, expected.snorkel_train)
    assert counts["train"] == report.kept - expected.test - expected.dev - expected.snorkel_train > 0
    assert sum(counts.values()) == report.kept and counts["snorkel_train"] > 10 * counts["test"] > 0

    tiny = Isolated.create(tmp_path / "tiny", version=random.randint(100_000, 999_999))
    tiny.store_raw(12, seed=23)
    with connect(tiny.settings) as conn:
        kept = dedup_raw_tweets(conn, tiny.settings).kept
        with pytest.raises(DatasetTooSmall) as error:
            split_dataset(conn, tiny.settings, SIZES)
    assert f"{kept:,} deduplicated tweets" in str(error.value) and "at least 20" in str(error.value)
    assert isinstance(error.value, DeterministicError)


def test_weak_labels_lf_summary_mlflow_parquet_and_cli(captured, tmp_path):
    """The weak-label step on the splits: labels in every split, F1 on the generator's truth,
    the LF summary as a table and in MLflow with the label model, Parquet copies, the CLI."""
    import json

    import pandas as pd
    from mlflow import MlflowClient

    from ai_tweets.generator import ground_truth
    from ai_tweets.prepare import WEAK_LABEL_EXPERIMENT, score_file, weak_label
    from ai_tweets.tables import lf_summary_table_name

    iso = captured
    with connect(iso.settings) as conn:
        dedup_raw_tweets(conn, iso.settings)
        split_dataset(conn, iso.settings, SIZES, seed=3)
    report = weak_label(iso.settings.dataset_version, seed=0, settings=iso.settings)

    truth = ground_truth(20_000, seed=21)
    labels = dict(iso.query("SELECT tweet_id, weak_label FROM {t}", t=split_table_name("test", iso.settings)))
    true_ai = {i for i in labels if truth[i]}
    said_ai = {i for i, label in labels.items() if label == 1}
    precision = len(true_ai & said_ai) / max(len(said_ai), 1)
    recall = len(true_ai & said_ai) / max(len(true_ai), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"weak labels on the generator's truth (test split): P {precision:.3f} R {recall:.3f} F1 {f1:.3f}")
    assert f1 >= 0.85
    for split in SPLITS:
        unlabeled = iso.query("SELECT count(*) FROM {t} WHERE weak_label IS NULL OR weak_prob IS NULL",
                              t=split_table_name(split, iso.settings))[0][0]
        assert unlabeled == 0, f"{split} has rows without weak labels"

    summary = iso.query("SELECT lf, coverage FROM {t}", t=lf_summary_table_name(iso.settings))
    assert len(summary) >= 20 and all(0 <= coverage <= 1 for _, coverage in summary)
    stored = iso.query("SELECT * FROM {t} ORDER BY lf", t=lf_summary_table_name(iso.settings))
    assert {row[2] for row in stored} <= {"[]", "[0]", "[1]", "[0, 1]"}, "polarity: the labels an LF gave"
    splits_before = {s: iso.checksum(split_table_name(s, iso.settings)) for s in SPLITS}
    weak_label(iso.settings.dataset_version, seed=0, settings=iso.settings)
    assert iso.query("SELECT * FROM {t} ORDER BY lf", t=lf_summary_table_name(iso.settings)) == stored, \
        "a re-run on the same data leaves the LF summary (and when it was computed) as it was"
    assert {s: iso.checksum(split_table_name(s, iso.settings)) for s in SPLITS} == splits_before
    client = MlflowClient(iso.settings.mlflow_uri())
    run = client.get_run(report["mlflow_run_id"])
    assert run.info.experiment_id == client.get_experiment_by_name(WEAK_LABEL_EXPERIMENT).experiment_id
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | \
        {a.path for a in client.list_artifacts(run.info.run_id, "label_model")}
    assert {"lf_summary.csv", "label_model/label_model.pkl"} <= artifacts
    parquet = pd.read_parquet(f"{report['parquet']}/test.parquet")
    assert len(parquet) == 1_000 and {"weak_label", "weak_prob"} <= set(parquet.columns)

    # A run started in MLflow after the pipeline's fits (anyone who can write to MLflow could,
    # with any pickle in it) is never what gets loaded: only the run the pipeline recorded.
    import mlflow

    from ai_tweets.prepare import load_recorded_label_model

    mlflow.set_tracking_uri(iso.settings.mlflow_uri())
    mlflow.set_experiment(WEAK_LABEL_EXPERIMENT)
    with mlflow.start_run(run_name="forged") as forged:
        mlflow.set_tag("dataset_version", str(iso.settings.dataset_version))
        (tmp_path / "label_model.pkl").write_bytes(b"not the pipeline's model")
        mlflow.log_artifact(str(tmp_path / "label_model.pkl"), artifact_path="label_model")
    recorded = iso.query("SELECT mlflow_run_id FROM label_models WHERE dataset_version = %s ORDER BY fitted_at",
                         (iso.settings.dataset_version,))
    assert len(recorded) >= 2 and recorded[-2][0] == report["mlflow_run_id"], "one row per fit"
    assert load_recorded_label_model(iso.settings)[1] == recorded[-1][0] != forged.info.run_id
    # Loaded by its run id, the forged pickle is refused too (the pipeline recorded no SHA-256 for
    # it); so is the pipeline's own pickle once replaced in the artifact store.
    from ai_tweets.model_files import UntrustedModel
    from ai_tweets.prepare import LABEL_MODEL_ARTIFACT, load_label_model
    from localstack.runtime import Context

    with pytest.raises(UntrustedModel, match="no recorded SHA-256"):
        load_label_model(iso.settings, forged.info.run_id)
    run = mlflow.get_run(recorded[-1][0])
    pickle_file = (Context.load().local / "mlflow" / "artifacts"
                   / run.info.artifact_uri.removeprefix("mlflow-artifacts:/") / LABEL_MODEL_ARTIFACT)
    original = pickle_file.read_bytes()
    try:
        pickle_file.write_bytes(original + b"\0")
        with pytest.raises(UntrustedModel, match="changed since the pipeline recorded it"):
            load_recorded_label_model(iso.settings)
    finally:
        pickle_file.write_bytes(original)

    source, target = tmp_path / "texts.jsonl", tmp_path / "weak.csv"
    source.write_text(json.dumps({"text": "New paper: a transformer for protein folding https://arxiv.org/abs/1"})
                      + "\n" + json.dumps({"text": "add 5 ml of milk and stir"}) + "\n")
    assert score_file(source, target, iso.settings) == 2
    scored = pd.read_csv(target)
    assert list(scored.columns) == ["text", "weak_label", "weak_prob"]
    assert scored["weak_label"].tolist() == [1, 0]
