"""Hostile Kafka messages, shared by the fuzz tests (hypothesis strategies) and the real-stack
test that mixes them into a stream: arbitrary JSON values, unicode (NUL, lone surrogates,
right-to-left marks, emoji), extreme numbers and dates, deep nesting and oversize messages."""

from __future__ import annotations

import json
import random

from hypothesis import strategies as st

from ai_tweets.schema import MAX_MESSAGE_BYTES

# Characters of every category, surrogates included, with the ones that break things weighted up.
NASTY_CHARS = st.one_of(st.characters(codec=None, categories=None),
                        st.sampled_from(["\x00", "\ud800", "\udfff", "\u200f", "\u202e", "\ufeff", "😀", "\U0010ffff",
                                         "\\", '"', "\n", "\u2028"]))
NASTY_TEXT = st.text(NASTY_CHARS, max_size=60)
EXTREME_INTS = st.one_of(st.integers(), st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30]))
NUMBERS = st.one_of(EXTREME_INTS, st.floats(allow_nan=True, allow_infinity=True))
DATES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z",
                     "2006-03-20T23:59:59Z", "2100-01-01T00:00:00Z", "Sun Apr 05 10:46:44 +0000 2020",
                     "Fri Dec 31 23:59:59 -1400 9999", "yesterday", ""]),
    NASTY_TEXT)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, NASTY_TEXT),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(NASTY_TEXT, children, max_size=4)),
    max_leaves=12)


def _dumps(value: object, ascii_only: bool) -> bytes:
    """JSON bytes; lone surrogates become \\uXXXX escapes, or invalid UTF-8 when not ASCII-only."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


TWEETISH = st.fixed_dictionaries(
    {"id": st.one_of(EXTREME_INTS.map(str), EXTREME_INTS, NASTY_TEXT, JSON_VALUES),
     "text": st.one_of(NASTY_TEXT.filter(str.strip), JSON_VALUES),
     "created_at": st.one_of(DATES, JSON_VALUES)},
    optional={"author_handle": st.one_of(NASTY_TEXT, JSON_VALUES), "lang": st.one_of(NASTY_TEXT, JSON_VALUES),
              "hashtags": JSON_VALUES, "mentions": JSON_VALUES, "raw": JSON_VALUES,
              "urls": st.lists(st.fixed_dictionaries({"url": NASTY_TEXT}, optional={
                  "expanded_url": st.one_of(NASTY_TEXT, JSON_VALUES), "display_url": JSON_VALUES}), max_size=3),
              "user": JSON_VALUES, "data": JSON_VALUES, "id_str": JSON_VALUES, "extended_tweet": JSON_VALUES})


def _nested(depth: int, kind: str) -> bytes:
    opening, closing = ("[", "]") if kind == "list" else ('{"a":', "}")
    return (opening * depth + "1" + closing * depth).encode()


MESSAGES = st.one_of(
    st.tuples(TWEETISH, st.booleans()).map(lambda pair: _dumps(*pair)),
    st.tuples(JSON_VALUES, st.booleans()).map(lambda pair: _dumps(*pair)),
    st.binary(max_size=200),
    st.tuples(st.integers(1, 200_000), st.sampled_from(["list", "dict"])).map(lambda pair: _nested(*pair)),
    st.integers(MAX_MESSAGE_BYTES - 100, MAX_MESSAGE_BYTES + 100).map(
        lambda size: json.dumps({"id": "1", "text": "x" * size, "created_at": "2020-01-01T00:00:00Z"}).encode()),
    st.none(),
)


# --- a deterministic mix for the real-stack test -------------------------------------------------

def hostile_messages(count: int, seed: int, first_id: int) -> list[tuple[str, bytes | None]]:
    """`count` messages that must each be quarantined, with the reason expected to start with:
    the issue's two (NUL in the text, a date past year 9999 in UTC) and every other kind."""
    rng = random.Random(seed)

    def tweet(tweet_id: int, **fields) -> dict:
        return {"id": str(tweet_id), "text": f"hostile {tweet_id} about AI https://arxiv.org/abs/{tweet_id}",
                "created_at": "2020-04-05T10:00:00Z", **fields}

    makers = [
        ("text contains a NUL", lambda i: _dumps(tweet(i, text=f"AI\u0000 model {i}"), rng.random() < 0.5)),
        ("created_at out of range", lambda i: _dumps(tweet(i, created_at="9999-12-31T23:59:59-05:00"), True)),
        ("created_at out of range", lambda i: _dumps(tweet(i, created_at="1999-01-01T00:00:00Z"), True)),
        ("invalid JSON", lambda i: _dumps(tweet(i, text=f"lone \ud800 surrogate {i}"), True)),
        ("invalid JSON: not UTF-8", lambda i: _dumps(tweet(i, text=f"lone \udfff surrogate {i}"), False)),
        ("invalid JSON", lambda i: f'{{"id": "{i}", "text": "big", "created_at": 1e400}}'.encode()),
        ("id out of range", lambda i: _dumps(tweet(i, id=str(2**64 + i)), True)),
        ("lang is not a string", lambda i: _dumps({"id_str": str(i), "text": "v1 AI post", "user": {},
                                                   "lang": {"nested": [i]},
                                                   "created_at": "Sun Apr 05 10:46:44 +0000 2020"}, True)),
        ("urls contains a NUL", lambda i: _dumps(tweet(i, urls=[{"url": f"https://t.co/\u0000{i}"}]), True)),
        ("invalid JSON: nested too deeply", lambda i: _nested(100_000 + i % 1000, "list")),
        ("message too large", lambda i: _dumps(tweet(i, text="y" * (MAX_MESSAGE_BYTES + i % 100)), True)),
        ("empty message", lambda i: None),
        ("payload is not a JSON object", lambda i: _dumps([i, "AI"], True)),
        ("missing text", lambda i: _dumps({"id": str(i), "created_at": "2020-04-05T10:00:00Z"}, True)),
    ]
    return [(makers[n % len(makers)][0], makers[n % len(makers)][1](first_id + n)) for n in range(count)]
