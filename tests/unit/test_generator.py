"""The synthetic tweet generator: reproducible, unique ids, a realistic mix, labels kept out of payloads."""

from __future__ import annotations

import gc
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ai_tweets.generator import X_EPOCH_MS, GeneratedTweet, generate, ground_truth
from ai_tweets.schema import Tweet, normalize

TCO = re.compile(r"https://t\.co/[A-Za-z0-9]{10}\b")
N = 50_000


@pytest.fixture(scope="module")
def stream() -> Iterator[list[tuple[GeneratedTweet, Tweet]]]:
    """The default mix, both shapes, normalized once for the whole module."""
    gc.disable()  # 50,000 live payloads: spare the cycle collector from rescanning them again and again
    try:
        tweets = [(item, normalize(item.payload)) for item in generate(N, seed=11)]
    finally:
        gc.enable()
    gc.freeze()
    yield tweets
    gc.unfreeze()


def body(tweet: Tweet) -> str:
    """The words of a tweet, without the retweet prefix and with links blanked (what dedup compares)."""
    text = re.sub(r"^RT @\w+: ", "", tweet.text)
    return TCO.sub("<link>", text)


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


# --- reproducibility and ids ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["v1.1", "v2", "mixed"])
def test_same_seed_same_bytes(shape):
    first = [(json.dumps(i.payload, sort_keys=False), i.is_ai, i.duplicate_of)
             for i in generate(3000, seed=5, shape=shape)]
    second = [(json.dumps(i.payload, sort_keys=False), i.is_ai, i.duplicate_of)
              for i in generate(3000, seed=5, shape=shape)]
    assert first == second


def test_different_seeds_differ():
    a = list(generate(2000, seed=1))
    b = list(generate(2000, seed=2))
    assert not {i.tweet_id for i in a} & {i.tweet_id for i in b}
    texts_a = {normalize(i.payload).text for i in a}
    texts_b = {normalize(i.payload).text for i in b}
    assert len(texts_a & texts_b) < 200  # only the short stock replies and chat lines can coincide


def test_ids_unique_in_a_long_stream(stream):
    ids = [item.tweet_id for item, _ in stream]
    assert len(set(ids)) == N
    assert ids == sorted(ids)  # a stream in time order, like the real one
    assert all(tweet.id == item.tweet_id for item, tweet in stream)


def test_ids_unique_across_seeds_that_share_id_bits():
    # seeds 0 and 128 (and 1 and 129) share the seed bits of their ids; time keeps them apart
    ids = [set(ground_truth(10_000, seed=s)) for s in (0, 1, 128, 129, 1000)]
    assert sum(len(s) for s in ids) == len(set().union(*ids)) == 50_000


def test_ids_are_snowflakes_of_their_time(stream):
    for item, tweet in stream[:2000]:
        assert 1.2e18 < item.tweet_id < 1.4e18
        ms = (item.tweet_id >> 22) + X_EPOCH_MS
        assert abs(ms - tweet.created_at.timestamp() * 1000) < 1000
    assert stream[0][1].created_at >= datetime(2020, 4, 5, tzinfo=UTC)  # fixed base time, not the clock
    assert stream[-1][1].created_at < datetime(2020, 4, 6, tzinfo=UTC)


def test_referenced_tweets_are_distinct_from_stream_ids(stream):
    ids = {item.tweet_id for item, _ in stream}
    originals = set()
    for item, _ in stream:
        if item.duplicate_of is None and "retweeted_status" in item.payload:
            originals.add(int(item.payload["retweeted_status"]["id_str"]))
    assert len(originals) > 1000
    assert not originals & ids


def test_endless_stream_and_ground_truth_match_any_shape():
    endless = list(itertools.islice(generate(None, seed=4), 500))
    truth = ground_truth(500, seed=4)
    assert [i.tweet_id for i in endless] == list(truth)
    for shape in ("v1.1", "v2"):
        assert {i.tweet_id: i.is_ai for i in generate(500, seed=4, shape=shape)} == truth


