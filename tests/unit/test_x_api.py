"""X source: rules, the filtered stream and the recent-search fallback, against the local fake X API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from ai_tweets.schema import MalformedInput, Tweet
from ai_tweets.x_api import (
    DEFAULT_KEYWORDS,
    DEFAULT_OPERATORS,
    EXPANSIONS,
    RULE_TAG,
    TWEET_FIELDS,
    BackoffPolicy,
    XApiError,
    build_rules,
    load_keywords,
    poll_recent,
    stream_tweets,
    sync_rules,
)
from tests.fakes.fake_x_api import RECENT_PATH, RULES_PATH, STREAM_PATH, FakeXApi, v2_tweet

# The policy's shape with delays small enough for tests; no jitter, so the waits are exact.
FAST = BackoffPolicy(network_step=0.1, http_start=0.2, rate_limit_start=0.1, jitter=0.0)
# For the tests that time the waits: steps long enough that a busy machine's scheduling delay
# (tenths of a second) cannot push one wait into the range of the next.
TIMED = BackoffPolicy(network_step=0.5, http_start=1.0, rate_limit_start=0.1, jitter=0.0)


@pytest.fixture
def api() -> Iterator[FakeXApi]:
    with FakeXApi() as fake:
        yield fake


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


class Consumer:
    """Drains an iterator in a thread, so a test can wait for items with a deadline."""

    def __init__(self, iterator: Iterator[Tweet | MalformedInput]):
        self.items: list[Tweet | MalformedInput] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self.thread.start()

    def _run(self, iterator: Iterator[Tweet | MalformedInput]) -> None:
        try:
            for item in iterator:
                self.items.append(item)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Tweet | MalformedInput]:
        deadline = time.monotonic() + timeout
        while len(self.items) < count and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.error is None, self.error
        assert len(self.items) >= count, f"got {len(self.items)} items, wanted {count}: {self.items}"
        return self.items

    def finished_within(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def tweet_item(tweet_id: int, **kwargs) -> dict:
    return v2_tweet(tweet_id, f"Paper {tweet_id} on LLM agents https://t.co/p{tweet_id}",
                    urls={f"https://t.co/p{tweet_id}": f"https://arxiv.org/abs/{tweet_id}"}, **kwargs)


def connects(api: FakeXApi) -> list:
    return api.requests_to("GET", STREAM_PATH)


# --- rules -------------------------------------------------------------------------------


def test_rules_split_long_keyword_lists_under_the_length_limit():
    keywords = [f"keyword{i}" for i in range(300)] + [f"multi word phrase {i}" for i in range(100)]
    rules = build_rules(keywords)
    assert len(rules) > 3
    assert all(len(rule) <= 1024 for rule in rules)
    assert all(rule.startswith("(") and rule.endswith(f") {DEFAULT_OPERATORS}") for rule in rules)
    terms = [term for rule in rules for term in rule[1:rule.index(")")].split(" OR ")]
    assert sorted(terms) == sorted([f"keyword{i}" for i in range(300)]
                                   + [f'"multi word phrase {i}"' for i in range(100)])
    assert build_rules(list(reversed(keywords))) == rules  # deterministic, order-independent
    assert all(len(rule) <= 200 for rule in build_rules(keywords, max_len=200))


def test_rules_quote_phrases_keep_hashtags_and_drop_case_duplicates():
    rules = build_rules(["machine learning", "#AI", "AI", "ai", "GPT-4", "  "], operators="has:links")
    assert rules == ['("GPT-4" OR "machine learning" OR #AI OR AI) has:links']
    with pytest.raises(ValueError, match="does not fit"):
        build_rules(["x" * 1100])


def test_default_keywords_make_valid_rules():
    rules = build_rules(DEFAULT_KEYWORDS)
    assert rules and all(len(rule) <= 1024 for rule in rules)
    text = " ".join(rules)
    assert '"deep learning"' in text and "#MachineLearning" in text


def test_keywords_file_skips_comments_but_keeps_hashtags(tmp_path):
    path = tmp_path / "keywords.txt"
    path.write_text("# AI terms\n#LLM\n\nmachine learning\n#\n")
    assert load_keywords(path) == ["#LLM", "machine learning"]
    assert load_keywords(None) == list(DEFAULT_KEYWORDS)
    with pytest.raises(XApiError, match="keywords file"):
        load_keywords(tmp_path / "missing.txt")


def test_sync_rules_is_idempotent_and_removes_stale_rules(api):
    sync_rules(api.bearer_token, ["(stale) has:links"], base_url=api.base_url)
    wanted = build_rules([f"keyword{i}" for i in range(200)])
    changes = sync_rules(api.bearer_token, wanted, base_url=api.base_url)
    assert changes.deleted == ("(stale) has:links",) and changes.added == tuple(wanted)
    assert sorted(rule["value"] for rule in api.rules) == sorted(wanted)
    assert {rule["tag"] for rule in api.rules} == {RULE_TAG}
    posts = len(api.requests_to("POST", RULES_PATH))

    again = sync_rules(api.bearer_token, wanted, base_url=api.base_url)
    assert again.added == () and again.deleted == () and again.kept == len(wanted)
    assert len(api.requests_to("POST", RULES_PATH)) == posts  # no POST the second time


def test_sync_rules_replaces_a_rule_with_another_tag(api):
    sync_rules(api.bearer_token, ["(AI) has:links"], tag="someone-else", base_url=api.base_url)
    sync_rules(api.bearer_token, ["(AI) has:links"], base_url=api.base_url)
    assert [(rule["value"], rule["tag"]) for rule in api.rules] == [("(AI) has:links", RULE_TAG)]


def test_sync_rules_reports_a_bad_token(api):
    with pytest.raises(XApiError, match="X_BEARER_TOKEN"):
        sync_rules("wrong-token", ["(AI) has:links"], base_url=api.base_url)
    assert api.requests[0].status == 401


def test_fake_enforces_rule_length_and_cap():
    with FakeXApi(max_rules=2) as api:
        post = f"{api.base_url}{RULES_PATH}"
        auth = {"Authorization": f"Bearer {api.bearer_token}"}
        too_long = requests.post(post, json={"add": [{"value": "a" * 1025}]}, headers=auth, timeout=5)
        assert too_long.status_code == 400 and too_long.json()["errors"][0]["title"] == "UnprocessableEntity"
        too_many = requests.post(post, json={"add": [{"value": v} for v in "abc"]}, headers=auth, timeout=5)
        assert too_many.status_code == 400 and too_many.json()["errors"][0]["title"] == "RulesCapExceeded"
        assert api.rules == []
        with pytest.raises(XApiError, match="RulesCapExceeded"):
            sync_rules(api.bearer_token, ["a", "b", "c"], base_url=api.base_url)


# --- the stream --------------------------------------------------------------------------


def test_tweets_flow_from_the_stream_normalized(api, stop):
    long_text = "A long post about diffusion models. " * 12 + "https://t.co/long"
    note = tweet_item(2)
    note["data"]["note_tweet"] = {"text": long_text, "entities": {"urls": [
        {"start": len(long_text) - 17, "end": len(long_text), "url": "https://t.co/long",
         "expanded_url": "https://example.org/diffusion"}]}}
    api.emit(tweet_item(1, username="karpathy_fan"))
    api.emit(note)
    consumer = Consumer(stream_tweets(api.bearer_token, ["LLM", "deep learning"], stop, api.base_url,
                                      backoff=FAST))
    first, second = consumer.wait_for(2)
    assert isinstance(first, Tweet) and first.id == 1 and first.author_handle == "karpathy_fan"
    assert first.text == "Paper 1 on LLM agents https://t.co/p1"
    assert [u.expanded_url for u in first.urls] == ["https://arxiv.org/abs/1"]
    assert second.text == long_text and second.urls[0].expanded_url == "https://example.org/diffusion"
    assert [rule["value"] for rule in api.rules] == [f'("deep learning" OR LLM) {DEFAULT_OPERATORS}']
    query = connects(api)[0].query
    assert query["tweet.fields"].split(",") == list(TWEET_FIELDS)
    assert query["expansions"].split(",") == list(EXPANSIONS) and query["user.fields"] == "username,name"
    assert connects(api)[0].headers["Authorization"] == f"Bearer {api.bearer_token}"


def test_keep_alives_are_not_items():
    with FakeXApi(keepalive_interval=0.01) as api:
        stop = threading.Event()
        consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
        time.sleep(0.3)  # about 30 keep-alives
        api.emit(tweet_item(7))
        items = consumer.wait_for(1)
        time.sleep(0.1)
        stop.set()
        assert [item.id for item in items] == [7]
        assert len(connects(api)) == 1


def test_error_lines_and_bad_items_are_reported_not_fatal(api, stop):
    api.emit_error()
    api.emit_raw(b'{"data": {"id": "5", "text": "truncat')
    no_text = tweet_item(6)
    del no_text["data"]["text"]
    api.emit(no_text)
    api.emit(tweet_item(8))
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
    error, broken, missing, tweet = consumer.wait_for(4)
    assert isinstance(error, MalformedInput)
    assert error.reason.startswith("stream error: operational-disconnect")
    assert isinstance(broken, MalformedInput) and broken.reason.startswith("invalid JSON")
    assert broken.raw == b'{"data": {"id": "5", "text": "truncat'
    assert isinstance(missing, MalformedInput) and missing.reason == "missing text"
    assert isinstance(tweet, Tweet) and tweet.id == 8
    assert len(connects(api)) == 1  # nothing above cost a reconnect


def test_disconnects_reconnect_with_linear_backoff(api, stop):
    api.emit(tweet_item(1))
    for _ in range(3):
        api.drop_connection()
    api.emit(tweet_item(2))
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=TIMED))
    assert [item.id for item in consumer.wait_for(2)] == [1, 2]
    times = [request.time for request in connects(api)]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3
    assert gaps[0] < 0.5  # an established connection that drops is reopened at once
    assert 0.5 <= gaps[1] < 1.0 and 1.0 <= gaps[2] < 1.5  # then +network_step per failure
    assert api.max_active_streams == 1


def test_rate_limit_is_honoured_until_the_reset_time(api, stop):
    api.reject_next("stream", 1, reset_in=1.2)
    api.emit(tweet_item(3))
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
    assert consumer.wait_for(1)[0].id == 3
    refused, accepted = connects(api)
    assert refused.status == 429 and accepted.status == 200
    assert accepted.time >= int(refused.response_headers["x-rate-limit-reset"])


def test_server_errors_back_off_exponentially(api, stop):
    api.reject_next("stream", 2, status=503)
    api.emit(tweet_item(4))
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=TIMED))
    assert consumer.wait_for(1)[0].id == 4
    times = [request.time for request in connects(api)]
    assert 1.0 <= times[1] - times[0] < 2.0 and 2.0 <= times[2] - times[1] < 3.0  # doubling


def test_one_connection_at_a_time(api, stop):
    auth = {"Authorization": f"Bearer {api.bearer_token}"}
    other = requests.get(f"{api.base_url}{STREAM_PATH}", headers=auth, stream=True, timeout=5)
    assert other.status_code == 200
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
    time.sleep(0.5)
    refused = connects(api)[1:]
    assert len(refused) >= 2 and {request.status for request in refused} == {429}
    other.close()  # the other client leaves; ours gets the connection on a later try
    deadline = time.monotonic() + 5
    while connects(api)[-1].status != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    api.emit(tweet_item(9))
    assert consumer.wait_for(1)[0].id == 9
    assert api.max_active_streams == 1


def test_stop_event_ends_an_idle_stream_quickly():
    with FakeXApi(keepalive_interval=30) as api:  # a truly idle connection: the read blocks
        stop = threading.Event()
        consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
        deadline = time.monotonic() + 5
        while api.active_streams == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        started = time.monotonic()
        stop.set()
        assert consumer.finished_within(2.0)
        assert time.monotonic() - started < 1.0 and consumer.error is None


def test_stop_event_interrupts_a_rate_limit_wait(api):
    api.reject_next("stream", 1, reset_in=60)
    stop = threading.Event()
    consumer = Consumer(stream_tweets(api.bearer_token, None, stop, api.base_url, backoff=FAST))
    time.sleep(0.3)
    stop.set()
    assert consumer.finished_within(2.0)
    assert len(connects(api)) == 1


def test_a_bad_token_stops_the_stream_with_a_clear_error(api, stop):
    with pytest.raises(XApiError, match="X_BEARER_TOKEN"):
        next(stream_tweets("wrong-token", None, stop, api.base_url, backoff=FAST))
    assert len(connects(api)) == 1  # not retried


# --- recent search fallback ----------------------------------------------------------------


def test_recent_search_pages_with_since_id_without_duplicates(api, stop):
    api.add_recent(*(tweet_item(i) for i in range(1, 26)))
    consumer = Consumer(poll_recent(api.bearer_token, "(LLM) has:links", 5, stop, interval=0.2,
                                    base_url=api.base_url, max_results=10, backoff=FAST))
    consumer.wait_for(20)
    api.add_recent(*(tweet_item(i) for i in range(26, 31)))
    items = consumer.wait_for(25)
    time.sleep(0.5)  # further polls find nothing new
    stop.set()
    assert consumer.finished_within(2.0)
    ids = [item.id for item in consumer.items]
    assert sorted(ids) == list(range(6, 31)) and len(ids) == len(set(ids))
    assert items[0].author_handle == "ai_news" and items[0].urls[0].expanded_url.startswith("https://arxiv")
    searches = api.requests_to("GET", RECENT_PATH)
    assert searches[0].query["since_id"] == "5" and "next_token" in searches[1].query
    assert searches[-1].query["since_id"] == "30"
    assert searches[0].query["tweet.fields"].split(",") == list(TWEET_FIELDS)


def test_recent_search_first_poll_reads_only_the_newest_page(api, stop):
    api.add_recent(*(tweet_item(i) for i in range(1, 26)))
    consumer = Consumer(poll_recent(api.bearer_token, "(LLM) has:links", None, stop, interval=5,
                                    base_url=api.base_url, max_results=10, backoff=FAST))
    assert [item.id for item in consumer.wait_for(10)] == list(range(25, 15, -1))
    time.sleep(0.2)
    stop.set()
    assert consumer.finished_within(2.0) and len(consumer.items) == 10
    assert len(api.requests_to("GET", RECENT_PATH)) == 1


def test_recent_search_waits_out_a_rate_limit(api, stop):
    api.add_recent(tweet_item(11))
    api.reject_next("search", 1, reset_in=1.0)
    consumer = Consumer(poll_recent(api.bearer_token, "(AI) has:links", 10, stop, interval=5,
                                    base_url=api.base_url, backoff=FAST))
    assert consumer.wait_for(1)[0].id == 11
    refused, accepted = api.requests_to("GET", RECENT_PATH)[:2]
    assert refused.status == 429 and accepted.time >= int(refused.response_headers["x-rate-limit-reset"])


def test_fake_records_retweets_and_limits_them():
    with FakeXApi(retweet_limit=1) as api:
        auth = {"Authorization": f"Bearer {api.bearer_token}"}
        me = requests.get(f"{api.base_url}/2/users/me", headers=auth, timeout=5).json()["data"]
        url = f"{api.base_url}/2/users/{me['id']}/retweets"
        first = requests.post(url, json={"tweet_id": "123"}, headers=auth, timeout=5)
        second = requests.post(url, json={"tweet_id": "456"}, headers=auth, timeout=5)
        assert first.json() == {"data": {"retweeted": True}} and second.status_code == 429
        assert api.retweets == [(me["id"], "123")]
