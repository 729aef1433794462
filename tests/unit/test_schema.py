"""The normalized tweet schema: v1.1 and v2 payloads, text lines, the project's own form, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ai_tweets.schema import (
    MAX_MESSAGE_BYTES,
    MAX_TEXT_CHARS,
    MalformedTweet,
    Tweet,
    from_dict,
    from_text,
    normalize,
    parse_message,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"
REAL_V1 = SHARED_DATA / "tweets_2020_v1_full.jsonl"


def fixture(name: str) -> dict[int, dict[str, Any]]:
    rows = [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]
    return {int(row["id_str"] if "id_str" in row else row["data"]["id"]): row for row in rows}


V1 = fixture("tweets_v1.jsonl")
V2 = fixture("tweets_v2.jsonl")


def expanded(tweet: Tweet) -> dict[str, str | None]:
    return {u.url: u.expanded_url for u in tweet.urls}


# --- v1.1 ------------------------------------------------------------------------------------------


def test_v1_plain_status():
    tweet = normalize(V1[1246800000000000001])
    assert tweet.source == "v1.1"
    assert tweet.id == 1246800000000000001
    assert tweet.created_at == datetime(2020, 4, 5, 10, 0, 1, tzinfo=UTC)
    assert (tweet.author_id, tweet.author_handle, tweet.lang) == ("41001", "calib_notes", "en")
    assert not tweet.is_retweet and not tweet.is_reply
    assert tweet.hashtags == ("MachineLearning",)
    assert expanded(tweet) == {"https://t.co/Ab3dEf9hIj": "https://example-ml-blog.org/posts/"
                                                          "calibrating-text-classifiers/?utm_source=twitter"}


def test_v1_truncated_status_gives_extended_full_text_and_its_entities():
    payload = V1[1246800000000000002]
    assert payload["truncated"] and payload["text"].endswith("https://t.co/WebSt4tus1")
    tweet = normalize(payload)
    assert tweet.text == payload["extended_tweet"]["full_text"]
    assert "…" not in tweet.text and len(tweet.text) > 140
    assert tweet.hashtags == ("DeepLearning", "NLP")  # from extended_tweet.entities, absent outside
    # the "read more" link of the cut text is not one of the tweet's links; the media link is, expanded
    assert expanded(tweet) == {
        "https://t.co/Kq2WxYz7Pb": "https://github.com/example-org/label-smoothing-notebook",
        "https://t.co/Ph0toLnk12": "https://twitter.com/readinggroup_ml/status/1246800000000000002/photo/1",
    }


def test_v1_retweet_of_truncated_tweet_gives_full_original_text():
    payload = V1[1246800000000000003]
    assert payload["text"].endswith("…") and len(payload["text"]) == 140
    tweet = normalize(payload)
    original = payload["retweeted_status"]["extended_tweet"]["full_text"]
    assert tweet.text == "RT @readinggroup_ml: " + original
    assert tweet.is_retweet and not tweet.is_reply
    assert tweet.id == 1246800000000000003  # the retweet's own id and author, not the original's
    assert tweet.author_handle == "sam_reads"
    assert "https://t.co/Ph0toLnk12" in expanded(tweet)
    assert tweet.hashtags == ("DeepLearning", "NLP")


def test_v1_reply_flag_and_mentions():
    tweet = normalize(V1[1246800000000000004])
    assert tweet.is_reply and not tweet.is_retweet
    assert tweet.mentions == ("calib_notes",)
    not_reply = dict(V1[1246800000000000004], in_reply_to_status_id=None, in_reply_to_status_id_str=None)
    assert not normalize(not_reply).is_reply


def test_v1_without_entities_extracts_them_from_text():
    tweet = normalize(V1[1246800000000000005])
    assert tweet.hashtags == ("baking",)
    assert [u.url for u in tweet.urls] == ["https://t.co/Rec1peXyz0"]
    assert tweet.urls[0].expanded_url is None  # nothing to expand it with


def test_v1_numeric_id_without_id_str():
    payload = {k: v for k, v in V1[1246800000000000001].items() if k != "id_str"}
    assert normalize(payload).id == 1246800000000000001


# --- v2 --------------------------------------------------------------------------------------------


def test_v2_prefers_unwound_url():
    tweet = normalize(V2[1246800000000000011])
    assert tweet.source == "v2"
    assert tweet.created_at == datetime(2020, 4, 5, 10, 10, tzinfo=UTC)
    assert (tweet.author_id, tweet.author_handle) == ("42001", "speech_lab_x")
    assert expanded(tweet) == {"https://t.co/Sp33chDat1":
                               "https://example-ml-blog.org/posts/speech-datasets-low-resource/"}
    assert tweet.urls[0].display_url == "bit.ly/3spEEch"
    assert tweet.hashtags == ("NLP", "DataScience")


def test_v2_note_tweet_gives_long_text_and_its_entities():
    payload = V2[1246800000000000012]
    assert payload["data"]["text"].endswith("…")
    tweet = normalize(payload)
    assert tweet.text == payload["data"]["note_tweet"]["text"]
    assert len(tweet.text) > 280 and not tweet.text.endswith("…")
    assert expanded(tweet) == {"https://t.co/L0ngP0st42": "https://example-ml-blog.org/posts/seed-variance/"}
    assert tweet.hashtags == ("MachineLearning", "MLOps")


def test_v2_retweet_takes_full_text_from_includes():
    payload = V2[1246800000000000013]
    assert payload["data"]["text"].endswith("…")
    tweet = normalize(payload)
    assert tweet.text == "RT @speech_lab_x: " + V2[1246800000000000011]["data"]["text"]
    assert tweet.is_retweet and not tweet.is_reply
    assert tweet.author_handle == "wen_listens"
    assert "https://t.co/Sp33chDat1" in expanded(tweet)


def test_v2_retweet_without_includes_is_still_a_retweet():
    payload = {"data": {k: v for k, v in V2[1246800000000000013]["data"].items()}}
    tweet = normalize(payload)
    assert tweet.is_retweet
    assert tweet.text == payload["data"]["text"]  # the cut text is all there is


def test_v2_reply_and_media_link():
    reply = normalize(V2[1246800000000000014])
    assert reply.is_reply and reply.mentions == ("eval_matters",)
    photo = normalize(V2[1246800000000000015])
    assert not photo.is_reply
    assert expanded(photo) == {"https://t.co/GamePic001":
                               "https://twitter.com/gamer_gus/status/1246800000000000015/photo/1"}


def test_v2_without_data_object():
    with pytest.raises(MalformedTweet, match="without a `data` object"):
        normalize({"data": "not an object"})


# --- text lines and the project's own form ---------------------------------------------------------


def test_from_text_extracts_entities():
    when = datetime(2020, 4, 5, tzinfo=UTC)
    tweet = from_text("RT @ml_weekly: Fine-tuning tips https://t.co/AbCdEfGhIj, #NLP #AI and ＃DL", 7, when)
    assert tweet.source == "text" and tweet.id == 7 and tweet.created_at == when
    assert tweet.is_retweet
    assert tweet.mentions == ("ml_weekly",)
    assert tweet.hashtags == ("NLP", "AI", "DL")
    assert [u.url for u in tweet.urls] == ["https://t.co/AbCdEfGhIj"]  # trailing comma stripped
    assert not from_text("Free DL link in bio", 8, when).is_retweet


def test_from_text_does_not_take_email_or_anchor_for_entities():
    when = datetime(2020, 1, 1, tzinfo=UTC)
    tweet = from_text("mail me at sam@example.com about R&#39;s page#anchor", 9, when)
    assert tweet.mentions == () and tweet.hashtags == ()


@pytest.mark.parametrize("payload", [*V1.values(), *V2.values()], ids=[*map(str, V1), *map(str, V2)])
def test_to_dict_round_trip(payload):
    tweet = normalize(payload)
    data = tweet.to_dict()
    assert data["id"] == str(tweet.id)  # a string: int64 survives JavaScript and Spark JSON readers
    assert data["created_at"].endswith("Z")
    assert data == json.loads(tweet.to_json())  # already plain JSON types
    assert from_dict(data) == tweet
    again = from_dict(json.loads(tweet.to_json()))
    assert again == tweet
    assert again.raw == tweet.raw
    assert normalize(json.loads(tweet.to_json())) == tweet  # the serialized form is itself a payload


# --- malformed input --------------------------------------------------------------------------------

GOOD = {"id": "1246800000000000099", "text": "a tweet", "created_at": "2020-04-05T10:00:00Z"}


def message(**changes: Any) -> bytes:
    data = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return json.dumps(data).encode()


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty message"),
    (b"", "invalid JSON"),
    (b"{not json", "invalid JSON"),
    (b'{"id": "1", "text": "\xff\xfe"}', "invalid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[1, 2]", "not a JSON object but list"),
    (b'"just a string"', "not a JSON object but str"),
    (message(id=...), "missing id"),
    (message(id=None), "missing id"),
    (message(id=1.5e18), "id is not a whole number"),
    (message(id=[1, 2]), "id is not a whole number"),
    (message(id=True), "missing id"),
    (message(id="12a"), "id is not a whole number"),
    (message(id="0"), "id out of range"),
    (message(id=str(2**63)), "id out of range"),
    (message(text=...), "missing text"),
    (message(text=42), "text is not a string but int"),
    (message(text="   "), "empty text"),
    (message(text="x" * (MAX_TEXT_CHARS + 1)), "text too long"),
    (message(created_at=...), "missing created_at"),
    (message(created_at="yesterday"), "created_at is not a date"),
    (message(created_at=1586080800), "created_at is not a string"),
    (message(urls="https://t.co/x"), "urls is not a list"),
    (message(hashtags=[1, 2]), "hashtags is not a list of strings"),
    (message(author_handle=5), "author_handle is not a string"),
    (message(raw=[1]), "raw is not an object"),
    (b"x" * (MAX_MESSAGE_BYTES + 1), "message too large"),
    (b'{"id_str": "1", "text": "hi", "created_at": "Sun Apr 05 10:46:44 +0000 2020", "user": "bob"}',
     "unexpected structure"),
    (b'{"data": {"id": "1", "text": "hi", "created_at": "2020-04-05T10:00:00Z"}, "includes": [1]}',
     "unexpected structure"),
    (b'{"data": {"id": "1", "text": "hi", "created_at": "2020-04-05T10:00:00Z", "note_tweet": "x"}}',
     "unexpected structure"),
])
def test_parse_message_rejects_with_reason(value, reason):
    with pytest.raises(MalformedTweet) as caught:
        parse_message(value)
    assert reason in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_parse_message_accepts_all_three_forms():
    assert parse_message(message()).source == "unknown"
    assert parse_message(message().decode()).id == 1246800000000000099
    v1 = parse_message(json.dumps(V1[1246800000000000002]).encode())
    v2 = parse_message(json.dumps(V2[1246800000000000012]))
    assert (v1.source, v2.source) == ("v1.1", "v2")


def test_non_string_entity_values_are_dropped():
    payload = {**V1[1246800000000000001], "entities": {"hashtags": [{"text": 5}, {"text": "ok"}, "junk"]}}
    tweet = normalize(payload)
    assert tweet.hashtags == ("ok",)
    assert from_dict(tweet.to_dict()) == tweet


# --- the real 2020 sample ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_v1() -> list[dict[str, Any]]:
    if not REAL_V1.exists():
        pytest.skip(f"real sample {REAL_V1} is absent (it lives beside the project, not in a fresh clone)")
    return [json.loads(line) for line in REAL_V1.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_real_v1_sample_all_parse(real_v1):
    tweets = [normalize(payload) for payload in real_v1]
    assert len(tweets) == 1000
    assert len({t.id for t in tweets}) == 1000
    assert all(t.source == "v1.1" and t.text.strip() for t in tweets)


def test_real_v1_sample_full_texts_and_links(real_v1):
    checked_extended = checked_links = 0
    for payload in real_v1:
        tweet = normalize(payload)
        status = payload.get("retweeted_status") or payload
        if "extended_tweet" in status:
            checked_extended += 1
            assert not tweet.text.endswith("…"), payload["id_str"]
            assert tweet.text.endswith(status["extended_tweet"]["full_text"])
        # the links the full text carries (the cut text's own "read more" link excepted) are all expanded
        full_entities = (status.get("extended_tweet") or status)["entities"]
        links = [u["url"] for u in full_entities.get("urls", []) + full_entities.get("media", [])]
        if links:
            checked_links += 1
            assert set(expanded(tweet)) == set(links), payload["id_str"]
        assert all(u.expanded_url and not u.expanded_url.startswith("https://t.co/") for u in tweet.urls)
        if payload["entities"]["urls"]:
            assert all(u.expanded_url for u in tweet.urls)
        assert tweet.is_retweet == ("retweeted_status" in payload)
        assert tweet.text.startswith("RT @") == ("retweeted_status" in payload), payload["id_str"]
    assert checked_extended > 400 and checked_links > 100  # the sample really exercises both paths