@pytest.mark.parametrize("kwargs", [
    {"count": -1}, {"seed": -1}, {"seed": 2**16}, {"ai_share": 1.5}, {"duplicate_rate": 1.0}, {"shape": "v3"},
])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        next(generate(**{"count": 10, **kwargs}))


# --- the mix ------------------------------------------------------------------------------------------


def test_ai_share_default_and_configured(stream):
    share = sum(item.is_ai for item, _ in stream) / N
    assert 0.23 < share < 0.27
    half = [i.is_ai for i in generate(10_000, seed=3, ai_share=0.5)]
    assert 0.47 < sum(half) / len(half) < 0.53
    assert not any(ground_truth(2000, seed=3, ai_share=0.0).values())
    assert all(ground_truth(2000, seed=3, ai_share=1.0).values())


def test_texts_are_diverse(stream):
    ai = {body(t) for item, t in stream if item.is_ai}
    other = {body(t) for item, t in stream if not item.is_ai}
    assert len(ai) > 5000
    assert len(other) > 10_000
    most_common = Counter(body(t) for _, t in stream).most_common(1)[0][1]
    assert most_common < N * 0.005


def test_label_is_not_in_the_payload(stream):
    for item, _ in stream[:5000]:
        assert not keys(item.payload) & {"is_ai", "label", "ai", "gold_label", "weak_label"}
        assert "is_ai" not in json.dumps(item.payload)
    rules = {json.dumps(item.payload.get("matching_rules")) for item, _ in stream if "data" in item.payload}
    assert len(rules) == 1  # the stream rule is the same for every tweet, so it carries no label


def test_hard_negatives_are_present_and_labeled_not_ai(stream):
    def labels(pattern: str) -> Counter:
        regex = re.compile(pattern)
        return Counter(item.is_ai for item, tweet in stream if regex.search(tweet.text))

    assert labels(r"\d ml\b") == Counter({False: labels(r"\d ml\b")[False]})  # millilitres: never AI
    assert labels(r"\d ml\b")[False] > 100
    assert labels(r"\bML\b")[False] > 100  # moneyline, Major League debuts
    assert labels(r"\bAI\b(?! \d)")[False] > 300  # Iverson, insemination, game AI, Illustrator
    assert labels(r"\bAI \d{3}\b")[False] > 20  # Air India flights
    assert labels(r"\bDL\b")[False] > 50  # depth charts and downloads
    assert labels(r"#(AI|ML|BigData)\b")[False] > 300  # spam stuffed with AI hashtags
    assert labels(r"#(AI|ML|BigData)\b")[True] > 300
    assert labels(r"(?i)covid|coronavirus")[False] > 1000
    assert not labels(r"(?i)covid|coronavirus|insemination|\.ai file|enemy AI|presale")[True]


def test_structure_retweets_replies_mentions_emojis(stream):
    retweets = [(item, t) for item, t in stream if t.is_retweet]
    replies = [t for _, t in stream if t.is_reply]
    assert 0.2 < len(retweets) / N < 0.4
    assert all(t.text.startswith("RT @") for _, t in retweets)
    assert Counter(item.is_ai for item, _ in retweets)[True] > 2000  # retweets of AI tweets are AI
    assert len(replies) / N > 0.05
    assert all(t.text.startswith("@") for t in replies)
    assert any(t.text.endswith(" lol same") for t in replies)  # short replies, in lower case as typed
    assert sum(bool(t.mentions) for _, t in stream) / N > 0.1
    assert sum(bool(t.hashtags) for _, t in stream) / N > 0.3
    assert sum(bool(re.search("[\U0001F300-\U0001FAFF]", t.text)) for _, t in stream) / N > 0.15


def test_links_in_both_classes(stream):
    def with_links(is_ai: bool) -> float:
        group = [t for item, t in stream if item.is_ai == is_ai]
        return sum(bool(t.urls) for t in group) / len(group)

    assert 0.4 < with_links(True) < 0.9  # many AI tweets link out, some do not
    assert 0.2 < with_links(False) < 0.7
    expanded = [u.expanded_url or "" for _, t in stream for u in t.urls]
    for site in ("arxiv.org", "paperswithcode.com", "huggingface.co", "github.com", "openai.com",
                 "deepmind.google", "towardsdatascience.com", "twitter.com/", "/photo/1", "utm_source="):
        assert any(site in url for url in expanded), site


