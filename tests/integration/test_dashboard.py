"""The Superset dashboard on the real stack: provisioned from superset/dashboard/ idempotently,
every chart's query returns rows once its source has some, and a headless-Chromium screenshot
shows the charts."""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from browser_helpers import headless_chromium
from capture_helpers import ROOT

from ai_tweets.classify import ensure_tables
from ai_tweets.dashboard import chart_data, login, provision_dashboard
from ai_tweets.storage import connect, copy_upsert
from ai_tweets.tables import (
    AI_TWEETS_TABLE,
    BATCH_COLUMNS,
    BATCHES_TABLE,
    SHADOW_BATCH_COLUMNS,
    SHADOW_BATCHES_TABLE,
    SHADOW_DISAGREEMENT_COLUMNS,
    SHADOW_DISAGREEMENTS_TABLE,
    TWEET_URLS_TABLE,
)
from stackbase.settings import environment

pytestmark = pytest.mark.usefixtures("local_stack")

SCREENSHOT = ROOT / ".local" / "screenshots" / "superset_dashboard.png"
LABEL_COUNTS, MODEL_QUALITY, LEARNING_CURVE = ("Label counts: weak vs gold", "Model quality: gold vs weak labels",
                                               "Learning curve (latest make quality)")
DECISIONS, LATEST_DECISIONS = "Retweet decisions", "Latest retweet decisions"
SHADOW_RATE, SHADOW_EXAMPLES = "Shadow disagreement rate", "Latest shadow disagreements"
SPOT_CHECK = "Retweet precision (spot-check)"
CHARTS = {"AI tweets per minute", "Share of AI tweets", "Top domains", "Top URLs", "Latest AI tweets",
          "Model version in use", "Batch latency", LABEL_COUNTS, MODEL_QUALITY, LEARNING_CURVE, DECISIONS,
          LATEST_DECISIONS, SHADOW_RATE, SHADOW_EXAMPLES, SPOT_CHECK}
DATASETS = ("ai_tweets", "classify_batches", "tweet_urls", "latest_ai_tweets", "label_counts", "model_quality",
            "latest_learning_curve", "retweet_decisions", "shadow_batches", "shadow_disagreements",
            "retweet_precision")
# Shadow scoring of the seeded batches: (scored, champion_only, challenger_only) per batch
SEEDED_SHADOW = [(100, 2, 3), (100, 1, 1), (100, 0, 4)]
# Retweet decisions of three seeded tweets: (action, reason, reviewed_by)
SEEDED_DECISIONS = [("would_retweet", "eligible: example-ai-0.org", None),
                    ("rejected", "rejected by dana", "dana"),
                    ("expired", "expired: no answer in 1 hour(s)", None)]
# What the stages write, seeded here under a test dataset version, model name and quality run:
# label counts (version, split, source, label, tweets), trained versions, and a learning curve.
SEEDED_COUNTS = [("train", "weak", "AI", 1_204), ("train", "weak", "not AI", 8_311), ("train", "weak", "abstain", 977),
                 ("test", "weak", "AI", 98), ("test", "weak", "not AI", 830), ("test", "gold", "AI", 61),
                 ("test", "gold", "not AI", 239)]
SEEDED_CURVE = {"uncertainty": (0.71, 0.78, 0.82, 0.85), "random": (0.71, 0.74, 0.77, 0.79)}
SEEDED_WEAK = 0.70  # the run's weak labels' F1; its bar is 0.05 above
GOLD_PER_ROUND = 50


