"""The links of a tweet: canonical form, domain, and whether (and how) they point back at X.

Pure functions, standard library only, no I/O: the classify job calls `extract_urls` for every
AI tweet, and the retweet action decides on the records it returns.

The canonical form is an identity key for "the same page", kept deterministic and faithful
enough to open (RFC 3986 section 6 normalization plus tracking-parameter removal):

- only absolute `http` / `https` URLs; anything else (`javascript:`, `data:`, `ftp:`, no
  scheme, no host, a bad port or host, control characters, a backslash in the host part,
  longer than `MAX_URL_CHARS`)
  has no canonical form (`None`);
- scheme and host lower-cased, the host IDNA-encoded (punycode, Python's IDNA 2003 codec)
  without a trailing dot, IPv6 literals compressed; user names and passwords dropped (never stored, and
  `https://bank.com@evil.com` is then plainly evil.com); the default port dropped;
- the scheme is kept as posted (http is not upgraded) and so is `www.`: both can name
  another server. `domain_of` drops `www.`, so grouping by domain is not affected;
- percent-escapes normalized: unreserved characters decoded, hex upper-cased, anything
  that must be escaped (spaces, non-ASCII) escaped as UTF-8; `.` and `..` segments
  resolved; a trailing slash removed except for the root path `/`;
- the fragment dropped; tracking parameters dropped (`TRACKING_PARAMETERS`, every `utm_*`,
  and the share parameters of X and YouTube on their own hosts only: `t` is a timestamp
  elsewhere and `s` a search); the remaining parameters sorted by name, stably, so that
  repeated names keep their order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from ai_tweets.schema import Tweet

MAX_URL_CHARS = 4096  # longer is not a link anyone posted by hand; t.co accepts far less

TwitterKind = Literal["status", "photo", "video", "quote"]

TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "ref_src", "ref_url", "trk", "mkt_tok", "_hsenc", "_hsmi", "__twitter_impression",
})
# Share parameters that only track on their own sites (elsewhere `t` or `s` may carry meaning).
_SITE_TRACKING_PARAMETERS = {
    "twitter.com": frozenset({"s", "t"}),
    "x.com": frozenset({"s", "t"}),
    "youtube.com": frozenset({"si", "feature", "pp"}),
    "youtu.be": frozenset({"si", "feature"}),
    "open.spotify.com": frozenset({"si"}),
}
TWITTER_DOMAINS = ("twitter.com", "x.com", "t.co", "twimg.com")
_MEDIA_HOSTS = frozenset({"pic.twitter.com", "pic.x.com"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

_UNRESERVED = r"A-Za-z0-9._~\-"  # a regex character class body
_PATH_SAFE = "!$&'()*+,;=:@/"
_QUERY_KEY_SAFE = "!$'()*+,;:@/?"
_QUERY_VALUE_SAFE = _QUERY_KEY_SAFE + "="
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_STATUS_ID = re.compile(r"[0-9]{1,19}")


def _escaper(safe: str) -> re.Pattern[str]:
    """Matches each percent-escape and each character outside unreserved + `safe`."""
    return re.compile(rf"%([0-9A-Fa-f]{{2}})|[^{_UNRESERVED}{re.escape(safe)}]")


_PATH_ESCAPES = _escaper(_PATH_SAFE)
_KEY_ESCAPES = _escaper(_QUERY_KEY_SAFE)
_VALUE_ESCAPES = _escaper(_QUERY_VALUE_SAFE)


def _fix_escape(match: re.Match[str]) -> str:
    hex_digits = match.group(1)
    if hex_digits is None:  # a character that must be escaped (a lone `%` becomes %25)
        return "".join(f"%{byte:02X}" for byte in match.group(0).encode("utf-8"))
    char = chr(int(hex_digits, 16))
    return char if re.fullmatch(f"[{_UNRESERVED}]", char) else f"%{hex_digits.upper()}"


def _normalize_escapes(text: str, escapes: re.Pattern[str]) -> str:
    return escapes.sub(_fix_escape, text)


def _remove_dot_segments(path: str) -> str:
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    return "/" + "/".join(segments)


def _host(hostname: str | None) -> str | None:
    """The lower-case ASCII host, IDNA-encoded; None when it is not a valid host name or IP."""
    if not hostname or "%" in hostname:
        return None
    if ":" in hostname:  # urlsplit only lets a colon through inside brackets: IPv6
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    host = hostname.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower()
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        return None
    return host


def _site(host: str) -> str:
    return host.removeprefix("www.")


def _matches(host: str, domain: str) -> bool:
    """`host` is `domain` or one of its subdomains."""
    return host == domain or host.endswith("." + domain)


def _query(query: str, host: str) -> str:
    site = _site(host)
    site_tracking = next((names for domain, names in _SITE_TRACKING_PARAMETERS.items()
                          if _matches(site, domain)), frozenset())
    kept = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = _normalize_escapes(key, _KEY_ESCAPES)
        name = key.lower()
        if name.startswith("utm_") or name in TRACKING_PARAMETERS or name in site_tracking:
            continue
        kept.append((key, f"{key}{sep}{_normalize_escapes(value, _VALUE_ESCAPES)}"))
    kept.sort(key=lambda item: item[0])  # stable: repeated names keep their order
    return "&".join(text for _, text in kept)


def canonical_url(url: str) -> str | None:
    """The canonical form of an http(s) URL (see the module docstring), or None if it has none."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unbalanced IPv6 bracket, a port that is not a number in range
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or port == 0 or "\\" in parts.netloc:
        return None  # browsers read a backslash as `/`: http://evil.com\@good.com/ opens evil.com
    host = _host(parts.hostname)
    if host is None:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path or "/", _PATH_ESCAPES))
    path = path.rstrip("/") or "/"
    query = _query(parts.query, host)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _parts(url: str) -> SplitResult | None:
    """The canonical URL, split; None if it has no canonical form."""
    canonical = canonical_url(url)
    return urlsplit(canonical) if canonical else None


