"""A local fake of the X API v2 endpoints the pipeline uses, for tests without network.

`FakeXApi` runs a `ThreadingHTTPServer` on 127.0.0.1 (a free port) and speaks enough of the
protocol for tweepy and our own stream reader: bearer auth (401), filtered-stream rules with
ids, the 1,024-character and 1,000-rule limits, the chunked `\\r\\n`-delimited stream with
keep-alives and one connection at a time, recent search with `since_id` and `next_token`,
tweet lookup (`/2/tweets/:id`, for the tweets published to it), retweets and `/2/users/me`.
Tests script it (tweets to emit, error lines, dropped
connections, 429s for the next N requests) and read back every request it received.

Error bodies follow the shape of X's problem objects (`title`, `detail`, `type`); their
wording is approximate, which is all a client should depend on anyway.

    with FakeXApi() as api:
        api.emit(v2_tweet(1, "New LLM paper https://t.co/x", urls={"https://t.co/x": "https://arxiv.org/abs/1"}))
        ... stream_tweets(api.bearer_token, None, stop, base_url=api.base_url) ...
        assert api.requests_to("GET", STREAM_PATH)[0].query["tweet.fields"]
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"
RECENT_PATH = "/2/tweets/search/recent"
ME_PATH = "/2/users/me"
_TWEET_PATH = re.compile(r"/2/tweets/(\d+)")
_RETWEETS_PATH = re.compile(r"/2/users/(\d+)/retweets")
PROBLEMS = "https://api.twitter.com/2/problems"
_DROP = object()  # stream action: close the connection abruptly, mid-body


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # last value of each parameter
    headers: dict[str, str]
    body: bytes
    time: float  # time.time() on arrival, comparable with x-rate-limit-reset
    status: int
    response_headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Rejection:
    remaining: int
    status: int
    reset_in: float
    retry_after: int | None


@dataclass
class _State:
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    recent: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> v2 item
    published: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> v2 item: what lookup finds
    retweets: list[tuple[str, str]] = field(default_factory=list)  # (user id, tweet id)
    rejections: dict[str, _Rejection] = field(default_factory=dict)
    active_streams: int = 0
    max_active_streams: int = 0


def v2_tweet(
    tweet_id: int,
    text: str,
    *,
    author_id: str = "42",
    username: str = "ai_news",
    urls: dict[str, str] | None = None,
    created_at: str = "2026-05-01T12:00:00.000Z",
    lang: str = "en",
    rule_id: str | None = None,
) -> dict[str, Any]:
    """One stream item as X sends it: `data`, `includes.users`, `matching_rules`."""
    entities = []
    for short, expanded in (urls or {}).items():
        start = text.find(short)
        entities.append({"start": start, "end": start + len(short), "url": short,
                         "expanded_url": expanded, "display_url": expanded.split("//", 1)[-1][:26]})
    data: dict[str, Any] = {"id": str(tweet_id), "text": text, "author_id": author_id,
                            "created_at": created_at, "lang": lang,
                            "edit_history_tweet_ids": [str(tweet_id)]}
    if entities:
        data["entities"] = {"urls": entities}
    item: dict[str, Any] = {"data": data,
                            "includes": {"users": [{"id": author_id, "name": username.title(),
                                                    "username": username}]}}
    if rule_id:
        item["matching_rules"] = [{"id": rule_id, "tag": "ai-tweets"}]
    return item


def problem(title: str, detail: str, kind: str, status: int | None = None, **extra: Any) -> dict[str, Any]:
    kind = kind if kind.startswith("about:") else f"{PROBLEMS}/{kind}"
    body: dict[str, Any] = {"title": title, "detail": detail, "type": kind, **extra}
    if status is not None:
        body["status"] = status
    return body


OPERATIONAL_DISCONNECT = problem(
    "operational-disconnect", "This stream has been disconnected upstream for operational reasons.",
    "operational-disconnect", disconnect_type="UpstreamOperationalDisconnect",
)


class FakeXApi:
    """The fake server; a context manager, or `start()`/`stop()` from a fixture."""

    def __init__(self, *, bearer_token: str = "fake-bearer-token", keepalive_interval: float = 0.05,
                 max_rules: int = 1000, max_rule_length: int = 1024, retweet_limit: int | None = None,
                 me: dict[str, str] | None = None):
        self.bearer_token = bearer_token
        self.keepalive_interval = keepalive_interval
        self.max_rules = max_rules
        self.max_rule_length = max_rule_length
        self.retweet_limit = retweet_limit
        self.me = me or {"id": "1000", "name": "AI Tweets", "username": "ai_tweets_bot"}
        self._state = _State()
        self._requests: list[RecordedRequest] = []
        self._actions: deque[Any] = deque()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._rule_ids = itertools.count(1_500_000_000_000_000_000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeXApi:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-x-api",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeXApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeXApi is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting ----------------------------------------------------------------------

    def emit(self, item: dict[str, Any]) -> None:
        """Queue one stream item (sent by whichever stream connection is open next)."""
        self.emit_raw(json.dumps(item).encode())

    def emit_raw(self, line: bytes) -> None:
        self._queue(line)

    def emit_error(self, *errors: dict[str, Any]) -> None:
        """Queue an `{"errors": [...]}` line, by default an operational-disconnect notice."""
        self.emit({"errors": list(errors) or [OPERATIONAL_DISCONNECT]})

    def drop_connection(self) -> None:
        """Queue an abrupt close: the connection that reaches it ends mid-body."""
        self._queue(_DROP)

    def reject_next(self, endpoint: str, count: int = 1, *, status: int = 429, reset_in: float = 1.0,
                    retry_after: int | None = None) -> None:
        """Answer the next `count` requests to `endpoint` (stream, rules, search, lookup, retweet, me)
        with `status`."""
        with self._lock:
            self._state.rejections[endpoint] = _Rejection(count, status, reset_in, retry_after)

    def add_recent(self, *items: dict[str, Any]) -> None:
        """Make items (as built by `v2_tweet`) findable by recent search (and by lookup)."""
        with self._lock:
            for item in items:
                self._state.recent[int(item["data"]["id"])] = item
                self._state.published[int(item["data"]["id"])] = item

    def publish(self, *items: dict[str, Any]) -> None:
        """Make items (v2 `{"data", "includes"}`) exist on X: `GET /2/tweets/:id` returns them."""
        with self._lock:
            for item in items:
                self._state.published[int(item["data"]["id"])] = item

    def _queue(self, action: Any) -> None:
        with self._lock:
            self._actions.append(action)
            self._lock.notify_all()

    # --- inspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    @property
    def rules(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(rule) for rule in self._state.rules.values()]

    @property
    def retweets(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._state.retweets)

    @property
    def pending(self) -> int:
        """Stream actions not yet sent."""
        with self._lock:
            return len(self._actions)

    @property
    def active_streams(self) -> int:
        with self._lock:
            return self._state.active_streams

    @property
    def max_active_streams(self) -> int:
        with self._lock:
            return self._state.max_active_streams

    # --- server side --------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _rejection(self, endpoint: str) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        with self._lock:
            rejection = self._state.rejections.get(endpoint)
            if rejection is None or rejection.remaining <= 0:
                return None
            rejection.remaining -= 1
        headers = {}
        if rejection.status == 429:
            headers = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "0",
                       "x-rate-limit-reset": str(math.ceil(time.time() + rejection.reset_in))}
            body = problem("Too Many Requests", "Too Many Requests", "about:blank", 429)
        else:
            body = problem("Service Unavailable", "Service Unavailable", "about:blank", rejection.status)
        if rejection.retry_after is not None:
            headers["retry-after"] = str(rejection.retry_after)
        return rejection.status, headers, body

    def _open_stream(self) -> bool:
        """Take the one stream slot; False if another connection holds it."""
        with self._lock:
            if self._state.active_streams >= 1:
                return False
            self._state.active_streams += 1
            self._state.max_active_streams = max(self._state.max_active_streams, self._state.active_streams)
            return True

    def _close_stream(self) -> None:
        with self._lock:
            self._state.active_streams -= 1

    def _next_action(self) -> Any:
        """The next queued stream action, or None after a keep-alive interval without one."""
        with self._lock:
            self._lock.wait_for(lambda: self._actions or self._stopping.is_set(), self.keepalive_interval)
            return self._actions.popleft() if self._actions else None

    def _rules_get(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            rules = list(self._state.rules.values())
        if "ids" in query:
            wanted = set(query["ids"].split(","))
            rules = [rule for rule in rules if rule["id"] in wanted]
        body: dict[str, Any] = {"meta": {"sent": _now(), "result_count": len(rules)}}
        if rules:
            body["data"] = [dict(rule) for rule in rules]
        return 200, body

    def _rules_post(self, payload: Any, dry_run: bool) -> tuple[int, dict[str, Any]]:
        if not isinstance(payload, dict) or ("add" in payload) == ("delete" in payload):
            return 400, _invalid("Send exactly one of `add` or `delete`.")
        if "delete" in payload:
            return self._rules_delete(payload["delete"].get("ids") or [], dry_run)
        return self._rules_add(payload["add"], dry_run)

    def _rules_add(self, add: list[dict[str, str]], dry_run: bool) -> tuple[int, dict[str, Any]]:
        with self._lock:
            existing = {rule["value"]: rule["id"] for rule in self._state.rules.values()}
            invalid, duplicates, accepted = [], [], []
            for rule in add:
                value = rule.get("value") or ""
                if not value.strip() or len(value) > self.max_rule_length:
                    invalid.append({"value": value, "title": "UnprocessableEntity",
                                    "type": f"{PROBLEMS}/invalid-rules",
                                    "details": [f"Rule must be 1 to {self.max_rule_length} characters long"
                                                f" (got {len(value)})."]})
                elif value in existing or value in {r["value"] for r in accepted}:
                    duplicates.append({"value": value, "id": existing.get(value), "title": "DuplicateRule",
                                       "type": f"{PROBLEMS}/duplicate-rules"})
                else:
                    accepted.append({"value": value, **({"tag": rule["tag"]} if rule.get("tag") else {})})
            summary = {"created": 0, "not_created": len(add), "valid": len(add) - len(invalid),
                       "invalid": len(invalid)}
            if invalid:  # all or nothing, as X does for invalid rules
                return 400, {"errors": invalid, "meta": {"sent": _now(), "summary": summary}}
            if len(self._state.rules) + len(accepted) > self.max_rules:
                return 400, {"errors": [problem("RulesCapExceeded",
                                                f"Rule cap of {self.max_rules} rules exceeded.", "rule-cap")],
                             "meta": {"sent": _now(), "summary": summary}}
            created = []
            for rule in accepted:
                rule = {"id": str(next(self._rule_ids)), **rule}
                created.append(rule)
                if not dry_run:
                    self._state.rules[rule["id"]] = rule
        summary.update(created=len(created), not_created=len(add) - len(created))
        body: dict[str, Any] = {"meta": {"sent": _now(), "summary": summary}}
        if created:
            body["data"] = created
        if duplicates:
            body["errors"] = duplicates
        return 201, body

    def _rules_delete(self, ids: list[str], dry_run: bool) -> tuple[int, dict[str, Any]]:
        with self._lock:
            unknown = [rule_id for rule_id in ids if rule_id not in self._state.rules]
            if not dry_run:
                for rule_id in ids:
                    self._state.rules.pop(rule_id, None)
        body: dict[str, Any] = {"meta": {"sent": _now(), "summary": {"deleted": len(ids) - len(unknown),
                                                                     "not_deleted": len(unknown)}}}
        if unknown:
            body["errors"] = [problem("Not Found Error", f"Rule {rule_id} does not exist.",
                                      "resource-not-found", parameters={"ids": [rule_id]})
                              for rule_id in unknown]
        return 200, body

    def _search(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not query.get("query"):
            return 400, _invalid("The `query` parameter is required.")
        max_results = int(query.get("max_results", "10"))
        if not 10 <= max_results <= 100:
            return 400, _invalid("`max_results` must be between 10 and 100.")
        since_id = int(query.get("since_id", "0"))
        until_id = int(query["next_token"]) if query.get("next_token") else None  # a stable cursor
        with self._lock:
            ids = sorted((i for i in self._state.recent
                          if i > since_id and (until_id is None or i < until_id)), reverse=True)
            page = [self._state.recent[i] for i in ids[:max_results]]
        meta: dict[str, Any] = {"result_count": len(page)}
        if not page:
            return 200, {"meta": meta}
        meta.update(newest_id=page[0]["data"]["id"], oldest_id=page[-1]["data"]["id"])
        if len(ids) > max_results:
            meta["next_token"] = page[-1]["data"]["id"]
        users = {u["id"]: u for item in page for u in item.get("includes", {}).get("users", [])}
        return 200, {"data": [item["data"] for item in page], "includes": {"users": list(users.values())},
                     "meta": meta}

    def _lookup(self, tweet_id: str) -> tuple[int, dict[str, Any]]:
        """X answers a lookup of a tweet it does not have with 200 and an `errors` list."""
        with self._lock:
            item = self._state.published.get(int(tweet_id))
        if item is None:
            return 200, {"errors": [{"value": tweet_id, "detail": f"Could not find tweet with id: [{tweet_id}].",
                                     "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                                     "resource_id": tweet_id, "type": f"{PROBLEMS}/resource-not-found"}]}
        return 200, {"data": item["data"], "includes": item.get("includes", {})}

    def _retweet(self, user_id: str, payload: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(payload, dict) or not str(payload.get("tweet_id", "")).isdigit():
            return 400, _invalid("`tweet_id` is required.")
        with self._lock:
            if self.retweet_limit is not None and len(self._state.retweets) >= self.retweet_limit:
                return 429, problem("Too Many Requests", "Too Many Requests", "about:blank", 429)
            self._state.retweets.append((user_id, str(payload["tweet_id"])))
        return 200, {"data": {"retweeted": True}}


def _invalid(detail: str) -> dict[str, Any]:
    return problem("Invalid Request", detail, "invalid-request")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _handler_for(api: FakeXApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked transfer encoding needs 1.1

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            arrived = time.time()
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = self._route(method, parts.path, query, body)
            api._record(RecordedRequest(method, parts.path, query, dict(self.headers.items()), body,
                                        arrived, status, headers))
            if status == 200 and method == "GET" and parts.path == STREAM_PATH:
                self._stream()
            else:
                self._send_json(status, payload, headers)

        def _route(self, method: str, path: str, query: dict[str, str],
                   body: bytes) -> tuple[int, dict[str, str], Any]:
            auth = self.headers.get("Authorization", "")
            user_context = auth.startswith("OAuth ")  # tweepy signs user-context calls with OAuth 1.0a
            if auth != f"Bearer {api.bearer_token}" and not user_context:
                return 401, {}, problem("Unauthorized", "Unauthorized", "about:blank", 401)
            try:
                payload = json.loads(body) if body else None
            except json.JSONDecodeError:
                return 400, {}, _invalid("Body is not JSON.")
            endpoint, handle = self._endpoint(method, path, query, payload)
            if handle is None:
                return 404, {}, problem("Not Found Error", f"No route {method} {path}.", "resource-not-found")
            rejected = api._rejection(endpoint)
            if rejected is not None:
                return rejected
            if endpoint == "stream" and not api._open_stream():
                return 429, {}, problem("ConnectionException",
                                        "This stream is currently at the maximum allowed connection limit.",
                                        "streaming-connection", connection_issue="TooManyConnections")
            status, response = handle()
            return status, {}, response

        def _endpoint(self, method: str, path: str, query: dict[str, str], payload: Any):
            if path == RULES_PATH and method == "GET":
                return "rules", lambda: api._rules_get(query)
            if path == RULES_PATH and method == "POST":
                return "rules", lambda: api._rules_post(payload, query.get("dry_run") == "true")
            if path == STREAM_PATH and method == "GET":
                return "stream", lambda: (200, None)
            if path == RECENT_PATH and method == "GET":
                return "search", lambda: api._search(query)
            if path == ME_PATH and method == "GET":
                return "me", lambda: (200, {"data": dict(api.me)})
            lookup = _TWEET_PATH.fullmatch(path)
            if lookup and method == "GET":
                return "lookup", lambda: api._lookup(lookup.group(1))
            retweet = _RETWEETS_PATH.fullmatch(path)
            if retweet and method == "POST":
                return "retweet", lambda: api._retweet(retweet.group(1), payload)
            return "", None

        def _send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self) -> None:
            self.close_connection = True
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while not api._stopping.is_set():
                    action = api._next_action()
                    if action is _DROP:
                        return  # no terminating chunk: the client sees a truncated body
                    self._chunk(b"\r\n" if action is None else action + b"\r\n")
            except OSError:  # the client went away
                pass
            finally:
                api._close_stream()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    return Handler
