"""Links of a tweet: canonical form, domain, links back to X, and the per-tweet records."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ai_tweets.schema import Tweet, TweetUrl, normalize, normalize_v2
from ai_tweets.urls import (
    MAX_URL_CHARS,
    UrlRecord,
    canonical_url,
    domain_of,
    extract_urls,
    is_twitter_url,
    quoted_ids,
    twitter_link_kind,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize(("url", "canonical"), [
    # scheme, host, port, fragment, trailing slash
    ("HTTPS://WWW.Example.COM/Path/", "https://www.example.com/Path"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com/", "https://example.com/"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:80/a", "https://example.com:80/a"),
    ("http://example.com:8080/a/", "http://example.com:8080/a"),
    ("https://example.com/a#section-2", "https://example.com/a"),
    ("https://example.com/#", "https://example.com/"),
    ("http://example.com/a", "http://example.com/a"),  # http is not upgraded
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://example.com./a", "https://example.com/a"),
    # tracking parameters, sorting
    ("https://example.com/a?utm_source=twitter&utm_medium=social&UTM_Campaign=x", "https://example.com/a"),
    ("https://example.com/a?b=2&a=1&fbclid=xyz&gclid=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?igshid=1&mc_cid=2&mc_eid=3&ref_src=twsrc%5Etfw&trk=4&id=7&__twitter_impression=true",
     "https://example.com/a?id=7"),
    ("https://example.com/a?tag=x&tag=a&b=1", "https://example.com/a?b=1&tag=x&tag=a"),  # stable
    ("https://example.com/a?", "https://example.com/a"),
    ("https://example.com/a?&&x=1&", "https://example.com/a?x=1"),
    ("https://example.com/a?flag&x=", "https://example.com/a?flag&x="),
    ("https://example.com/a?x=a=b", "https://example.com/a?x=a=b"),
    # share parameters only on their own sites
    ("https://twitter.com/user/status/1?s=20&t=AbC", "https://twitter.com/user/status/1"),
    ("https://mobile.x.com/user/status/1?s=46", "https://mobile.x.com/user/status/1"),
    ("https://example.com/search?s=llm&t=5", "https://example.com/search?s=llm&t=5"),
    ("https://youtu.be/abc?si=Xy_z&t=42", "https://youtu.be/abc?t=42"),
    ("https://www.youtube.com/watch?v=abc&si=q&feature=shared", "https://www.youtube.com/watch?v=abc"),
    ("https://example.com/p?si=1", "https://example.com/p?si=1"),
    # percent-encoding and dot segments
    ("https://example.com/%7euser/%41b", "https://example.com/~user/Ab"),
    ("https://example.com/a%2fb%2a", "https://example.com/a%2Fb%2A"),
    ("https://example.com/a b", "https://example.com/a%20b"),
    ("https://example.com/caf\u00e9?q=\u00fcber", "https://example.com/caf%C3%A9?q=%C3%BCber"),
    ("https://example.com/caf%c3%a9", "https://example.com/caf%C3%A9"),
    ("https://example.com/100%", "https://example.com/100%25"),
    ("https://example.com/a?q=x%26y&r=%3d", "https://example.com/a?q=x%26y&r=%3D"),
    ("https://example.com/a/./b/../c/", "https://example.com/a/c"),
    ("https://example.com/../../a", "https://example.com/a"),
    ("https://example.com/%2E%2E/a", "https://example.com/a"),
    # hosts
    ("https://M\u00fcller.de/x", "https://xn--mller-kva.de/x"),
    ("https://xn--mller-kva.de/x", "https://xn--mller-kva.de/x"),
    ("http://\u2603.net", "http://xn--n3h.net/"),
    ("http://[2001:DB8:0:0::1]:8443/x", "http://[2001:db8::1]:8443/x"),
    ("http://[::1]/", "http://[::1]/"),
    ("http://127.0.0.1:5000/api", "http://127.0.0.1:5000/api"),
    ("https://user:secret@example.com/a", "https://example.com/a"),
    ("https://bank.com@evil.com/login", "https://evil.com/login"),
    ("https://sub_domain.example.com/", "https://sub_domain.example.com/"),
])
def test_canonical_url(url, canonical):
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical  # idempotent


@pytest.mark.parametrize("url", [
    "javascript:alert(1)",
    "JavaScript://example.com/%0Aalert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "mailto:someone@example.com",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "example.com/no-scheme",
    "www.example.com",
    "//example.com/protocol-relative",
    "/just/a/path",
    "https://",
    "https:///path-without-host",
    "http://exa mple.com/",
    "http://-leading-hyphen.com/",
    "http://bad..dots.com/",
    "http://example.com:99999/",
    "http://example.com:0/",
    "http://example.com:-1/",
    "http://example.com:port/",
    "http://[::1/",
    "http://[not:an:ip]/",
    "http://[fe80::1%25eth0]/",
    "http://exa%6Dple.com/",
    "http://evil.com\\@good.com/",
    "https://example.com/a\nb",
    "https://example.com/\x00",
    "https://" + "a" * 64 + ".com/",  # a label longer than 63
    "https://" + "x" * MAX_URL_CHARS,
    "",
    "   ",
])
def test_what_is_not_a_web_link_has_no_canonical_form(url):
    assert canonical_url(url) is None
    assert domain_of(url) is None and is_twitter_url(url) is False and twitter_link_kind(url) is None


def test_non_strings_have_no_canonical_form():
    assert canonical_url(None) is None  # type: ignore[arg-type]
    assert canonical_url(42) is None  # type: ignore[arg-type]


def test_a_long_but_reasonable_url_is_kept():
    url = "https://example.com/" + "a" * 3000 + "?q=" + "b" * 500
    assert canonical_url(url) == url


@pytest.mark.parametrize(("url", "domain"), [
    ("https://www.example.com/a", "example.com"),
    ("https://WWW.Blog.Example.com/a", "blog.example.com"),
    ("https://arxiv.org/abs/1", "arxiv.org"),
    ("https://example.com:8443/", "example.com"),
    ("http://[::1]:80/", "[::1]"),
    ("https://www.m\u00fcller.de/", "xn--mller-kva.de"),
    ("https://wwwexample.com/", "wwwexample.com"),
])
def test_domain_of(url, domain):
    assert domain_of(url) == domain


@pytest.mark.parametrize(("url", "twitter"), [
    ("https://twitter.com/user", True),
    ("https://x.com/user/status/1", True),
    ("https://t.co/AbC123", True),
    ("https://mobile.twitter.com/user/status/1", True),
    ("https://pic.twitter.com/AbC", True),
    ("https://pbs.twimg.com/media/x.jpg", True),
    ("https://WWW.Twitter.com/", True),
    ("https://example.com/", False),
    ("https://nottwitter.com/", False),
    ("https://twitter.com.evil.com/", False),
    ("https://box.co/", False),
    ("https://example.com/?u=https://twitter.com", False),
])
def test_is_twitter_url(url, twitter):
    assert is_twitter_url(url) is twitter


@pytest.mark.parametrize(("url", "kind"), [
    ("https://twitter.com/user/status/1246800000000000002", "status"),
    ("https://x.com/user/status/5?s=20", "status"),
    ("https://mobile.twitter.com/user/statuses/5", "status"),
    ("https://twitter.com/i/web/status/5", "status"),
    ("https://twitter.com/i/status/5", "status"),
    ("https://twitter.com/user/status/5/analytics", "status"),
    ("https://twitter.com/user/status/5/photo/1", "photo"),
    ("https://x.com/user/status/5/video/1", "video"),
    ("https://pic.twitter.com/AbCdE", "photo"),
    ("https://twitter.com/user", None),
    ("https://twitter.com/user/status/not-a-number", None),
    ("https://twitter.com/search?q=status", None),
    ("https://t.co/AbC", None),
    ("https://example.com/user/status/5", None),
])
def test_twitter_link_kind(url, kind):
    assert twitter_link_kind(url) == kind


def test_a_link_to_a_quoted_post_is_a_quote():
    assert twitter_link_kind("https://twitter.com/a/status/77", quoted_ids={77}) == "quote"
    assert twitter_link_kind("https://twitter.com/a/status/78", quoted_ids={77}) == "status"
    assert twitter_link_kind("https://twitter.com/a/status/77/photo/1", quoted_ids={77}) == "photo"


# --- extract_urls ------------------------------------------------------------------------


def tweet(*urls: TweetUrl, tweet_id: int = 10, raw: dict | None = None) -> Tweet:
    return Tweet(id=tweet_id, text="text", created_at=datetime(2026, 5, 1, tzinfo=UTC), urls=urls,
                 raw=raw or {})


def test_records_carry_posted_expanded_canonical_domain_and_kind():
    records = extract_urls(tweet(
        TweetUrl("https://t.co/a", "https://www.example.com/post/?utm_source=twitter"),
        TweetUrl("https://t.co/b", "https://twitter.com/someone/status/99/photo/1"),
    ))
    assert records == [
        UrlRecord("https://t.co/a", "https://www.example.com/post/?utm_source=twitter",
                  "https://www.example.com/post", "example.com", False, None),
        UrlRecord("https://t.co/b", "https://twitter.com/someone/status/99/photo/1",
                  "https://twitter.com/someone/status/99/photo/1", "twitter.com", True, "photo"),
    ]


def test_duplicates_by_canonical_url_are_dropped_keeping_the_first():
    records = extract_urls(tweet(
        TweetUrl("https://t.co/a", "https://example.com/post?utm_source=x"),
        TweetUrl("https://t.co/b", "https://EXAMPLE.com/post/#comments"),
        TweetUrl("https://t.co/c", "https://example.com/other"),
    ))
    assert [(r.url, r.canonical_url) for r in records] == [
        ("https://t.co/a", "https://example.com/post"), ("https://t.co/c", "https://example.com/other")]


def test_missing_or_unusable_expansion_falls_back_to_the_posted_url():
    records = extract_urls(tweet(
        TweetUrl("https://t.co/a"),
        TweetUrl("https://t.co/b", "javascript:alert(1)"),
        TweetUrl("https://example.com/c", ""),
    ))
    assert [(r.expanded_url, r.canonical_url, r.is_twitter) for r in records] == [
        ("https://t.co/a", "https://t.co/a", True),
        ("https://t.co/b", "https://t.co/b", True),
        ("https://example.com/c", "https://example.com/c", False),
    ]


def test_links_without_any_canonical_form_are_left_out():
    unusable = tweet(TweetUrl("javascript:void(0)", "data:text/plain,hi"), TweetUrl("not a url"))
    assert extract_urls(unusable) == []


def test_the_read_more_link_to_the_tweet_itself_is_left_out_but_its_media_stay():
    records = extract_urls(tweet(
        TweetUrl("https://t.co/more", "https://twitter.com/i/web/status/10"),
        TweetUrl("https://t.co/own", "https://twitter.com/me/status/10"),
        TweetUrl("https://t.co/pic", "https://twitter.com/me/status/10/photo/1"),
        TweetUrl("https://t.co/other", "https://twitter.com/i/web/status/11"),
    ))
    assert [(r.url, r.twitter_kind) for r in records] == [("https://t.co/pic", "photo"),
                                                          ("https://t.co/other", "status")]


def test_quote_links_are_recognized_from_v1_and_v2_payloads():
    link = TweetUrl("https://t.co/q", "https://twitter.com/other/status/555")
    v1 = tweet(link, raw={"quoted_status_id_str": "555", "is_quote_status": True})
    v2 = tweet(link, raw={"data": {"referenced_tweets": [{"type": "quoted", "id": "555"},
                                                         {"type": "replied_to", "id": "556"}]}})
    assert quoted_ids(v1) == {555} and quoted_ids(v2) == {555}
    assert extract_urls(v1)[0].twitter_kind == "quote" and extract_urls(v2)[0].twitter_kind == "quote"
    assert extract_urls(tweet(link))[0].twitter_kind == "status"
    assert quoted_ids(tweet(raw={"quoted_status_id_str": "nope", "data": "x"})) == frozenset()


def test_fixture_tweets():
    lines = (FIXTURES / "tweets_v1.jsonl").read_text().splitlines()
    records = extract_urls(normalize(json.loads(lines[1])))  # a cut text with its read-more link
    assert [(r.canonical_url, r.domain, r.is_twitter, r.twitter_kind) for r in records] == [
        ("https://github.com/example-org/label-smoothing-notebook", "github.com", False, None),
        ("https://twitter.com/readinggroup_ml/status/1246800000000000002/photo/1", "twitter.com", True,
         "photo"),
    ]
    first = extract_urls(normalize(json.loads(lines[0])))
    assert [r.canonical_url for r in first] == ["https://example-ml-blog.org/posts/calibrating-text-classifiers"]


def test_v2_unwound_urls_are_used():
    item = {"data": {"id": "20", "text": "LLM paper https://t.co/x", "created_at": "2026-05-01T12:00:00Z",
                     "entities": {"urls": [{"url": "https://t.co/x", "expanded_url": "https://bit.ly/abc",
                                            "unwound_url": "https://arxiv.org/abs/2401.00001v2"}]}}}
    assert [r.domain for r in extract_urls(normalize_v2(item))] == ["arxiv.org"]


def test_extraction_is_fast():
    links = tuple(TweetUrl(f"https://t.co/{i}", f"https://www.example{i}.com/a/b/?utm_source=x&b=2&a={i}#f")
                  for i in range(4))
    tweets = [tweet(*links, tweet_id=i + 1) for i in range(2000)]
    started = time.process_time()  # CPU time: other work on the machine cannot fail it
    for item in tweets:
        extract_urls(item)
    per_link = (time.process_time() - started) / (len(tweets) * len(links))
    assert per_link < 200e-6, f"{per_link * 1e6:.0f} µs per link"
