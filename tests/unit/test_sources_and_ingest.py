"""Replay source, pacing and the ingest job's message validation (no services needed)."""

from __future__ import annotations

import json
import time

import pytest

from ai_tweets.ingest import raw_row
from ai_tweets.schema import MalformedInput, Tweet
from ai_tweets.sources import paced, replay_file
from ai_tweets.stream import Message, parse_messages
from stackbase.settings import SettingsError

V2_ITEM = {"data": {"id": "1300000000000000001", "text": "New paper on transformers https://t.co/abc",
                    "created_at": "2020-04-05T10:00:00.000Z", "author_id": "42", "lang": "en",
                    "entities": {"urls": [{"url": "https://t.co/abc",
                                           "expanded_url": "https://arxiv.org/abs/1"}]}},
           "includes": {"users": [{"id": "42", "username": "ml_researcher", "name": "ML R"}]}}


def _write(tmp_path, lines: list[str]):
    path = tmp_path / "tweets.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_reads_text_v2_and_keeps_bad_lines_with_reasons(tmp_path):
    path = _write(tmp_path, [json.dumps({"text": "deep learning is fun #AI"}), json.dumps(V2_ITEM),
                             "{broken", json.dumps({"text": ""}), ""])
    items = list(replay_file(path))
    assert len(items) == 4, "blank lines are skipped, nothing else"
    text_tweet, v2_tweet, bad_json, empty = items
    assert isinstance(text_tweet, Tweet) and text_tweet.hashtags == ("AI",) and text_tweet.source == "text"
    assert v2_tweet.urls[0].expanded_url == "https://arxiv.org/abs/1"
    assert v2_tweet.author_handle == "ml_researcher"
    assert isinstance(bad_json, MalformedInput) and bad_json.raw == b"{broken"
    assert "tweets.jsonl:3: invalid JSON" in bad_json.reason
    assert isinstance(empty, MalformedInput) and "empty text" in empty.reason


def test_replay_gives_text_lines_stable_ids_so_replays_add_nothing(tmp_path):
    path = _write(tmp_path, [json.dumps({"text": "same text"}), json.dumps({"text": "same text"})])
    first = [t.id for t in replay_file(path)]
    second = [t.id for t in replay_file(path)]
    assert first == second
    assert first[0] != first[1], "two lines with the same text are two tweets"
    assert all(0 < i < 2**63 for i in first)


def test_replay_loops_until_stopped(tmp_path):
    import threading

    path = _write(tmp_path, [json.dumps({"text": "one"}), json.dumps({"text": "two"})])
    stop = threading.Event()
    seen = []
    for item in replay_file(path, loop=True, stop=stop):
        seen.append(item.text)
        if len(seen) == 5:
            stop.set()
    assert seen[:5] == ["one", "two", "one", "two", "one"]


def test_missing_replay_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        list(replay_file(tmp_path / "nope.jsonl"))


def test_paced_holds_the_rate():
    began = time.monotonic()
    assert list(paced(range(21), rate=100)) == list(range(21))
    assert time.monotonic() - began >= 0.19


def test_ingest_rows_keep_good_messages_and_quarantine_the_rest():
    good_value = json.dumps({"id": "5", "text": "hello", "created_at": "2020-01-01T00:00:00Z"}).encode()
    values = [good_value, b"nope", None, json.dumps({"id": "6", "text": None, "created_at": "x"}).encode(),
              good_value]
    messages = [Message("t", partition, offset, key, value) for partition, offset, key, value in
                zip([0, 1, 1, 2, 3], [10, 11, 12, 13, 14], [b"5", None, b"k", b"6", b"5"], values, strict=True)]
    rows, bad = parse_messages(messages, raw_row)
    assert list(rows) == [5], "a tweet repeated within a batch is written once"
    row = rows[5]
    assert (row[0], row[1], row[-3], row[-2], row[-1]) == (5, "hello", good_value.decode(), 0, 10)
    assert [(m.partition, m.offset, m.key) for m in bad] == [(1, 11, None), (1, 12, b"k"), (2, 13, b"6")]
    assert [m.reason.split(":")[0] for m in bad] == ["invalid JSON", "empty message", "missing text"]
    assert bad[0].value == b"nope"
