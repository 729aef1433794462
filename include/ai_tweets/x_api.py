"""The X API v2 source of the capture stage: stream rules, the filtered stream, recent search.

tweepy 4 does authentication and the REST calls (`StreamingClient.get_rules/add_rules/
delete_rules`, `Client.search_recent_tweets`). The stream endpoint itself is read here,
through the same tweepy session, because `StreamingClient.filter` runs its own loop with
callbacks, fixed `time.sleep` backoffs and no access to response headers: it cannot honour
`x-rate-limit-reset`, take injectable backoff delays, or stop within a second on an idle
stream, and an iterator of tweets is what the capture stage wants.

tweepy hard-codes `https://api.twitter.com`. Every function takes `base_url`: when set, a
transport adapter mounted on the tweepy client's `session` (a documented attribute of both
clients) sends each request for that host to `base_url` instead, e.g. a local fake server.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

from ai_tweets.schema import MAX_MESSAGE_BYTES, MalformedInput, MalformedTweet, Tweet, normalize_v2

log = logging.getLogger(__name__)

API_HOSTS = ("https://api.twitter.com", "https://api.x.com")  # tweepy 4 uses the first
STREAM_ROUTE = "/2/tweets/search/stream"
RULE_TAG = "ai-tweets"
MAX_RULE_LENGTH = 1024
MAX_RULES = 1000
# Only original English posts that carry a link: the product retweets AI posts with links.
DEFAULT_OPERATORS = "has:links -is:retweet lang:en"
TWEET_FIELDS = ("created_at", "lang", "entities", "author_id", "referenced_tweets", "in_reply_to_user_id",
                "note_tweet")
EXPANSIONS = ("author_id", "referenced_tweets.id", "referenced_tweets.id.author_id")
USER_FIELDS = ("username", "name")
STALL_TIMEOUT = 21.0  # X sends a keep-alive every 20 s; it often arrives a little late
CONNECT_TIMEOUT = 10.0
PROGRESS_EVERY = 1000  # tweets between progress log lines
_STOP_POLL = 0.1  # how often a blocked stream read checks the stop event

DEFAULT_KEYWORDS = (
    "AI", "artificial intelligence", "machine learning", "deep learning", "neural network",
    "neural networks", "reinforcement learning", "supervised learning", "unsupervised learning",
    "transfer learning", "NLP", "natural language processing", "LLM", "LLMs", "large language model",
    "language model", "foundation model", "generative AI", "GenAI", "transformer model", "GPT",
    "ChatGPT", "diffusion model", "computer vision", "image recognition", "object detection",
    "speech recognition", "data science", "data scientist", "MLOps", "AI agents", "RAG",
    "fine-tuning", "embeddings", "PyTorch", "TensorFlow", "Keras", "scikit-learn", "Hugging Face",
    "arXiv", "#AI", "#ArtificialIntelligence", "#MachineLearning", "#ML", "#DeepLearning", "#NLP",
    "#LLM", "#GenerativeAI", "#GenAI", "#ComputerVision", "#DataScience", "#MLOps", "#NeuralNetworks",
    "#PyTorch", "#TensorFlow",
)


class XApiError(RuntimeError):
    """X refused in a way that retrying cannot fix (bad token, no access, invalid rule)."""


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChanges:
    added: tuple[str, ...]
    deleted: tuple[str, ...]
    kept: int


def load_keywords(path: Path | str | None = None) -> list[str]:
    """Keywords from a file (one a line; blank lines and `# ` comments skipped), else the defaults.

    A comment is `#` followed by a space or nothing, so hashtags such as `#AI` stay keywords.
    """
    if path is None:
        return list(DEFAULT_KEYWORDS)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise XApiError(f"cannot read the keywords file {path}: {exc.strerror}") from exc
    keywords = [line.strip() for line in lines
                if line.strip() and not (line.strip() == "#" or line.strip().startswith("# "))]
    if not keywords:
        raise XApiError(f"the keywords file {path} has no keywords")
    return keywords


def _term(keyword: str) -> str:
    """A keyword as a rule term: single words and hashtags as they are, anything else as a phrase."""
    text = " ".join(keyword.split())
    if re.fullmatch(r"[#@$]?\w+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_rules(keywords: Sequence[str], max_len: int = MAX_RULE_LENGTH,
                operators: str = DEFAULT_OPERATORS) -> list[str]:
    """`(k1 OR k2 OR ...) operators` rules covering every keyword, none longer than `max_len`.

    Deterministic whatever the keyword order: terms are de-duplicated case-insensitively (X
    matches without case) and sorted, then packed greedily.
    """
    terms: dict[str, str] = {}
    for term in sorted((_term(k) for k in keywords if k.strip()), key=lambda t: (t.casefold(), t)):
        terms.setdefault(term.casefold(), term)
    suffix = f" {operators.strip()}" if operators.strip() else ""
    budget = max_len - len("()") - len(suffix)
    rules: list[str] = []
    group: list[str] = []
    for term in terms.values():
        if len(term) > budget:
            raise ValueError(f"keyword {term!r} does not fit in a {max_len}-character rule "
                             f"with the operators {operators!r}")
        if group and len(" OR ".join(group)) + len(" OR ") + len(term) > budget:
            rules.append(f"({' OR '.join(group)}){suffix}")
            group = []
        group.append(term)
    if group:
        rules.append(f"({' OR '.join(group)}){suffix}")
    return rules


def sync_rules(token: str, rules: Sequence[str], *, tag: str = RULE_TAG,
               base_url: str | None = None) -> RuleChanges:
    """Make the stream's rules exactly `rules` with `tag`: delete the others, add the missing.

    Idempotent: rules already present with the same value and tag are left alone, so a second
    call sends no POST. Rules with another tag are deleted too, because the app's one stream
    connection delivers whatever any rule matches.
    """
    wanted = list(dict.fromkeys(rules))
    if len(wanted) > MAX_RULES:
        raise XApiError(f"{len(wanted)} rules exceed X's cap of {MAX_RULES}: use fewer keywords")
    too_long = [rule for rule in wanted if len(rule) > MAX_RULE_LENGTH]
    if too_long:
        raise XApiError(f"a rule of {len(too_long[0])} characters exceeds X's limit of {MAX_RULE_LENGTH}: "
                        f"{too_long[0][:80]}...")
    client = _client(tweepy.StreamingClient, token, base_url)
    with _translate_errors("reading the stream rules"):
        current = client.get_rules().data or []
    kept: dict[str, tweepy.StreamRule] = {}
    for rule in current:
        if rule.value in wanted and rule.tag == tag:
            kept.setdefault(rule.value, rule)
    stale = [rule for rule in current if kept.get(rule.value) is not rule]
    missing = [value for value in wanted if value not in kept]
    if stale:  # first, so that a value re-tagged is not rejected as a duplicate
        with _translate_errors("deleting stale stream rules"):
            _check_rule_errors(client.delete_rules([rule.id for rule in stale]), "deleting")
    if missing:
        with _translate_errors("adding stream rules"):
            _check_rule_errors(client.add_rules([tweepy.StreamRule(value, tag=tag) for value in missing]),
                               "adding")
    log.info("stream rules synced: %d added, %d deleted, %d kept", len(missing), len(stale), len(kept))
    return RuleChanges(added=tuple(missing), deleted=tuple(rule.value for rule in stale), kept=len(kept))


def _check_rule_errors(response: tweepy.Response, action: str) -> None:
    if response.errors:
        raise XApiError(f"X reported errors {action} stream rules: {_describe(response.errors)}")


# --- the filtered stream ---------------------------------------------------------------------


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect waits, after X's guidance for streaming endpoints ("Handling disconnections").

    A connection that delivered data and then dropped is reopened at once; further network
    errors wait 250 ms more each time up to 16 s; HTTP errors wait 5 s doubling up to 320 s;
    429s wait 60 s doubling, and never less than until `x-rate-limit-reset` / `retry-after`.
    Jitter only lengthens a wait, so a reset time is always honoured.
    """

    network_step: float = 0.25
    network_max: float = 16.0
    http_start: float = 5.0
    http_max: float = 320.0
    rate_limit_start: float = 60.0
    rate_limit_max: float = 900.0  # one 15-minute rate-limit window
    jitter: float = 0.1  # fraction of the wait added at random


