"""The one normalized tweet schema that every source produces and every stage reads.

Reads X API v2 responses (`data` + `includes`) and v1.1 status objects (with
`extended_tweet.full_text`, `entities.urls[].expanded_url`, `retweeted_status`), and the
project's own serialized form. Anything that cannot become a valid tweet raises
`MalformedTweet` with a reason, so that callers quarantine it instead of losing it.

Rules for values that parse but cannot be stored (the stream quarantines such a message, with
this reason, instead of failing its batch):
- a NUL character (U+0000) or an unpaired surrogate (U+D800–U+DFFF) in a field stored as a
  column (text, author, lang, hashtags, mentions, links): PostgreSQL text cannot hold NUL, and
  a lone surrogate is not UTF-8. No escape is made: such a tweet is not one X sends, and
  changing its text would change what the classifier reads. The raw payload column keeps
  JSON's own `\\u0000` escape, which PostgreSQL's `json` type stores as written.
- `created_at` outside [2006-03-21, 2100-01-01) UTC (X's first post; a bound well inside
  what Python and PostgreSQL hold): `created_at out of range`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

MAX_TEXT_CHARS = 10_000  # X allows 25,000 for long posts; beyond this it is not a tweet we want
MAX_MESSAGE_BYTES = 256 * 1024
MAX_TWEET_ID = 2**63 - 1  # stored as BIGINT
MIN_CREATED_AT = datetime(2006, 3, 21, tzinfo=UTC)  # the first post on X
MAX_CREATED_AT = datetime(2100, 1, 1, tzinfo=UTC)
_V1_DATE = "%a %b %d %H:%M:%S %z %Y"
_HASHTAG = re.compile(r"(?:^|[^\w&])[#＃](\w+)", re.UNICODE)
_MENTION = re.compile(r"(?:^|[^\w])@(\w{1,15})")
_URL = re.compile(r"https?://\S+")


class MalformedTweet(ValueError):
    """The payload is not a usable tweet; `reason` says why (stored with quarantined input)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MalformedInput:
    """Input a source could not turn into a tweet, kept as it came, with the reason."""

    raw: bytes
    reason: str


@dataclass(frozen=True)
class TweetUrl:
    url: str  # as posted, usually a t.co link
    expanded_url: str | None = None
    display_url: str | None = None


@dataclass(frozen=True)
class Tweet:
    id: int
    text: str
    created_at: datetime
    author_id: str | None = None
    author_handle: str | None = None
    lang: str | None = None
    is_retweet: bool = False
    is_reply: bool = False
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    urls: tuple[TweetUrl, ...] = ()
    source: str = "unknown"  # which reader built it: v1.1, v2, text
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists for arrays, the id as a string (JavaScript and Spark readers lose
        int64 precision), UTC ISO time; `raw` is shared, not copied."""
        return {
            "id": str(self.id),
            "text": self.text,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "author_id": self.author_id,
            "author_handle": self.author_handle,
            "lang": self.lang,
            "is_retweet": self.is_retweet,
            "is_reply": self.is_reply,
            "hashtags": list(self.hashtags),
            "mentions": list(self.mentions),
            "urls": [{"url": u.url, "expanded_url": u.expanded_url, "display_url": u.display_url}
                     for u in self.urls],
            "source": self.source,
            "raw": self.raw,
        }

    def to_json(self) -> bytes:
        """The Kafka message value (UTF-8 JSON)."""
        return msgspec.json.encode(self.to_dict())


def _tweet_id(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise MalformedTweet("missing id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise MalformedTweet(f"id is not a whole number: {str(value)[:40]!r}")
    if not 0 < number <= MAX_TWEET_ID:
        raise MalformedTweet(f"id out of range: {number}")
    return number


def _text(value: Any) -> str:
    if value is None:
        raise MalformedTweet("missing text")
    if not isinstance(value, str):
        raise MalformedTweet(f"text is not a string but {type(value).__name__}")
    if not value.strip():
        raise MalformedTweet("empty text")
    if len(value) > MAX_TEXT_CHARS:
        raise MalformedTweet(f"text too long: {len(value)} characters (max {MAX_TEXT_CHARS})")
    return value


def _timestamp(value: Any) -> datetime:
    if value is None:
        raise MalformedTweet("missing created_at")
    if not isinstance(value, str):
        raise MalformedTweet(f"created_at is not a string but {type(value).__name__}")
    try:
        if value[:3].isalpha():  # v1.1: "Sun Apr 05 10:46:44 +0000 2020"
            parsed = datetime.strptime(value, _V1_DATE)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedTweet(f"created_at is not a date: {value[:40]!r}") from exc
    try:
        utc = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise MalformedTweet(f"created_at out of range: {value[:40]!r}") from exc
    if not MIN_CREATED_AT <= utc < MAX_CREATED_AT:
        raise MalformedTweet(f"created_at out of range: {value[:40]!r} (expected 2006-03-21 to 2099)")
    return utc


def _unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store `value` as text, or None."""
    if "\x00" in value:
        return "a NUL character (U+0000), which PostgreSQL text cannot store"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "an unpaired surrogate, which is not UTF-8"
    return None