# --- both payload shapes normalize to the same full tweet ---------------------------------------------


def test_v1_and_v2_give_the_same_full_tweets():
    pairs = zip(generate(10_000, seed=8, shape="v1.1"), generate(10_000, seed=8, shape="v2"), strict=True)
    truncated = retweets_cut = long_posts = 0
    for v1, v2 in pairs:
        assert "id_str" in v1.payload and "data" in v2.payload
        a, b = normalize(v1.payload), normalize(v2.payload)
        assert (a.id, a.text, a.is_retweet, a.is_reply, a.hashtags, a.mentions) == (
            b.id, b.text, b.is_retweet, b.is_reply, b.hashtags, b.mentions)
        assert a.created_at == b.created_at.replace(microsecond=0)  # v1.1 dates have whole seconds
        assert [u.url for u in a.urls] == [u.url for u in b.urls]
        truncated += bool(v1.payload["truncated"])
        retweets_cut += v1.payload["text"].startswith("RT @") and v1.payload["text"].endswith("…")
        long_posts += "note_tweet" in v2.payload["data"] or any(
            "note_tweet" in t for t in v2.payload.get("includes", {}).get("tweets", []))
    assert truncated > 200 and retweets_cut > 200 and long_posts > 20  # the hard paths are exercised


def test_normalized_text_is_full_with_expanded_links(stream):
    for item, tweet in stream:
        assert not tweet.text.endswith("…"), item.tweet_id
        assert "https://twitter.com/i/web/status/" not in tweet.text
        links = TCO.findall(tweet.text)
        assert [u.url for u in tweet.urls] == links  # every link in the text, once, in order
        for url in tweet.urls:
            assert url.expanded_url and url.expanded_url.startswith("https://")
            assert not url.expanded_url.startswith("https://t.co/")


def test_v2_prefers_unwound_urls_over_shorteners():
    unwound = 0
    for item in generate(5000, seed=9, shape="v2"):
        tweet = normalize(item.payload)
        entities = [u for u in item.payload["data"].get("entities", {}).get("urls", []) if "unwound_url" in u]
        for entity in entities:
            unwound += 1
            assert re.match(r"https://(bit\.ly|buff\.ly|lnkd\.in|ow\.ly|dlvr\.it)/", entity["expanded_url"])
            if not tweet.is_retweet:
                assert entity["unwound_url"] in {u.expanded_url for u in tweet.urls}
    assert unwound > 50


# --- duplicates ---------------------------------------------------------------------------------------


def test_duplicates_at_the_configured_rate():
    items = [(i, normalize(i.payload)) for i in generate(20_000, seed=6, duplicate_rate=0.1)]
    by_id = {i.tweet_id: (i, t) for i, t in items}
    duplicates = [(i, t) for i, t in items if i.duplicate_of is not None]
    assert 0.085 < len(duplicates) / len(items) < 0.115
    kinds = Counter()
    for item, tweet in duplicates:
        source, source_tweet = by_id[item.duplicate_of]
        assert item.duplicate_of < item.tweet_id
        assert item.is_ai == source.is_ai
        assert body(tweet) == body(source_tweet)
        kinds["retweet" if tweet.is_retweet else "exact" if tweet.text == source_tweet.text else "near"] += 1
    assert min(kinds.values()) > 100, kinds  # retweets, verbatim re-posts and re-posts with new t.co links
    assert not any(i.duplicate_of for i in generate(5000, seed=6, duplicate_rate=0.0))


# --- speed ---------------------------------------------------------------------------------------------


def test_throughput_sanity():
    """Measured at ~25,000 tweets/s (v1.1 shape, generated and normalized) on one core; this only
    catches an order-of-magnitude regression. CPU time, so that other work on the machine (the
    stack starting beside the fast tests, another core's load) cannot fail it."""
    start = time.process_time()
    for item in generate(10_000, seed=2):
        normalize(item.payload)
    assert 10_000 / (time.process_time() - start) > 5000