class _Backoff:
    def __init__(self, policy: BackoffPolicy, rand: Callable[[], float] = random.random):
        self.policy = policy
        self._rand = rand
        self.reset()

    def reset(self) -> None:
        self._network = self._http = self._rate_limit = 0

    def _jittered(self, delay: float) -> float:
        return delay * (1 + self.policy.jitter * self._rand())

    def network_error(self) -> float:
        self._network += 1
        return self._jittered(min(self.policy.network_step * (self._network - 1), self.policy.network_max))

    def http_error(self) -> float:
        self._http += 1
        return self._jittered(min(self.policy.http_start * 2 ** (self._http - 1), self.policy.http_max))

    def rate_limited(self, headers: Any) -> float:
        self._rate_limit += 1
        delay = min(self.policy.rate_limit_start * 2 ** (self._rate_limit - 1), self.policy.rate_limit_max)
        return self._jittered(max(delay, _rate_limit_wait(headers)))


def _rate_limit_wait(headers: Any) -> float:
    """Seconds until `x-rate-limit-reset` (epoch seconds) or `retry-after`, whichever is later."""
    waits = [0.0]
    reset = (headers or {}).get("x-rate-limit-reset")
    if reset and reset.isdigit():
        waits.append(int(reset) - time.time())
    retry_after = (headers or {}).get("retry-after")
    if retry_after and retry_after.isdigit():
        waits.append(float(retry_after))
    return max(waits)


