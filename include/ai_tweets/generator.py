"""Realistic synthetic tweets: the pipeline's embedded default source and the tests' data.

A seeded, reproducible stream of X API payloads (v1.1 status objects, v2 stream items, or
both mixed) with ground truth kept beside the payload, never inside it. The mix is built to
teach a labeler: AI and data-science content (papers, tutorials, releases, talks, MLOps,
discussion), and the hard negatives a keyword labeler falls for ("5 ml" of syrup, Yankees
ML odds, Allen Iverson, Air India flight AI 101, artificial insemination, Illustrator `.ai`
files, DL depth charts, game AI, spam stuffed with #AI #ML #BigData), plus COVID news,
sports, chat and short replies. Retweets, replies, mentions, hashtags, emojis, t.co links
with expanded (sometimes unwound, sometimes utm-tagged) URLs, photo links and re-posted
duplicates are all there.

The words and the kinds of tweet (templates, labels, shares, rates) are data, in
`generator_data.json` beside this module; the code here draws from them and renders payloads.

Invariants:
- Same arguments, same payloads, byte for byte: one `random.Random(seed)`, no wall clock.
- Content does not depend on `shape`: a seed gives the same ids, texts and labels whether
  rendered as v1.1 or v2, so `ground_truth` holds for every shape.
- The label belongs to the template a text was drawn from (a retweet takes its original's
  label), never to keywords in the text.
- Tweet ids are real snowflakes: (milliseconds since the X epoch) << 22 | seed bits | sequence.
  Emitted tweets have strictly increasing times within a seed and sequence 0, so they never
  collide within a seed; seeds that share their low 7 bits are at least 128 hours apart,
  more than the 200,000,000 ms that 10,000,000 tweets span, so ids are unique across seeds
  0..65535 for streams of up to 10M tweets each.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

SHAPES = ("v1.1", "v2", "mixed")
MAX_SEED = 2**16
BASE_TIME_MS = 1_586_044_800_000  # 2020-04-05T00:00:00Z, the season of the real sample stream
X_EPOCH_MS = 1_288_834_974_657  # snowflake epoch
TWEET_SPACING_MS = 20  # 50 tweets a second, like the public sample stream
SEED_SPACING_MS = 3_600_000
RETWEET_DELAY_MS = (2_000, 600_000)  # < 2**15 sequences x 20 ms, so referenced ids stay unique
V1_TEXT_CHARS = 140
V2_TEXT_CHARS = 280
TCO_CHARS = 23  # "https://t.co/" + 10
_SEED_BITS = 7
_SEQUENCE_BITS = 15
_ALNUM = string.ascii_letters + string.digits
_ALNUM_PAIRS = tuple(itertools.islice(itertools.cycle(a + b for a in _ALNUM for b in _ALNUM), 4096))
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")
_FIELD = re.compile(r"{(\w+)}")
_STREAM_RULE = {"id": "1246750000000000001", "tag": "english sample"}  # one rule for all: no label leak
_SOURCES = (
    '<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>',
    '<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>',
    '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
    '<a href="https://buffer.com" rel="nofollow">Buffer</a>',
    '<a href="https://ifttt.com" rel="nofollow">IFTTT</a>',
)


@dataclass(frozen=True, slots=True)
class GeneratedTweet:
    """One synthetic tweet: the raw payload as the API would send it, and its ground truth."""

    tweet_id: int
    payload: dict[str, Any]
    is_ai: bool
    duplicate_of: int | None = None  # id of the earlier tweet this one re-posts or retweets


# --- vocabulary: generator_data.json -------------------------------------------------------------

Source = Callable[[random.Random], str]

# The vocabulary and the kinds of tweet are data: the words of every {slot}, the links' words,
# hashtags, emojis, and for each kind its templates, label, share and rates.
DATA: dict[str, Any] = json.loads(Path(__file__).with_name("generator_data.json").read_text(encoding="utf-8"))


def _pick(*options: str) -> Source:
    return lambda rng: rng.choice(options)


def _digits(low: int, high: int) -> Source:
    return lambda rng: str(rng.randrange(low, high))


def _alnum(length: int) -> Source:
    return lambda rng: "".join(rng.choices(_ALNUM, k=length))


def _slug(*words: Source) -> Source:
    return lambda rng: "-".join(w(rng) for w in words).lower().replace(" ", "-")


def _fields(spec: dict[str, Any]) -> dict[str, Source]:
    """A Source per slot: a list of options, {"digits": [low, high]} or {"same_as": slot}."""
    fields: dict[str, Source] = {}
    for name, value in spec.items():
        if isinstance(value, list):
            fields[name] = _pick(*value)
        elif "digits" in value:
            fields[name] = _digits(*value["digits"])
        else:
            fields[name] = fields[value["same_as"]]
    return fields


_FIELDS: dict[str, Source] = _fields(DATA["fields"])
_LOWER_TASK = _slug(_FIELDS["task"])
_LOWER_TECHNIQUE = _slug(_FIELDS["technique"])


class _Template(NamedTuple):
    text: str
    fields: tuple[tuple[str, Source], ...]

    def fill(self, rng: random.Random) -> str:
        text = self.text.format_map({name: source(rng) for name, source in self.fields})
        # a sentence that opens with a slot starts with a capital: "tomorrow at ICML" → "Tomorrow at ICML"
        return text[:1].upper() + text[1:] if self.text.startswith("{") else text


def _templates(*texts: str) -> tuple[_Template, ...]:
    return tuple(_Template(text, tuple((name, _FIELDS[name]) for name in dict.fromkeys(_FIELD.findall(text))))
                 for text in texts)


# --- links ------------------------------------------------------------------------------------

_BLOG = _pick(*DATA["link_words"]["blog"])
_GH_USER = _pick(*DATA["link_words"]["gh_user"])
_HF_ORG = _pick(*DATA["link_words"]["hf_org"])


def _ARXIV_ID(rng: random.Random) -> str:  # noqa: N802 - a Source like the constants around it
    return f"{rng.randrange(18, 24)}{rng.randrange(1, 13):02d}.{rng.randrange(10**5):05d}"


_LINKS_AI: tuple[Source, ...] = (
    lambda rng: f"https://arxiv.org/abs/{_ARXIV_ID(rng)}",
    lambda rng: f"https://arxiv.org/pdf/{_ARXIV_ID(rng)}.pdf",
    lambda rng: f"https://paperswithcode.com/paper/{_LOWER_TECHNIQUE(rng)}-for-{_LOWER_TASK(rng)}",
    lambda rng: f"https://huggingface.co/{_HF_ORG(rng)}/{_LOWER_TASK(rng)}-{_FIELDS['size'](rng).lower()}",
    lambda rng: f"https://huggingface.co/blog/{_LOWER_TECHNIQUE(rng)}",
    lambda rng: f"https://github.com/{_GH_USER(rng)}/{_LOWER_TECHNIQUE(rng)}",
    lambda rng: f"https://openai.com/blog/{_LOWER_TECHNIQUE(rng)}",
    lambda rng: f"https://deepmind.google/discover/blog/{_LOWER_TASK(rng)}-with-{_LOWER_TECHNIQUE(rng)}/",
    lambda rng: f"https://towardsdatascience.com/{_LOWER_TASK(rng)}-with-{_LOWER_TECHNIQUE(rng)}-{_alnum(12)(rng).lower()}",
    lambda rng: f"https://medium.com/@{_HANDLE(rng)}/{_LOWER_TECHNIQUE(rng)}-explained-{_alnum(11)(rng).lower()}",
    lambda rng: f"https://{_BLOG(rng)}/{_LOWER_TECHNIQUE(rng)}/",
    lambda rng: f"https://www.youtube.com/watch?v={_alnum(11)(rng)}",
)
_ARTICLE = _digits(74000000, 76000000)
_DAY = _pick(*(f"{day:02d}" for day in range(1, 29)))
_LINKS_NEWS: tuple[Source, ...] = (
    lambda rng: f"https://www.bbc.com/news/world-{rng.randrange(52000000, 52999999)}",
    lambda rng: f"https://www.reuters.com/article/us-health-coronavirus-{_slug(_FIELDS['country'])(rng)}"
                f"-idUSKBN{_alnum(6)(rng).upper()}",
    lambda rng: f"https://edition.cnn.com/2020/04/{_DAY(rng)}/health/coronavirus-update/index.html",
    lambda rng: f"https://www.theguardian.com/world/2020/apr/{_DAY(rng)}/coronavirus-live-news",
    lambda rng: f"https://timesofindia.indiatimes.com/india/articleshow/{_ARTICLE(rng)}.cms",
)
_LINKS_SPORTS: tuple[Source, ...] = (
    lambda rng: f"https://www.espn.com/mlb/story/_/id/{rng.randrange(28000000, 29999999)}",
    lambda rng: f"https://www.espn.com/nfl/story/_/id/{rng.randrange(28000000, 29999999)}",
    lambda rng: f"https://bleacherreport.com/articles/{rng.randrange(2880000, 2899999)}",
    lambda rng: f"https://www.youtube.com/watch?v={_alnum(11)(rng)}",
)
_LINKS_SHOP: tuple[Source, ...] = (
    lambda rng: f"https://www.amazon.com/dp/B0{_alnum(8)(rng).upper()}",
    lambda rng: f"https://www.etsy.com/listing/{rng.randrange(700000000, 799999999)}",
    lambda rng: f"https://giftshowcase.shop/deals/{_slug(_FIELDS['product'])(rng)}",
)
_LINKS_SPAM: tuple[Source, ...] = (
    lambda rng: f"https://{_alnum(6)(rng).lower()}-presale.io/?ref={_alnum(8)(rng)}",
    lambda rng: f"https://t.me/{_alnum(9)(rng)}",
    lambda rng: f"https://jobs.talentfeed.net/job/{rng.randrange(100000, 999999)}",
    lambda rng: f"https://www.jobsboard.io/listing/{_slug(_FIELDS['job'])(rng)}-{rng.randrange(1000, 9999)}",
)
_LINKS_MISC: tuple[Source, ...] = (
    lambda rng: f"https://www.instagram.com/p/{_alnum(11)(rng)}/",
    lambda rng: f"https://www.allrecipes.com/recipe/{rng.randrange(10000, 280000)}/{_slug(_FIELDS['food'])(rng)}/",
    lambda rng: f"https://www.airindia.in/flight-status.htm?flight=AI{_FIELDS['flight'](rng)}",
    lambda rng: f"https://open.spotify.com/track/{_alnum(22)(rng)}",
    lambda rng: f"https://www.youtube.com/watch?v={_alnum(11)(rng)}",
)
_SHORTENERS = ("bit.ly", "buff.ly", "lnkd.in", "ow.ly", "dlvr.it")
_UTM = ("?utm_source=twitter&utm_medium=social&utm_campaign=",
        "?utm_source=dlvr.it&utm_medium=twitter&utm_campaign=")


class _Link(NamedTuple):
    url: str  # the t.co form that appears in the text
    expanded_url: str
    display_url: str
    unwound_url: str | None  # v2 only: the final address behind a second shortener
    media_id: int | None  # set for photo links (pic.twitter.com)


def _tco(rng: random.Random) -> str:
    bits = rng.getrandbits(60)
    return "https://t.co/" + "".join(_ALNUM_PAIRS[(bits >> shift) & 4095] for shift in (0, 12, 24, 36, 48))


def _web_tco(tweet_id: int) -> str:
    """The t.co link v1.1 puts after a cut text; derived from the id, as rendering draws no randomness."""
    number = (tweet_id * 0x9E3779B97F4A7C15) % 62**10
    chars = []
    for _ in range(10):
        number, digit = divmod(number, 62)
        chars.append(_ALNUM[digit])
    return "https://t.co/" + "".join(chars)


def _display(url: str) -> str:
    shown = url.split("://", 1)[-1].removeprefix("www.")
    return shown if len(shown) <= 26 else shown[:25] + "…"


def _link(rng: random.Random, builders: tuple[Source, ...]) -> _Link:
    target = rng.choice(builders)(rng)
    if "?" not in target and rng.random() < 0.2:
        target += rng.choice(_UTM) + rng.choice(("ml_news", "weekly", "blog", "spring2020", "launch"))
    if rng.random() < 0.12:  # posted through a second shortener: v2 unwinds it, v1.1 does not
        short = f"https://{rng.choice(_SHORTENERS)}/{''.join(rng.choices(_ALNUM, k=7))}"
        return _Link(_tco(rng), short, _display(short), target, None)
    return _Link(_tco(rng), target, _display(target), None, None)


# --- users ------------------------------------------------------------------------------------


class _User(NamedTuple):
    id: int
    handle: str
    name: str


def _user_pool(size: int) -> tuple[_User, ...]:
    rng = random.Random("ai-tweets users")  # fixed: the same accounts for every seed
    first = ("anna", "ben", "carla", "dev", "elena", "farid", "grace", "hiro", "ines", "jamal", "kate",
             "liam", "maya", "nico", "olu", "priya", "quinn", "rosa", "sam", "tariq", "uma", "victor", "wen",
             "xavi", "yara", "zoe", "amir", "bea", "chen", "dana", "emeka", "fatima", "gus", "hana", "ivan",
             "jo")
    last = ("smith", "okafor", "garcia", "kim", "patel", "nguyen", "rossi", "muller", "silva", "cohen",
            "haddad", "ito", "novak", "berg", "diaz", "khan", "lopez", "moreau", "park", "sato", "tan", "wu",
            "young", "zhang", "adams", "bauer", "costa", "dubois", "evans", "fischer")
    users: dict[str, _User] = {}
    while len(users) < size:
        f, la = rng.choice(first), rng.choice(last)
        handle = rng.choice((f + la, f"{f}_{la}", f"{f}{la[0]}{rng.randrange(100)}", f"the{f}{la[:3]}",
                             f"{la}{f}{rng.randrange(1990, 2005)}", f"{f}.{la}".replace(".", "")))[:15]
        name = f"{f.title()} {la.title()}" + rng.choice(("", "", "", " 🌻", " 🇺🇸", " PhD", " ✨"))
        user_id = rng.choice((rng.randrange(10**7, 4 * 10**9), rng.randrange(7 * 10**17, 125 * 10**16)))
        users.setdefault(handle, _User(user_id, handle, name))
    return tuple(users.values())


_USERS = _user_pool(3000)
_HANDLE = _pick(*(u.handle for u in _USERS[:400]))
_FIELDS["at"] = lambda rng: "@" + _HANDLE(rng)
_FIELDS["at2"] = _FIELDS["at"]
_USER_BY_HANDLE = {u.handle: u for u in _USERS}


# --- kinds of tweet: the label belongs here -----------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    name: str
    is_ai: bool
    weight: float
    templates: tuple[_Template, ...]
    hashtags: tuple[str, ...] = ()
    tag_counts: tuple[int, ...] = (0, 0, 1, 2)
    links: tuple[Source, ...] = ()
    link_rate: float = 0.0
    emojis: tuple[str, ...] = ()
    emoji_rate: float = 0.0
    long_rate: float = 0.0  # chance of a multi-sentence post (beyond 140, sometimes 280, chars)
    reply_rate: float = 0.05
    retweet_rate: float = 0.3
    photo_rate: float = 0.05


def _kinds(specs: list[dict[str, Any]]) -> tuple[_Kind, ...]:
    links = {"ai": _LINKS_AI, "news": _LINKS_NEWS, "sports": _LINKS_SPORTS, "shop": _LINKS_SHOP, "spam": _LINKS_SPAM,
             "misc": _LINKS_MISC}

    def listed(value: str | list[str], lists: dict[str, list[str]]) -> tuple[str, ...]:
        return tuple(lists[value] if isinstance(value, str) else value)

    kinds = []
    for spec in specs:
        options = {key: value for key, value in spec.items() if key not in ("name", "is_ai", "weight", "templates")}
        if "hashtags" in options:
            options["hashtags"] = listed(options["hashtags"], DATA["hashtags"])
        if "tag_counts" in options:
            options["tag_counts"] = tuple(options["tag_counts"])
        if "links" in options:
            options["links"] = links[options["links"]]
        if "emojis" in options:
            options["emojis"] = listed(options["emojis"], DATA["emojis"])
        kinds.append(_Kind(spec["name"], spec["is_ai"], spec["weight"], _templates(*spec["templates"]), **options))
    return tuple(kinds)


KINDS: tuple[_Kind, ...] = _kinds(DATA["kinds"])


class _Post(NamedTuple):
    id: int
    created_ms: int
    user: _User
    text: str
    links: tuple[_Link, ...]
    reply_to: tuple[int, _User] | None
    source: str


class _Item(NamedTuple):
    post: _Post
    original: _Post | None  # set for retweets
    is_ai: bool
    duplicate_of: int | None


# --- composing posts --------------------------------------------------------------------------


def _compose(rng: random.Random, kind: _Kind, post_id: int, user: _User) -> tuple[str, tuple[_Link, ...]]:
    count = rng.choice((2, 2, 3)) if kind.long_rate and rng.random() < kind.long_rate else 1
    chosen = rng.sample(kind.templates, count) if count > 1 else (rng.choice(kind.templates),)
    parts = [t.fill(rng) for t in chosen]
    if kind.emojis and rng.random() < kind.emoji_rate:
        emoji = rng.choice(kind.emojis)
        if rng.random() < 0.7:
            parts.append(emoji)
        else:
            parts.insert(0, emoji)
    links: list[_Link] = []
    if kind.links and rng.random() < kind.link_rate:
        links.append(_link(rng, kind.links))
        if rng.random() < 0.1:
            links.append(_link(rng, kind.links))
    tags = rng.sample(kind.hashtags, min(rng.choice(kind.tag_counts), len(kind.hashtags)))
    tail = [link.url for link in links] + ["#" + tag for tag in tags]
    if rng.random() < kind.photo_rate:
        media_id = post_id - rng.randrange(1, 2**22)
        photo = _Link(_tco(rng), f"https://twitter.com/{user.handle}/status/{post_id}/photo/1",
                      "pic.twitter.com/" + "".join(rng.choices(_ALNUM, k=10)), None, media_id)
        links.append(photo)
        tail.append(photo.url)
    return " ".join(parts + tail), tuple(links)


def _snowflake(ms: int, seed: int, sequence: int) -> int:
    return ((ms - X_EPOCH_MS) << 22) | ((seed % (1 << _SEED_BITS)) << _SEQUENCE_BITS) | sequence


def _items(count: int | None, seed: int, ai_share: float, duplicate_rate: float) -> Iterator[_Item]:
    rng = random.Random(seed)
    ai_kinds = [k for k in KINDS if k.is_ai]
    other_kinds = [k for k in KINDS if not k.is_ai]
    ai_weights = list(itertools.accumulate(k.weight for k in ai_kinds))
    other_weights = list(itertools.accumulate(k.weight for k in other_kinds))
    recent: deque[_Item] = deque(maxlen=2000)  # what duplicates copy from; bounded for endless streams
    start_ms = BASE_TIME_MS + seed * SEED_SPACING_MS
    limit = count if count is not None else 1 << 62
    for index in range(limit):
        created_ms = start_ms + index * TWEET_SPACING_MS + rng.randrange(TWEET_SPACING_MS)
        tweet_id = _snowflake(created_ms, seed, 0)
        user = rng.choice(_USERS)
        client = rng.choice(_SOURCES)
        if recent and rng.random() < duplicate_rate:
            item = _duplicate(rng, rng.choice(recent), tweet_id, created_ms, user, client)
        else:
            is_ai = rng.random() < ai_share
            kinds, weights = (ai_kinds, ai_weights) if is_ai else (other_kinds, other_weights)
            kind = rng.choices(kinds, cum_weights=weights)[0]
            ref_sequence = 1 + index % ((1 << _SEQUENCE_BITS) - 1)
            if rng.random() < kind.retweet_rate:
                original_ms = created_ms - rng.randrange(*RETWEET_DELAY_MS)
                original_id = _snowflake(original_ms, seed, ref_sequence)
                author = rng.choice(_USERS)
                text, links = _compose(rng, kind, original_id, author)
                original = _Post(original_id, original_ms, author, text, links, None, rng.choice(_SOURCES))
                post = _Post(tweet_id, created_ms, user, f"RT @{author.handle}: {text}", links, None, client)
                item = _Item(post, original, is_ai, None)
            else:
                reply_to = None
                text, links = _compose(rng, kind, tweet_id, user)
                if rng.random() < kind.reply_rate:
                    target = rng.choice(_USERS)
                    target_id = _snowflake(created_ms - rng.randrange(*RETWEET_DELAY_MS), seed, ref_sequence)
                    reply_to = (target_id, target)
                    text = f"@{target.handle} {text}"
                post = _Post(tweet_id, created_ms, user, text, links, reply_to, client)
                item = _Item(post, None, is_ai, None)
        recent.append(item)
        yield item


def _duplicate(rng: random.Random, source: _Item, tweet_id: int, created_ms: int, user: _User,
               client: str) -> _Item:
    """Another account re-posts the same text (sometimes with fresh t.co links) or retweets it."""
    original = source.original or (source.post if rng.random() < 0.4 else None)
    if original is not None:
        post = _Post(tweet_id, created_ms, user, f"RT @{original.user.handle}: {original.text}",
                     original.links, None, client)
        return _Item(post, original, source.is_ai, source.post.id)
    text, links = source.post.text, source.post.links
    if links and rng.random() < 0.5:  # a near duplicate: same words, links shortened anew
        fresh = tuple(link._replace(url=_tco(rng)) for link in links)
        for old, new in zip(links, fresh, strict=True):
            text = text.replace(old.url, new.url)
        links = fresh
    post = _Post(tweet_id, created_ms, user, text, links, source.post.reply_to, client)
    return _Item(post, None, source.is_ai, source.post.id)


# --- rendering: the same post as v1.1 or v2 ------------------------------------------------------

_time_cache: dict[int, tuple[str, str]] = {}


def _times(ms: int) -> tuple[str, str]:
    """(v1.1 created_at, v2 created_at without milliseconds) for the second holding `ms`."""
    second = ms // 1000
    cached = _time_cache.get(second)
    if cached is None:
        if len(_time_cache) > 4096:
            _time_cache.clear()
        moment = datetime.fromtimestamp(second, UTC)
        cached = (moment.strftime("%a %b %d %H:%M:%S +0000 %Y"), moment.strftime("%Y-%m-%dT%H:%M:%S"))
        _time_cache[second] = cached
    return cached


def _v1_user(user: _User) -> dict[str, Any]:
    return {"id": user.id, "id_str": str(user.id), "name": user.name, "screen_name": user.handle}


def _v1_entities(text: str, links: tuple[_Link, ...], end: int) -> dict[str, Any]:
    """Entities of `text` that lie wholly within its first `end` characters (what a cut text shows)."""
    hashtags = [{"text": m[1], "indices": [m.start(), m.end()]}
                for m in _HASHTAG.finditer(text) if m.end() <= end]
    mentions = []
    for m in _MENTION.finditer(text):
        if m.end() > end:
            break
        user = _USER_BY_HANDLE.get(m[1])
        mentions.append({"screen_name": m[1], "name": user.name if user else m[1],
                         "id": user.id if user else 0, "id_str": str(user.id) if user else "0",
                         "indices": [m.start(), m.end()]})
    urls, media = [], []
    for link in links:
        at = text.find(link.url)
        if at < 0 or at + TCO_CHARS > end:
            continue
        entity = {"url": link.url, "expanded_url": link.expanded_url, "display_url": link.display_url,
                  "indices": [at, at + TCO_CHARS]}
        if link.media_id is None:
            urls.append(entity)
        else:
            media.append({"id": link.media_id, "id_str": str(link.media_id), **entity, "type": "photo",
                          "media_url_https": f"https://pbs.twimg.com/media/{link.display_url[-10:]}.jpg"})
    entities: dict[str, Any] = {"hashtags": hashtags, "urls": urls, "user_mentions": mentions, "symbols": []}
    if media:
        entities["media"] = media
    return entities


def _v1_status(post: _Post, original: _Post | None = None) -> dict[str, Any]:
    text = post.text
    created_at = _times(post.created_ms)[0]
    status: dict[str, Any] = {"created_at": created_at, "id": post.id, "id_str": str(post.id)}
    if original is not None:  # a retweet's text is cut at 140 with no link; the original is whole
        visible = len(text) if len(text) <= V1_TEXT_CHARS else V1_TEXT_CHARS - 1
        shown = text if visible == len(text) else text[:visible] + "…"
        status.update(text=shown, source=post.source, truncated=False)
        entities = _v1_entities(text, post.links, visible)
    elif len(text) <= V1_TEXT_CHARS:
        status.update(text=text, source=post.source, truncated=False)
        entities = _v1_entities(text, post.links, len(text))
    else:
        cut = V1_TEXT_CHARS - TCO_CHARS - 2
        web = _Link(_web_tco(post.id), f"https://twitter.com/i/web/status/{post.id}",
                    f"twitter.com/i/web/status/{str(post.id)[0]}…", None, None)
        shown = f"{text[:cut]}… {web.url}"
        status.update(text=shown, display_text_range=[0, V1_TEXT_CHARS], source=post.source, truncated=True)
        entities = _v1_entities(text, post.links, cut)
        entities["urls"].append({"url": web.url, "expanded_url": web.expanded_url,
                                 "display_url": web.display_url, "indices": [cut + 2, V1_TEXT_CHARS]})
    reply = post.reply_to
    status.update(
        in_reply_to_status_id=reply[0] if reply else None,
        in_reply_to_status_id_str=str(reply[0]) if reply else None,
        in_reply_to_user_id=reply[1].id if reply else None,
        in_reply_to_user_id_str=str(reply[1].id) if reply else None,
        in_reply_to_screen_name=reply[1].handle if reply else None,
        user=_v1_user(post.user), geo=None, coordinates=None, place=None, is_quote_status=False,
    )
    if original is not None:
        status["retweeted_status"] = _v1_status(original)
    elif status["truncated"]:
        status["extended_tweet"] = {"full_text": text, "display_text_range": [0, len(text)],
                                    "entities": _v1_entities(text, post.links, len(text))}
    status.update(entities=entities, favorited=False, retweeted=False, filter_level="low", lang="en",
                  timestamp_ms=str(post.created_ms))
    return status


def _v2_entities(text: str, links: tuple[_Link, ...], end: int) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    urls = []
    for link in links:
        at = text.find(link.url)
        if at < 0 or at + TCO_CHARS > end:
            continue
        entity = {"start": at, "end": at + TCO_CHARS, "url": link.url, "expanded_url": link.expanded_url,
                  "display_url": link.display_url}
        if link.unwound_url:
            entity["unwound_url"] = link.unwound_url
        if link.media_id is not None:
            entity["media_key"] = f"3_{link.media_id}"
        urls.append(entity)
    if urls:
        entities["urls"] = urls
    hashtags = [{"start": m.start(), "end": m.end(), "tag": m[1]}
                for m in _HASHTAG.finditer(text) if m.end() <= end]
    if hashtags:
        entities["hashtags"] = hashtags
    mentions = [{"start": m.start(), "end": m.end(), "username": m[1]}
                for m in _MENTION.finditer(text) if m.end() <= end]
    if mentions:
        entities["mentions"] = mentions
    return entities


def _v2_tweet(post: _Post, limit: int = V2_TEXT_CHARS) -> dict[str, Any]:
    text = post.text
    seconds = _times(post.created_ms)[1]
    data: dict[str, Any] = {
        "id": str(post.id), "text": text, "created_at": f"{seconds}.{post.created_ms % 1000:03d}Z",
        "author_id": str(post.user.id), "lang": "en", "edit_history_tweet_ids": [str(post.id)],
        "conversation_id": str(post.reply_to[0] if post.reply_to else post.id),
    }
    if len(text) > limit:  # the stream's text is cut; long posts carry the whole in note_tweet
        data["text"] = text[:limit - 1] + "…"
        data["entities"] = _v2_entities(text, post.links, limit - 1)
        if limit == V2_TEXT_CHARS:
            data["note_tweet"] = {"text": text, "entities": _v2_entities(text, post.links, len(text))}
    else:
        data["entities"] = _v2_entities(text, post.links, len(text))
    if post.reply_to:
        data["referenced_tweets"] = [{"type": "replied_to", "id": str(post.reply_to[0])}]
        data["in_reply_to_user_id"] = str(post.reply_to[1].id)
    return data


def _v2_item(post: _Post, original: _Post | None) -> dict[str, Any]:
    users = [post.user]
    if original is None:
        data = _v2_tweet(post)
        included: list[dict[str, Any]] = []
    else:  # the retweet's own text is cut at 140 like v1.1; includes.tweets holds the original
        data = _v2_tweet(post, V1_TEXT_CHARS)
        data["referenced_tweets"] = [{"type": "retweeted", "id": str(original.id)}]
        included = [_v2_tweet(original)]
        users.append(original.user)
    if post.reply_to:
        users.append(post.reply_to[1])
    includes: dict[str, Any] = {"users": [{"id": str(u.id), "username": u.handle, "name": u.name}
                                          for u in dict.fromkeys(users)]}
    if included:
        includes["tweets"] = included
    return {"data": data, "includes": includes, "matching_rules": [_STREAM_RULE]}


# --- public API ---------------------------------------------------------------------------------


def _check(count: int | None, seed: int, ai_share: float, shape: str, duplicate_rate: float) -> None:
    if count is not None and count < 0:
        raise ValueError(f"count must be a non-negative number of tweets or None (endless), not {count}")
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}) so that tweet ids stay unique, not {seed}")
    if not 0.0 <= ai_share <= 1.0:
        raise ValueError(f"ai_share must be a fraction in [0, 1], not {ai_share}")
    if not 0.0 <= duplicate_rate < 1.0:
        raise ValueError(f"duplicate_rate must be a fraction in [0, 1), not {duplicate_rate}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")


def generate(count: int | None, seed: int = 0, ai_share: float = 0.25, shape: str = "mixed",
             duplicate_rate: float = 0.03) -> Iterator[GeneratedTweet]:
    """`count` synthetic tweets (None: endless) as raw API payloads with their ground truth.

    `shape` is "v1.1" (status objects), "v2" (stream items) or "mixed" (either, at random);
    it changes only the rendering, never the content, ids or labels.
    """
    _check(count, seed, ai_share, shape, duplicate_rate)
    shape_rng = random.Random(f"shape {seed}")  # separate, so content does not depend on shape
    for post, original, is_ai, duplicate_of in _items(count, seed, ai_share, duplicate_rate):
        v1 = shape == "v1.1" or (shape == "mixed" and shape_rng.random() < 0.5)
        payload = _v1_status(post, original) if v1 else _v2_item(post, original)
        yield GeneratedTweet(post.id, payload, is_ai, duplicate_of)


def ground_truth(count: int, seed: int = 0, ai_share: float = 0.25,
                 duplicate_rate: float = 0.03) -> dict[int, bool]:
    """Tweet id → is it about AI, for the tweets `generate` yields with the same arguments (any shape)."""
    _check(count, seed, ai_share, "mixed", duplicate_rate)
    return {item.post.id: item.is_ai for item in _items(count, seed, ai_share, duplicate_rate)}
