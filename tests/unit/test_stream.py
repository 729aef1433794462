"""The stream skeleton's pure parts: per-message isolation of the parse → row path (fuzzed with
hypothesis), the storable-text and date rules, the checkpoint and data-loss arithmetic."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hostile import MESSAGES, hostile_messages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_tweets.classify import to_item
from ai_tweets.ingest import raw_row
from ai_tweets.schema import MIN_CREATED_AT, MalformedTweet, parse_message
from ai_tweets.stream import (
    LostRange,
    Message,
    checkpoint_offsets,
    lost_ranges,
    parse_messages,
    waiting_messages,
)


def messages(values: list[bytes | None]) -> list[Message]:
    return [Message("t", index % 4, index, None, value) for index, value in enumerate(values)]


def storable(value: object) -> bool:
    """What PostgreSQL accepts in a text column: no NUL, valid UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, list):
        return all(storable(item) for item in value)
    return True


def check_batch(values: list[bytes | None], convert) -> None:
    batch = messages(values)
    items, bad = parse_messages(batch, convert)
    quarantined = {(m.partition, m.offset) for m in bad}
    assert len(quarantined) == len(bad), "each message is quarantined at most once"
    parsed_ids = set()
    for message in batch:
        if (message.partition, message.offset) in quarantined:
            continue
        parsed_ids.add(parse_message(message.value).id)  # every other message is a valid tweet
    assert set(items) == parsed_ids
    for reason in (m.reason for m in bad):
        assert reason and storable(reason) and len(reason) <= 500
    return items


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(MESSAGES, max_size=8))
def test_any_batch_of_messages_becomes_storable_raw_rows_or_quarantine(values):
    for row in check_batch(values, raw_row).values():
        assert all(storable(value) for value in row[:11]), row
        assert MIN_CREATED_AT <= row[2] < datetime(2100, 1, 1, tzinfo=UTC)
        json.loads(row[10])  # the urls column's JSON


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(MESSAGES, max_size=8))
def test_any_batch_of_messages_becomes_classify_items_or_quarantine(values):
    for item in check_batch(values, to_item).values():
        assert storable(item.tweet.text) and storable(item.tweet.author_handle)
        for url in item.urls:
            assert all(storable(v) for v in (url.canonical_url, url.url, url.expanded_url, url.domain))


def test_a_converter_that_raises_anything_quarantines_only_that_message():
    good = [json.dumps({"id": str(i), "text": f"t{i}", "created_at": "2020-01-01T00:00:00Z"}).encode()
            for i in range(1, 4)]

    def convert(tweet, message):
        if tweet.id == 2:
            raise OverflowError("date value out of range")
        return tweet.id

    items, bad = parse_messages(messages(good), convert)
    assert list(items) == [1, 3]
    assert [(m.offset, m.reason) for m in bad] == [(1, "OverflowError: date value out of range")]
    assert bad[0].value == good[1]


def test_the_issue_s_two_messages_are_quarantined_with_their_reasons():
    nul = json.dumps({"id": "1", "text": "AI\u0000 models", "created_at": "2020-01-01T00:00:00Z"}).encode()
    far = json.dumps({"id": "2", "text": "AI models", "created_at": "9999-12-31T23:59:59-05:00"}).encode()
    for convert in (raw_row, to_item):
        items, bad = parse_messages(messages([nul, far]), convert)
        assert not items
        assert [m.reason.split(":")[0] for m in bad] == [
            "text contains a NUL character (U+0000), which PostgreSQL text cannot store", "created_at out of range"]


@pytest.mark.parametrize("value", ["2006-03-20T23:59:59Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"])
def test_dates_outside_the_documented_range_are_malformed(value):
    with pytest.raises(MalformedTweet, match="created_at out of range"):
        parse_message(json.dumps({"id": "1", "text": "x", "created_at": value}))


def test_nul_in_the_raw_payload_only_is_kept_escaped():
    """JSON's \\u0000 escape in a field that is not stored as a column is fine: the payload keeps it."""
    value = json.dumps({"id": "1", "text": "fine", "created_at": "2020-01-01T00:00:00Z",
                        "raw": {"bio": "a\u0000b"}}).encode()
    items, bad = parse_messages(messages([value]), raw_row)
    assert not bad and "\\u0000" in items[1][11]


def test_every_hostile_message_of_the_real_stack_mix_is_quarantined_with_its_reason():
    hostile = hostile_messages(140, seed=5, first_id=10**15)
    items, bad = parse_messages(messages([value for _, value in hostile]), raw_row)
    assert not items and len(bad) == len(hostile)
    for (expected, _), message in zip(hostile, bad, strict=True):
        assert message.reason.startswith(expected), (expected, message.reason)


def test_checkpoint_offsets_are_those_of_the_last_committed_batch(tmp_path):
    (tmp_path / "offsets").mkdir()
    (tmp_path / "commits").mkdir()
    assert checkpoint_offsets(tmp_path, "tweets") is None
    for batch, offsets in enumerate([{"0": 10, "1": 5}, {"0": 20, "1": 9}, {"0": 30, "1": 12}]):
        lines = ["v1", '{"batchWatermarkMs":0}', json.dumps({"tweets": offsets})]
        (tmp_path / "offsets" / str(batch)).write_text("\n".join(lines))
    (tmp_path / "commits" / "0").write_text("v1\n{}")
    (tmp_path / "commits" / "1").write_text("v1\n{}")
    assert checkpoint_offsets(tmp_path, "tweets") == {0: 20, 1: 9}  # batch 2 was planned, not committed


def test_lost_ranges_and_waiting_messages():
    marks = {0: (100, 500), 1: (0, 40), 2: (7, 7)}
    assert lost_ranges({0: 60, 1: 40, 2: 7}, marks, "tweets") == [LostRange("tweets", 0, 60, 99)]
    assert str(LostRange("tweets", 0, 60, 99)) == "tweets partition 0: offsets 60–99 (40 messages)"
    assert lost_ranges(None, marks, "tweets") == []
    assert waiting_messages({0: 60, 1: 40, 2: 7}, marks) == 400
    assert waiting_messages(None, marks) == 440