def stream_tweets(
    token: str,
    rules_keywords: Sequence[str] | None,
    stop_event: threading.Event,
    base_url: str | None = None,
    *,
    operators: str = DEFAULT_OPERATORS,
    tag: str = RULE_TAG,
    backoff: BackoffPolicy | None = None,
    stall_timeout: float = STALL_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Tweet | MalformedInput]:
    """Tweets matching the keywords, live, until `stop_event` is set; reconnects on its own.

    With `rules_keywords` the stream's rules are first synced to `build_rules(keywords)`;
    with None the rules already on the stream are used. Items that are not tweets (invalid
    JSON, `{"errors": [...]}` lines, payloads `normalize_v2` rejects) come out as
    `MalformedInput` with the reason. Raises XApiError when X refuses for good (401, 403, 400).
    """
    if rules_keywords is not None:
        rules = build_rules(rules_keywords, operators=operators)
        if not rules:
            raise XApiError("no keywords to build stream rules from")
        sync_rules(token, rules, tag=tag, base_url=base_url)
    client = _client(tweepy.StreamingClient, token, base_url)
    waits = _Backoff(backoff or BackoffPolicy())
    params = {"tweet.fields": ",".join(TWEET_FIELDS), "expansions": ",".join(EXPANSIONS),
              "user.fields": ",".join(USER_FIELDS)}
    headers = {"Authorization": f"Bearer {token}", "User-Agent": client.user_agent}
    connects = 0
    while not stop_event.is_set():
        connects += 1
        tweets = malformed = 0
        try:
            with client.session.get(API_HOSTS[0] + STREAM_ROUTE, params=params, headers=headers, stream=True,
                                    timeout=(connect_timeout, stall_timeout)) as response:
                if response.status_code != 200:
                    delay = _stream_refused(response, waits)
                else:
                    log.info("stream connected (connection %d)", connects)
                    with _interrupted_on(stop_event, response):
                        for line in _lines(response):
                            if not line:
                                log.debug("stream keep-alive")
                                continue
                            waits.reset()  # the connection works: the next drop reconnects at once
                            item = _parse_stream_line(line)
                            if isinstance(item, Tweet):
                                tweets += 1
                                if tweets % PROGRESS_EVERY == 0:
                                    log.info("stream: %d tweets on connection %d", tweets, connects)
                            else:
                                malformed += 1
                                log.warning("stream item not a tweet: %s", item.reason)
                            yield item
                            if stop_event.is_set():
                                break
                    if stop_event.is_set():
                        break
                    delay = waits.network_error()
                    log.warning("stream closed by the server after %d tweets, %d malformed; "
                                "reconnecting in %.2f s", tweets, malformed, delay)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if stop_event.is_set():
                break
            delay = waits.network_error()
            log.warning("stream connection lost after %d tweets, %d malformed (%s); reconnecting in %.2f s",
                        tweets, malformed, type(exc).__name__, delay)
        stop_event.wait(delay)
    log.info("stream stopped after %d connection(s)", connects)