def _host_of(parts: SplitResult) -> str:
    """The host of a canonical URL (its netloc without the port)."""
    return parts.netloc if parts.netloc.endswith("]") else parts.netloc.rsplit(":", 1)[0]


def _domain(host: str) -> str:
    return host if host.startswith("[") else _site(host)


def _is_twitter(host: str) -> bool:
    return any(_matches(host, domain) for domain in TWITTER_DOMAINS)


def domain_of(url: str) -> str | None:
    """The host without `www.` (e.g. `arxiv.org`, `blog.example.com`), or None if not a web link."""
    parts = _parts(url)
    return _domain(_host_of(parts)) if parts else None


def is_twitter_url(url: str) -> bool:
    """A link to X itself: twitter.com, x.com, t.co, twimg.com or any of their subdomains
    (mobile., pic., pbs.). An unexpanded t.co link counts: where it leads is unknown."""
    parts = _parts(url)
    return parts is not None and _is_twitter(_host_of(parts))


def _status_link(parts: SplitResult) -> tuple[TwitterKind, int] | None:
    """(kind, status id) of a canonical link to a post or its media on X; pic.twitter.com has id 0."""
    host = _host_of(parts)
    if host in _MEDIA_HOSTS:
        return "photo", 0
    if not (_matches(host, "twitter.com") or _matches(host, "x.com")):
        return None
    segments = [segment.lower() for segment in parts.path.split("/")[1:]]
    for start in range(min(3, len(segments))):  # /user/status/N, /i/status/N, /i/web/status/N
        if segments[start] in ("status", "statuses") and start + 1 < len(segments):
            if not _STATUS_ID.fullmatch(segments[start + 1]):
                return None
            rest = segments[start + 2:start + 3]
            kind: TwitterKind = "photo" if rest == ["photo"] else "video" if rest == ["video"] else "status"
            return kind, int(segments[start + 1])
    return None


def _kind(link: tuple[TwitterKind, int] | None, quoted: Collection[int]) -> TwitterKind | None:
    if link is None:
        return None
    kind, status_id = link
    return "quote" if kind == "status" and status_id in quoted else kind


def twitter_link_kind(url: str, quoted_ids: Collection[int] = ()) -> TwitterKind | None:
    """"photo" / "video" for media links, "quote" for a link to one of `quoted_ids` (the posts
    the tweet quotes), "status" for any other post, None for anything else."""
    parts = _parts(url)
    return _kind(_status_link(parts), quoted_ids) if parts else None


@dataclass(frozen=True)
class UrlRecord:
    """One link of a tweet, as a `tweet_urls` row needs it."""

    url: str  # as posted, usually a t.co link
    expanded_url: str  # where it leads, or the posted URL when X gave no usable expansion
    canonical_url: str
    domain: str
    is_twitter: bool
    twitter_kind: TwitterKind | None


def quoted_ids(tweet: Tweet) -> frozenset[int]:
    """Ids of the posts `tweet` quotes, from its raw payload (v1.1 or v2)."""
    raw: Any = tweet.raw
    ids: set[Any] = set()
    if isinstance(raw, dict):
        ids.add(raw.get("quoted_status_id_str") or raw.get("quoted_status_id"))
        data = raw.get("data")
        if isinstance(data, dict) and isinstance(data.get("referenced_tweets"), list):
            ids.update(ref.get("id") for ref in data["referenced_tweets"]
                       if isinstance(ref, dict) and ref.get("type") == "quoted")
    return frozenset(int(i) for i in ids if isinstance(i, int | str) and _STATUS_ID.fullmatch(str(i)))


def _first_canonical(*urls: str | None) -> tuple[str, str] | None:
    """(url, its canonical form) of the first of `urls` that has one."""
    for url in urls:
        canonical = canonical_url(url) if url else None
        if canonical is not None:
            return url, canonical
    return None


def extract_urls(tweet: Tweet) -> list[UrlRecord]:
    """The tweet's links, in order, one per canonical URL.

    Left out: links with no canonical form (neither the expanded nor the posted URL is an
    http(s) link), and the "read more" link X appends to a cut text, a link to the tweet
    itself (`twitter.com/i/web/status/<its own id>`); links to its own photos and videos stay.
    """
    quoted = quoted_ids(tweet)
    records: dict[str, UrlRecord] = {}
    for link in tweet.urls:
        found = _first_canonical(link.expanded_url, link.url)
        if found is None:
            continue
        target, canonical = found
        parts = urlsplit(canonical)
        status = _status_link(parts)
        if canonical in records or status == ("status", tweet.id):
            continue
        host = _host_of(parts)
        records[canonical] = UrlRecord(
            url=link.url, expanded_url=target, canonical_url=canonical, domain=_domain(host),
            is_twitter=_is_twitter(host), twitter_kind=_kind(status, quoted),
        )
    return list(records.values())