def check_storable(tweet: Tweet) -> Tweet:
    """The tweet, or MalformedTweet naming the first stored field PostgreSQL would refuse (or
    that is not a string: v1.1 and v2 payloads are read leniently, field by field)."""
    fields = [("text", tweet.text), ("author_id", tweet.author_id), ("author_handle", tweet.author_handle),
              ("lang", tweet.lang), *(("hashtags", h) for h in tweet.hashtags),
              *(("mentions", m) for m in tweet.mentions),
              *(("urls", u) for link in tweet.urls for u in (link.url, link.expanded_url, link.display_url))]
    for name, value in fields:
        if value is None:
            continue
        if not isinstance(value, str):
            raise MalformedTweet(f"{name} is not a string but {type(value).__name__}")
        problem = _unstorable(value)
        if problem:
            raise MalformedTweet(f"{name} contains {problem}")
    return tweet


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _unique(items: list[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item and isinstance(item, str)))


def _entity_urls(entities: list[Any], *expanded_keys: str) -> tuple[TweetUrl, ...]:
    urls = {}
    for entity in entities:
        if isinstance(entity, dict) and isinstance(entity.get("url"), str):
            expanded = next((entity[k] for k in expanded_keys if isinstance(entity.get(k), str)), None)
            urls.setdefault(entity["url"], TweetUrl(entity["url"], expanded, entity.get("display_url")))
    return tuple(urls.values())


# --- v1.1 status objects -------------------------------------------------------------