def _stream_refused(response: requests.Response, waits: _Backoff) -> float:
    """The wait before the next connect after a non-200 answer; XApiError when retrying is futile."""
    status, detail = response.status_code, response.text[:300]
    if status == 401:
        raise XApiError(f"X rejected the bearer token (401): check X_BEARER_TOKEN. {detail}")
    if status == 403:
        raise XApiError(f"this X app may not use the filtered stream (403); use the recent-search "
                        f"fallback (poll_recent). {detail}")
    if status in (400, 404):
        raise XApiError(f"X rejected the stream request ({status}): {detail}")
    delay = waits.rate_limited(response.headers) if status == 429 else waits.http_error()
    log.warning("stream connect refused (%d): %s; retrying in %.2f s", status, detail, delay)
    return delay


def _lines(response: requests.Response) -> Iterator[bytes]:
    """The body split on X's `\\r\\n` delimiter; an empty line is a keep-alive."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=512):
        buffer += chunk
        *lines, buffer = buffer.split(b"\r\n")
        yield from lines


def _parse_stream_line(line: bytes) -> Tweet | MalformedInput:
    if len(line) > MAX_MESSAGE_BYTES:
        return MalformedInput(line, f"item too large: {len(line)} bytes (max {MAX_MESSAGE_BYTES})")
    try:
        payload = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return MalformedInput(line, f"invalid JSON: {exc}")
    if not isinstance(payload, dict):
        return MalformedInput(line, f"item is not a JSON object but {type(payload).__name__}")
    if "data" not in payload and payload.get("errors"):
        return MalformedInput(line, f"stream error: {_describe(payload['errors'])}")
    return _normalized(payload, line)


def _normalized(payload: dict[str, Any], raw: bytes) -> Tweet | MalformedInput:
    try:
        return normalize_v2(payload)
    except MalformedTweet as exc:
        return MalformedInput(raw, exc.reason)


@contextmanager
def _interrupted_on(stop_event: threading.Event, response: requests.Response) -> Iterator[None]:
    """Shut the stream's socket down once `stop_event` is set, so a read blocked on an idle
    stream returns at once. (Closing the response from another thread would wait for the
    blocked read; `shutdown` wakes it.)"""
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(_STOP_POLL):
            if stop_event.is_set():
                sock = getattr(getattr(response.raw, "connection", None), "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    watcher = threading.Thread(target=watch, name="x-stream-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()


# --- recent search fallback ----------------------------------------------------------------


def poll_recent(
    token: str,
    query: str,
    since_id: int | str | None,
    stop_event: threading.Event,
    interval: float = 60.0,
    base_url: str | None = None,
    *,
    max_results: int = 100,
    backoff: BackoffPolicy | None = None,
) -> Iterator[Tweet | MalformedInput]:
    """Tweets matching `query` (a rule from `build_rules`), polled every `interval` seconds.

    For apps without filtered-stream access. Each poll pages with `next_token` back to
    `since_id`, then moves `since_id` to the poll's newest id, so no tweet is returned twice.
    Without a starting `since_id` only the newest page is read: recent search reaches back
    seven days, and every post read is paid for. Waits out 429s until `x-rate-limit-reset`
    and pauses when `x-rate-limit-remaining` reaches 0. Stops when `stop_event` is set.
    """
    search = _RecentSearch(_client(tweepy.Client, token, base_url, return_type=requests.Response),
                           stop_event, _Backoff(backoff or BackoffPolicy()))
    fields = {"tweet_fields": list(TWEET_FIELDS), "expansions": list(EXPANSIONS),
              "user_fields": list(USER_FIELDS), "max_results": max_results}
    since = str(since_id) if since_id else None
    while not stop_event.is_set():
        newest, next_token, found = None, None, 0
        while not stop_event.is_set():
            page = search.get(query, since_id=since, next_token=next_token, **fields)
            if page is None:
                break
            meta = page.get("meta") or {}
            newest = newest or meta.get("newest_id")
            includes = page.get("includes") or {}
            for data in page.get("data") or []:
                found += 1
                item = {"data": data, "includes": includes}
                yield _normalized(item, json.dumps(item, ensure_ascii=False).encode())
            next_token = meta.get("next_token")
            if not next_token or since is None:
                break
        since = newest or since
        log.info("recent search: %d tweets, since_id now %s", found, since)
        stop_event.wait(interval)


class _RecentSearch:
    """One `search_recent_tweets` call at a time, retried through rate limits and outages."""

    def __init__(self, client: tweepy.Client, stop_event: threading.Event, waits: _Backoff):
        self.client = client
        self.stop_event = stop_event
        self.waits = waits
        self.not_before = 0.0

    def get(self, query: str, **params: Any) -> dict[str, Any] | None:
        """The response JSON, or None once stopped."""
        params = {key: value for key, value in params.items() if value is not None}
        while not self.stop_event.wait(max(0.0, self.not_before - time.time())):
            try:
                response = self.client.search_recent_tweets(query, **params)
            except tweepy.TooManyRequests as exc:
                delay = self.waits.rate_limited(exc.response.headers)
                log.warning("recent search rate-limited; retrying in %.1f s", delay)
            except (tweepy.TwitterServerError, requests.RequestException) as exc:
                delay = self.waits.http_error()
                log.warning("recent search failed (%s); retrying in %.1f s", exc, delay)
            except tweepy.HTTPException as exc:
                raise XApiError(_refusal("searching recent tweets", exc)) from exc
            else:
                self.waits.reset()
                if response.headers.get("x-rate-limit-remaining") == "0":
                    self.not_before = time.time() + _rate_limit_wait(response.headers)
                return response.json()
            self.not_before = time.time() + delay
        return None


def lookup_tweet(client: tweepy.Client, tweet_id: int) -> Tweet | None:
    """The tweet as X has it now (`GET /2/tweets/:id` with its author and links, as the account
    that asks), or None when X returns no such tweet (deleted, protected, never existed).
    X's refusals raise tweepy's exceptions; a malformed answer is treated as no tweet."""
    response = client.request("GET", f"/2/tweets/{int(tweet_id)}", params={
        "tweet.fields": ",".join(TWEET_FIELDS), "expansions": ",".join(EXPANSIONS),
        "user.fields": ",".join(USER_FIELDS)}, user_auth=True)
    try:
        payload = response.json()
        return normalize_v2(payload) if isinstance(payload, dict) and payload.get("data") else None
    except (ValueError, MalformedTweet):
        return None


# --- tweepy plumbing ---------------------------------------------------------------------


class _BaseUrlAdapter(HTTPAdapter):
    """Sends requests addressed to the X API host to `base_url` instead (a fake server, a proxy)."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base = urlsplit(base_url.rstrip("/"))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        request.url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path,
                                  parts.query, parts.fragment))
        # Proxies were chosen for the X host; choose again for the real destination.
        kwargs["proxies"] = requests.utils.get_environ_proxies(request.url)
        return super().send(request, **kwargs)


