"""The Superset dashboard on the real stack: provisioned from superset/dashboard/ idempotently,
every chart's query returns rows, and a headless-Chromium screenshot shows the charts."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from browser_helpers import headless_chromium
from capture_helpers import ROOT

from ai_tweets.classify import AI_TWEETS_TABLE, BATCHES_TABLE, TWEET_URLS_TABLE, ensure_tables
from ai_tweets.dashboard import (
    LABEL_COUNTS_VIEW,
    MODEL_METRICS_TABLE,
    chart_rows,
    login,
    provision_dashboard,
)
from ai_tweets.settings import environment
from ai_tweets.storage import connect, copy_upsert, count_rows

pytestmark = pytest.mark.usefixtures("local_stack")

SCREENSHOT = ROOT / ".local" / "screenshots" / "superset_dashboard.png"
CHARTS = {"AI tweets per minute", "Share of AI tweets", "Top domains", "Top URLs", "Latest AI tweets",
          "Model version in use", "Batch latency", "Label counts: weak vs gold", "Champion model metrics"}
# Charts of what earlier stages write (splits of DATASET_VERSION, the MLflow champion): they
# must show rows exactly when their source has some; this test does not invent them.
PIPELINE_SOURCES = {"Label counts: weak vs gold": LABEL_COUNTS_VIEW, "Champion model metrics": MODEL_METRICS_TABLE}


@pytest.fixture(scope="module")
def provisioned(settings):
    return provision_dashboard(settings)


@pytest.fixture(scope="module")
def seeded(settings, provisioned):
    """A few AI tweets with links and classify batches, under random ids; removed afterwards."""
    now = datetime.now(UTC)
    ids = random.sample(range(9_000_000_000_000_000_000, 9_200_000_000_000_000_000), 6)
    query_name = f"test_dashboard_{uuid.uuid4().hex[:8]}"
    tweets = [(tweet_id, f"Fine-tuning a small LLM, notes {n}: https://example-ai-{n % 3}.org/post/{n}",
               "42", f"dashboard_test_{n}", now - timedelta(minutes=n), 0.8 + n / 100, settings.model_name,
               "test", None, None, None) for n, tweet_id in enumerate(ids)]
    links = [(tweet_id, f"https://example-ai-{n % 3}.org/post/{n}", f"https://t.co/x{n}",
              f"https://example-ai-{n % 3}.org/post/{n}", f"example-ai-{n % 3}.org", False, None)
             for n, tweet_id in enumerate(ids)]
    batches = [(query_name, n, 100, 20 + n, 0, 1, ["test"], 400 + 50 * n, 900) for n in range(3)]
    with connect(settings) as conn:
        ensure_tables(conn)
        copy_upsert(conn, AI_TWEETS_TABLE, ("tweet_id", "text", "author_id", "author_handle", "created_at",
                                            "ai_probability", "model_name", "model_version", "produced_at",
                                            "kafka_partition", "kafka_offset"), tweets, ("tweet_id",))
        copy_upsert(conn, TWEET_URLS_TABLE, ("tweet_id", "canonical_url", "url", "expanded_url", "domain",
                                             "is_twitter", "twitter_kind"), links, ("tweet_id", "canonical_url"))
        copy_upsert(conn, BATCHES_TABLE, ("query_name", "batch_id", "rows_in", "ai_rows", "quarantined",
                                          "requests", "model_versions", "latency_ms", "max_produce_to_row_ms"),
                    batches, ("query_name", "batch_id"))
    yield ids
    with connect(settings) as conn:
        conn.execute("DELETE FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,))  # tweet_urls cascade
        conn.execute("DELETE FROM classify_batches WHERE query_name = %s", (query_name,))


def test_provisioning_is_idempotent(settings, provisioned):
    again = provision_dashboard(settings)
    assert again["dashboard_id"] == provisioned["dashboard_id"]
    assert again["charts"] == provisioned["charts"]
    assert set(again["charts"]) == CHARTS
    superset = login(settings)
    assert len(superset.find("dashboard", "dashboard_title", "AI tweets")) == 1
    assert len(superset.find("database", "database_name", "streamingdb")) == 1
    for name in ("ai_tweets", "latest_ai_tweets", LABEL_COUNTS_VIEW):
        assert len(superset.find("dataset", "table_name", name)) == 1


def test_every_chart_query_returns_rows(settings, seeded):
    rows = chart_rows(settings)
    print(f"\nrows per chart: {rows}")
    assert set(rows) == CHARTS
    with connect(settings) as conn:
        produced = {chart: count_rows(conn, source) > 0 for chart, source in PIPELINE_SOURCES.items()}
    for chart, count in rows.items():
        if chart in PIPELINE_SOURCES and not produced[chart]:
            assert count == 0, f"{chart}: rows although {PIPELINE_SOURCES[chart]} is empty"
        else:
            assert count > 0, f"chart {chart!r} returned no rows"


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
        # Every chart finished: drawn (a canvas or table rows), or "No results" where its pipeline
        # source is still empty (e.g. no champion yet on a fresh stack); no spinner, no error.
        with connect(settings) as conn:
            empty = sum(count_rows(conn, source) == 0 for source in PIPELINE_SOURCES.values())
        wait.until(lambda d: d.execute_script("""
            const holders = [...document.querySelectorAll('[data-test="chart-grid-component"]')];
            const drawn = holders.filter(h => h.querySelector('canvas, tbody tr')).length;
            const done = holders.every(h => h.querySelector('canvas, tbody tr') || /No results/i.test(h.innerText));
            return holders.length === arguments[0] && !document.querySelector('.loading') && done &&
                   drawn >= arguments[0] - arguments[1];""", len(CHARTS), empty))
        errors = driver.find_elements(By.CSS_SELECTOR, '[data-test="chart-grid-component"] .ant-alert-error')
        assert not errors, f"chart errors: {[e.text for e in errors]}"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1600, max(height, 1200))
        time.sleep(2)  # let ECharts finish its animations after the resize
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
    with Image.open(SCREENSHOT) as image:
        gray = image.convert("L")
        assert image.size[0] >= 1500
        assert max(ImageStat.Stat(gray).stddev) > 20, "the screenshot is blank"
        assert len(gray.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
