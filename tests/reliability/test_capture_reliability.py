"""Capture through a Kafka broker restart, with 1% malformed messages in the stream: the
continuous ingest job keeps running, every valid tweet lands exactly once and every
malformed message is quarantined with its reason."""

from __future__ import annotations

import time

from capture_helpers import MALFORMED, Isolated
from reliability_helpers import restart_while_producing, sized, start_ingest, wait_until

from ai_tweets.generator import generate
from ai_tweets.schema import MalformedInput, Tweet, normalize


def _stream(count: int, seed: int, rate: float) -> tuple[list[Tweet | MalformedInput], set[int], int]:
    """`count` generated tweets with one malformed message after every 99th, at `rate` a second."""
    items: list[Tweet | MalformedInput] = []
    ids: set[int] = set()
    for number, generated in enumerate(generate(count, seed=seed), start=1):
        tweet = normalize(generated.payload)
        items.append(tweet)
        ids.add(tweet.id)
        if number % 99 == 0:
            raw, reason = MALFORMED[(number // 99) % len(MALFORMED)]
            items.append(MalformedInput(raw, reason))
    return items, ids, sum(isinstance(item, MalformedInput) for item in items)


def test_kafka_broker_restart_during_capture_loses_nothing(disruptive, tmp_path, figures):
    count = sized(short=20_000, long=100_000)
    rate = count / 40  # the stream lasts about 40 s, the restart lands in its middle
    iso = Isolated.create(tmp_path)
    items, ids, malformed = _stream(count, seed=51, rate=rate)
    log = tmp_path / "ingest.log"
    job = start_ingest(iso, log)
    try:
        restart = restart_while_producing(iso, items, rate, "kafka", down_seconds=5)
        report = restart.report
        assert report.failed == 0 and report.delivered == len(items), report.line()
        assert restart.rows_before < len(ids), "the broker restart must land while tweets are still arriving"

        caught_up_began = time.monotonic()
        wait_until(lambda: iso.counts(iso.raw_table) == (len(ids), len(ids)), 600,
                   f"{len(ids):,} distinct tweets in {iso.raw_table}")
        caught_up = time.monotonic() - caught_up_began
        quarantined = iso.query("SELECT reason FROM ingest_quarantine WHERE target_table = %s", (iso.raw_table,))
        assert len(quarantined) == malformed and all(reason for (reason,) in quarantined)
        stored = {row[0] for row in iso.query("SELECT tweet_id FROM {t}", t=iso.raw_table)}
        assert stored == ids, f"missing {len(ids - stored)}, unexpected {len(stored - ids)}"
        assert job.poll() is None, f"the ingest job must keep running through the restart:\n{log.read_text()[-3000:]}"
    finally:
        job.terminate()
        job.wait(60)
    figures(f"{len(items):,} messages ({malformed} malformed) at {rate:,.0f}/s; Kafka restarted after "
            f"{restart.rows_before:,} rows (down+up {restart.seconds:.0f} s); producer delivered "
            f"{report.delivered:,}, failed {report.failed}; raw rows {len(ids):,} = distinct = expected, 0 missing, "
            f"{malformed} quarantined with reasons; caught up {caught_up:.0f} s after the producer ended; "
            "ingest job still running")