@pytest.fixture(scope="module")
def test_model(settings):
    """The settings with a model name of this test's own: the quality chart shows only its rows."""
    return dataclasses.replace(settings, model_name=f"dashboard-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def provisioned(settings, test_model):
    """The dashboard provisioned for the test model; provisioned again for the stack's own
    MODEL_NAME afterwards, as `make up` leaves it."""
    yield provision_dashboard(test_model)
    provision_dashboard(settings)


@pytest.fixture(scope="module")
def seeded(settings, test_model, provisioned):
    """AI tweets with links, classify batches, label counts, trained versions and a learning
    curve, under random ids, a test dataset version, the test model and a test run; removed afterwards."""
    now = datetime.now(UTC)
    ids = random.sample(range(9_000_000_000_000_000_000, 9_200_000_000_000_000_000), 6)
    query_name = f"test_dashboard_{uuid.uuid4().hex[:8]}"
    version = random.randrange(700_000, 800_000)  # far from users' versions and `make quality`'s (900,001+)
    run_id = f"dashboard-test-{uuid.uuid4().hex[:8]}"
    tweets = [(tweet_id, f"Fine-tuning a small LLM, notes {n}: https://example-ai-{n % 3}.org/post/{n}",
               "42", f"dashboard_test_{n}", now - timedelta(minutes=n), 0.8 + n / 100, settings.model_name,
               "test", None, None, None) for n, tweet_id in enumerate(ids)]
    links = [(tweet_id, f"https://example-ai-{n % 3}.org/post/{n}", f"https://t.co/x{n}",
              f"https://example-ai-{n % 3}.org/post/{n}", f"example-ai-{n % 3}.org", False, None)
             for n, tweet_id in enumerate(ids)]
    batches = [(query_name, n, 100, 20 + n, 0, 1, ["test"], 400 + 50 * n, 900) for n in range(3)]
    counts = [(version, split, source, label, tweets) for split, source, label, tweets in SEEDED_COUNTS]
    quality = [(test_model.model_name, "1", version, now - timedelta(hours=2), "weak",
                "on weak labels of 928 test tweets (no 200 gold labels yet: agreement with the labeling "
                "functions, not quality)", 0.912, 0.90, 0.92, 0.64, 12, 0.912, 928, 0, 0.48, True, "no champion yet"),
               (test_model.model_name, "2", version, now - timedelta(hours=1), "gold",
                "on gold labels of 300 test tweets", 0.853, 0.87, 0.84, 0.853, 300, 0.801, 928, 250, 0.52, True,
                "f1 0.853 vs the champion's 0.640 on the same gold labels"),
               (f"{test_model.model_name}-other", "3", version, now, "gold", "on gold labels of 300 test tweets",
                0.5, 0.5, 0.5, 0.5, 300, 0.5, 928, 250, 0.5, False, "another model: not on this dashboard")]
    curve = [(run_id, now, strategy, n, n * GOLD_PER_ROUND, str(n + 1), n == len(f1s) - 1, f1, f1, f1, f1 + 0.05,
              SEEDED_WEAK, SEEDED_WEAK + 0.05)
             for strategy, f1s in SEEDED_CURVE.items() for n, f1 in enumerate(f1s)]
    with connect(settings) as conn:
        ensure_tables(conn)
        copy_upsert(conn, AI_TWEETS_TABLE, ("tweet_id", "text", "author_id", "author_handle", "created_at",
                                            "ai_probability", "model_name", "model_version", "produced_at",
                                            "kafka_partition", "kafka_offset"), tweets, ("tweet_id",))
        copy_upsert(conn, TWEET_URLS_TABLE, ("tweet_id", "canonical_url", "url", "expanded_url", "domain",
                                             "is_twitter", "twitter_kind"), links, ("tweet_id", "canonical_url"))
        copy_upsert(conn, BATCHES_TABLE, BATCH_COLUMNS, batches, ("query_name", "batch_id"))
        copy_upsert(conn, SHADOW_BATCHES_TABLE, SHADOW_BATCH_COLUMNS,
                    [(query_name, n, ["test"], "test-challenger", *counts, 0)
                     for n, counts in enumerate(SEEDED_SHADOW)], ("query_name", "batch_id"))
        copy_upsert(conn, SHADOW_DISAGREEMENTS_TABLE, SHADOW_DISAGREEMENT_COLUMNS,
                    [(tweet_id, "test-challenger", "test", 0.2, 0.9, tweet[1], tweet[3])
                     for tweet_id, tweet in zip(ids[:2], tweets, strict=False)], ("tweet_id", "challenger_version"))
        # The dashboard's provisioning created these tables; the stages are what write them.
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO label_counts (dataset_version, split, label_source, label, tweets) "
                               "VALUES (%s, %s, %s, %s, %s)", counts)
            cursor.executemany(
                "INSERT INTO model_quality (model_name, model_version, dataset_version, trained_at, judged_on, "
                "judged_in_words, f1, precision, recall, gold_f1, gold_rows, weak_f1, weak_rows, train_gold, "
                "threshold, promoted, decision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s)", quality)
            cursor.executemany(
                "INSERT INTO learning_curve (run_id, run_at, strategy, round, gold_labels, model_version, champion, "
                "f1_all, precision_all, recall_all, f1_sure, weak_f1_all, bar_f1_all) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", curve)
            cursor.execute("INSERT INTO retweet_precision (model_version, labeled, found_ai, precision, low, high) "
                           "VALUES (%s, 40, 34, 0.85, 0.709, 0.929)", (test_model.model_name,))
            cursor.executemany(
                "INSERT INTO retweets (tweet_id, action, reason, reviewed_by, dry_run, ai_probability, domains) "
                "VALUES (%s, %s, %s, %s, true, 0.9, '{}') ON CONFLICT (tweet_id) DO NOTHING",
                [(tweet_id, *decision) for tweet_id, decision in zip(ids, SEEDED_DECISIONS, strict=False)])
    yield {"version": version, "run_id": run_id, "ids": ids}
    with connect(settings) as conn:
        conn.execute("DELETE FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))  # tweet_urls cascade
        conn.execute("DELETE FROM retweets WHERE tweet_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM classify_batches WHERE query_name = %s", (query_name,))
        conn.execute("DELETE FROM shadow_batches WHERE query_name = %s", (query_name,))
        conn.execute("DELETE FROM shadow_disagreements WHERE challenger_version = 'test-challenger'")
        conn.execute("DELETE FROM retweet_precision WHERE model_version = %s", (test_model.model_name,))
        conn.execute("DELETE FROM label_counts WHERE dataset_version = %s", (version,))
        conn.execute("DELETE FROM model_quality WHERE model_name IN (%s, %s)",
                     (test_model.model_name, f"{test_model.model_name}-other"))
        conn.execute("DELETE FROM learning_curve WHERE run_id = %s", (run_id,))


def test_provisioning_is_idempotent(test_model, provisioned):
    again = provision_dashboard(test_model)
    assert again["dashboard_id"] == provisioned["dashboard_id"]
    assert again["charts"] == provisioned["charts"]
    assert set(again["charts"]) == CHARTS
    superset = login(test_model)
    assert len(superset.find("dashboard", "dashboard_title", "AI tweets")) == 1
    assert len(superset.find("database", "database_name", "streamingdb")) == 1
    for name in DATASETS:
        assert len(superset.find("dataset", "table_name", name)) == 1, name
    # The label counts and model quality datasets and charts replaced the old ones in place.
    for kind, column, old in (("dataset", "table_name", "dashboard_label_counts"),
                              ("dataset", "table_name", "model_metrics"),
                              ("chart", "slice_name", "Champion model metrics")):
        assert not superset.find(kind, column, old), f"the old {kind} {old!r} is still there"


def test_every_chart_query_returns_rows(test_model, seeded):
    data = chart_data(test_model)
    print(f"\nrows per chart: { {chart: len(rows) for chart, rows in data.items()} }")
    assert set(data) == CHARTS
    for chart, rows in data.items():
        assert rows, f"chart {chart!r} returned no rows"
    # Label counts: the seeded version's weak and gold labels summed over the splits.
    counts = {(row["label_source"], row["label"]): row["tweets"] for row in data[LABEL_COUNTS]
              if row["dataset_version"] == seeded["version"]}
    expected: dict[tuple[str, str], int] = {}
    for _, source, label, tweets in SEEDED_COUNTS:
        expected[source, label] = expected.get((source, label), 0) + tweets
    assert counts == expected
    # Model quality: MODEL_NAME's versions only (here the test model's; not the newer "-other"), newest first.
    quality = data[MODEL_QUALITY]
    assert [row["model_version"] for row in quality] == ["2", "1"]
    assert quality[0]["judged_in_words"] == "on gold labels of 300 test tweets"
    assert (quality[0]["gold_f1"], quality[0]["weak_f1"], quality[0]["train_gold"]) == (0.853, 0.801, 250)
    # Learning curve: the newest run (the seeded one), one row per gold label count, one column per strategy.
    curve = data[LEARNING_CURVE]
    assert [row["gold_labels"] for row in curve] == [n * GOLD_PER_ROUND for n in range(4)]
    assert [row["uncertainty"] for row in curve] == pytest.approx(SEEDED_CURVE["uncertainty"])
    assert [row["random"] for row in curve] == pytest.approx(SEEDED_CURVE["random"])
    assert [row["weak labels (LFs + LabelModel)"] for row in curve] == pytest.approx([SEEDED_WEAK] * 4)
    assert [row["bar: weak labels + 0.05"] for row in curve] == pytest.approx([SEEDED_WEAK + 0.05] * 4)
    # Retweet decisions: who decided each, in words; the seeded ones among the latest.
    by = {(row["action"], row["reviewed_by"]) for row in data[DECISIONS]}
    assert {("would_retweet", "(automatic)"), ("rejected", "dana"), ("expired", "(nobody)")} <= by
    latest = {row["text"]: (row["action"], row["reviewed_by"], row["reason"]) for row in data[LATEST_DECISIONS]}
    seeded_text = "Fine-tuning a small LLM, notes 1: https://example-ai-1.org/post/1"
    assert latest.get(seeded_text) == ("rejected", "dana", "rejected by dana")
    # Shadow scoring: a disagreement rate per minute, and the seeded disagreements with both probabilities.
    rates = [row["disagreement_rate"] for row in data[SHADOW_RATE]]
    assert rates and all(0 <= rate <= 1 for rate in rates) and any(rate > 0 for rate in rates)
    shown = {row["text"]: (row["champion_probability"], row["challenger_probability"])
             for row in data[SHADOW_EXAMPLES] if row["challenger_version"] == "test-challenger"}
    spot = [(row["labeled"], row["found_ai"], row["precision"], row["low"], row["high"])
            for row in data[SPOT_CHECK] if row["model_version"] == test_model.model_name]
    assert spot == [(40, 34, 0.85, 0.709, 0.929)]
    assert shown == {"Fine-tuning a small LLM, notes 0: https://example-ai-0.org/post/0": pytest.approx((0.2, 0.9)),
                     seeded_text: pytest.approx((0.2, 0.9))}


def test_screenshot_of_the_dashboard(settings, provisioned, seeded, tmp_path):
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium(tmp_path / "chromium", 1600, 2400) as driver:
        wait = WebDriverWait(driver, 90)
        driver.get(f"{settings.superset_url}/login/")
        wait.until(lambda d: d.find_elements(By.ID, "username"))
        driver.find_element(By.ID, "username").send_keys("admin")
        driver.find_element(By.ID, "password").send_keys(environment(ROOT / ".env")["SUPERSET_ADMIN_PASSWORD"])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form button").click()
        wait.until(lambda d: "/login" not in d.current_url)
        driver.get(provisioned["url"])
        # Every chart drawn (a canvas or table rows; every source has rows), no spinner, no error.
        wait.until(lambda d: d.execute_script("""
            const holders = [...document.querySelectorAll('[data-test="chart-grid-component"]')];
            return holders.length === arguments[0] && !document.querySelector('.loading') &&
                   holders.every(h => h.querySelector('canvas, tbody tr'));""", len(CHARTS)))
        errors = driver.find_elements(By.CSS_SELECTOR, '[data-test="chart-grid-component"] .ant-alert-error')
        assert not errors, f"chart errors: {[e.text for e in errors]}"
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "on gold labels of 300 test tweets" in text, "the model quality table shows how versions were judged"
        for _ in range(5):  # a taller window can make the page taller: until every chart fits
            height = driver.execute_script("""
                const bottoms = [...document.querySelectorAll('[data-test="chart-grid-component"]')]
                    .map(h => h.getBoundingClientRect().bottom + window.scrollY);
                return Math.ceil(Math.max(document.documentElement.scrollHeight, ...bottoms) + 40);""")
            inner, outer = driver.execute_script("return [window.innerHeight, window.outerHeight]")
            if inner >= height:
                break
            driver.set_window_size(1600, height + outer - inner)  # the window's own frame is not page
            time.sleep(2)  # let ECharts finish its animations after the resize
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
    with Image.open(SCREENSHOT) as image:
        gray = image.convert("L")
        assert image.size[0] >= 1500
        assert max(ImageStat.Stat(gray).stddev) > 20, "the screenshot is blank"
        assert len(gray.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_superset_reads_streamingdb_as_a_role_the_database_refuses_dml(settings, provisioned, seeded):
    """Superset's connection is the read-only role: a SQL Lab user (or anyone who gets the
    connection) can read the tables but PostgreSQL itself refuses DELETE, UPDATE and DDL."""
    import psycopg

    from stackbase.settings import STREAMINGDB_READER

    superset = login(settings)
    database = superset.find("database", "database_name", "streamingdb")[0]
    uri = superset.get(f"/api/v1/database/{database['id']}/connection")["result"]["sqlalchemy_uri"]
    assert f"//{STREAMINGDB_READER}:" in uri, uri
    reader = psycopg.conninfo.make_conninfo(settings.streamingdb_conninfo, user=STREAMINGDB_READER,
                                            password=settings.streamingdb_reader_password)
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ai_tweets").fetchone()[0] > 0
        for statement in ("DELETE FROM ai_tweets", "UPDATE classify_batches SET rows_in = 0",
                          "DROP TABLE learning_curve", "CREATE TABLE stolen (x text)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