def _v1_full(status: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Full text and its entities: `extended_tweet` when the status is truncated."""
    extended = status.get("extended_tweet")
    if isinstance(extended, dict) and extended.get("full_text"):
        return extended["full_text"], extended.get("entities")
    return status.get("full_text") or status.get("text"), status.get("entities")


def normalize_v1(status: dict[str, Any]) -> Tweet:
    tweet_id = _tweet_id(status.get("id_str") or status.get("id"))
    user = status.get("user") or {}
    original = status.get("retweeted_status")
    if isinstance(original, dict):
        # A retweet's own text is "RT @x: " plus the original cut at 140 characters.
        body, entities = _v1_full(original)
        original_handle = (original.get("user") or {}).get("screen_name")
        text = f"RT @{original_handle}: {_text(body)}" if original_handle else _text(body)
    else:
        text, entities = _v1_full(status)
    text = _text(text)
    if isinstance(entities, dict):
        # Links and media links (pic.twitter.com → twitter.com/.../photo/1), expanded.
        links = [*(entities.get("urls") or []), *(entities.get("media") or [])]
        urls = _entity_urls(links, "expanded_url")
        hashtags = _unique([h.get("text") for h in entities.get("hashtags") or [] if isinstance(h, dict)])
        mentions = _unique([m.get("screen_name") for m in entities.get("user_mentions") or []
                            if isinstance(m, dict)])
    else:
        urls, hashtags, mentions = _urls_from(text), _hashtags_from(text), _mentions_from(text)
    return Tweet(
        id=tweet_id,
        text=text,
        created_at=_timestamp(status.get("created_at")),
        author_id=_str_or_none(user.get("id_str") or user.get("id")),
        author_handle=user.get("screen_name"),
        lang=status.get("lang"),
        is_retweet=isinstance(original, dict),
        is_reply=status.get("in_reply_to_status_id_str") is not None
        or status.get("in_reply_to_status_id") is not None,
        hashtags=hashtags,
        mentions=mentions,
        urls=urls,
        source="v1.1",
        raw=status,
    )


# --- X API v2 ------------------------------------------------------------------------


def normalize_v2(response: dict[str, Any]) -> Tweet:
    """One v2 stream or lookup item: `{"data": {...}, "includes": {"users": [...], "tweets": [...]}}`."""
    data = response.get("data")
    if not isinstance(data, dict):
        raise MalformedTweet("v2 payload without a `data` object")
    includes = response.get("includes") or {}
    users = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, dict)}
    referenced = {t.get("id"): t for t in includes.get("tweets") or [] if isinstance(t, dict)}
    references = {r.get("type"): r.get("id")
                  for r in data.get("referenced_tweets") or [] if isinstance(r, dict)}

    text_source = data
    retweeted = referenced.get(references.get("retweeted"))
    if retweeted:
        text_source = retweeted  # v2 also truncates the retweet's own text
    body = (text_source.get("note_tweet") or {}).get("text") or text_source.get("text")
    text = _text(body)
    if retweeted:
        handle = (users.get(retweeted.get("author_id")) or {}).get("username")
        text = f"RT @{handle}: {text}" if handle else text

    entities = (text_source.get("note_tweet") or {}).get("entities") or text_source.get("entities")
    if isinstance(entities, dict):
        urls = _entity_urls(entities.get("urls") or [], "unwound_url", "expanded_url")
        hashtags = _unique([h.get("tag") for h in entities.get("hashtags") or [] if isinstance(h, dict)])
        mentions = _unique([m.get("username") for m in entities.get("mentions") or [] if isinstance(m, dict)])
    else:
        urls, hashtags, mentions = _urls_from(text), _hashtags_from(text), _mentions_from(text)
    author = users.get(data.get("author_id")) or {}
    return Tweet(
        id=_tweet_id(data.get("id")),
        text=text,
        created_at=_timestamp(data.get("created_at")),
        author_id=_str_or_none(data.get("author_id")),
        author_handle=author.get("username"),
        lang=data.get("lang"),
        is_retweet=bool(retweeted) or "retweeted" in references,
        is_reply="replied_to" in references or data.get("in_reply_to_user_id") is not None,
        hashtags=hashtags,
        mentions=mentions,
        urls=urls,
        source="v2",
        raw=response,
    )


# --- text only and the project's own form ----------------------------------------------


def _hashtags_from(text: str) -> tuple[str, ...]:
    return _unique(_HASHTAG.findall(text))


def _mentions_from(text: str) -> tuple[str, ...]:
    return _unique(_MENTION.findall(text))


def _urls_from(text: str) -> tuple[TweetUrl, ...]:
    return tuple(TweetUrl(url=u.rstrip(".,;:!?)…")) for u in _unique(_URL.findall(text)))


def from_text(text: Any, tweet_id: int, created_at: datetime) -> Tweet:
    """A plain `{"text": ...}` line (replay files): entities are extracted from the text."""
    body = _text(text)
    return Tweet(
        id=_tweet_id(tweet_id), text=body, created_at=created_at,
        is_retweet=body.startswith("RT @"), hashtags=_hashtags_from(body),
        mentions=_mentions_from(body), urls=_urls_from(body), source="text",
        raw={"text": body},
    )


def from_dict(data: dict[str, Any]) -> Tweet:
    """The project's serialized form (`Tweet.to_dict`), validated field by field."""
    urls = data.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, dict) and isinstance(u.get("url"), str)
                                             for u in urls):
        raise MalformedTweet("urls is not a list of {url, expanded_url} objects")
    for key in ("hashtags", "mentions"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise MalformedTweet(f"{key} is not a list of strings")
    for key in ("author_id", "author_handle", "lang"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise MalformedTweet(f"{key} is not a string")
    raw = data.get("raw") or {}
    if not isinstance(raw, dict):
        raise MalformedTweet("raw is not an object")
    return Tweet(
        id=_tweet_id(data.get("id")),
        text=_text(data.get("text")),
        created_at=_timestamp(data.get("created_at")),
        author_id=data.get("author_id"),
        author_handle=data.get("author_handle"),
        lang=data.get("lang"),
        is_retweet=bool(data.get("is_retweet")),
        is_reply=bool(data.get("is_reply")),
        hashtags=tuple(data.get("hashtags") or ()),
        mentions=tuple(data.get("mentions") or ()),
        urls=tuple(TweetUrl(url=u["url"], expanded_url=u.get("expanded_url"),
                            display_url=u.get("display_url")) for u in urls),
        source=str(data.get("source") or "unknown"),
        raw=raw,
    )


def normalize(payload: dict[str, Any]) -> Tweet:
    """Any supported payload: v2 (`data`), v1.1 (`id_str`/`user`) or the normalized form."""
    if not isinstance(payload, dict):
        raise MalformedTweet(f"payload is not a JSON object but {type(payload).__name__}")
    try:
        if "data" in payload:
            return check_storable(normalize_v2(payload))
        if "id_str" in payload or "user" in payload or "extended_tweet" in payload:
            return check_storable(normalize_v1(payload))
        return check_storable(from_dict(payload))
    except (AttributeError, TypeError) as exc:  # a nested field of the wrong type, e.g. "user": "bob"
        raise MalformedTweet(f"unexpected structure: {exc}") from exc


def parse_message(value: bytes | str | None) -> Tweet:
    """A Kafka message value → Tweet, or MalformedTweet with the reason."""
    if value is None:
        raise MalformedTweet("empty message")
    if len(value) > MAX_MESSAGE_BYTES:
        raise MalformedTweet(f"message too large: {len(value)} bytes (max {MAX_MESSAGE_BYTES})")
    try:
        payload = msgspec.json.decode(value.decode() if isinstance(value, bytes) else value)
    except UnicodeDecodeError as exc:
        raise MalformedTweet(f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except msgspec.MsgspecError as exc:  # DecodeError, and ValidationError for a number like 1e400
        raise MalformedTweet(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedTweet("invalid JSON: nested too deeply") from exc
    return normalize(payload)