def _client(cls: type, token: str, base_url: str | None, **kwargs: Any) -> Any:
    """A tweepy client (never waiting on rate limits itself: its sleeps cannot be stopped)."""
    client = cls(token, wait_on_rate_limit=False, **kwargs)
    if base_url:
        adapter = _BaseUrlAdapter(base_url)
        for host in API_HOSTS:
            client.session.mount(host + "/", adapter)
    return client


@contextmanager
def _translate_errors(action: str) -> Iterator[None]:
    try:
        yield
    except tweepy.HTTPException as exc:
        raise XApiError(_refusal(action, exc)) from exc
    except requests.RequestException as exc:
        raise XApiError(f"cannot reach the X API while {action}: {exc}") from exc


def _refusal(action: str, exc: tweepy.HTTPException) -> str:
    status = exc.response.status_code
    if status == 401:
        return f"X rejected the bearer token while {action} (401): check X_BEARER_TOKEN"
    if status == 429:
        wait = math.ceil(_rate_limit_wait(exc.response.headers))
        return f"X rate-limited {action} (429): retry in {wait} s"
    return f"X refused {action} ({status}): {_describe(exc.api_errors) or exc}"


def _describe(errors: Any) -> str:
    if not isinstance(errors, list):
        return str(errors)[:300]
    parts = []
    for error in errors:
        if isinstance(error, dict):
            title = error.get("title") or error.get("message") or "error"
            detail = error.get("detail") or "; ".join(error.get("details") or []) or error.get("value") or ""
            parts.append(f"{title}: {detail}" if detail else str(title))
        else:
            parts.append(str(error))
    return " | ".join(parts)[:500]
