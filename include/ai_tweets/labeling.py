"""Weak supervision: the Snorkel labeling functions (LFs), the label matrix and its summary
(the LabelModel that combines the votes: `label_model`; the words they look for: `vocabulary`).

Each LF reads one tweet (a row with `text`, `hashtags`, `mentions`, `urls[].expanded_url`,
`author_handle`, `is_retweet`) and votes AI, NOT_AI or ABSTAIN. Positive LFs look for AI,
machine-learning and data-science vocabulary, hashtags, links and accounts; negative LFs catch
what fools a keyword labeler (millilitres, Major League "ML", Allen Iverson, Air India, game AI,
spam stuffed with #AI #ML) and the everyday stream (chat, COVID news, sports, shopping).

The LFs are written for real tweets and were tuned on a real 2020 stream sample; the
generator's ground truth is a check, not the target. Every LF is a few precompiled-regex
tests, and `apply_lfs` runs them in a tight loop that gives exactly `PandasLFApplier`'s matrix.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from snorkel.labeling import LabelingFunction, LFAnalysis, labeling_function

from ai_tweets import vocabulary as vocab
from ai_tweets.schema import MalformedTweet, Tweet, from_text
from ai_tweets.tables import ABSTAIN, AI, NOT_AI

# What an LF may read: one row of a frame with these columns (a Series or a namedtuple).
COLUMNS = ("text", "hashtags", "mentions", "urls", "author_handle", "is_retweet")
_TEXT_ONLY_TIME = pd.Timestamp("2020-01-01", tz="UTC").to_pydatetime()  # plain texts have none; no LF reads it

def _words(body: str) -> re.Pattern[str]:
    """Whole words, any case, not inside a hashtag or a handle (AI vocabulary has its own LFs for tags)."""
    return re.compile(rf"(?<![\w#@])(?:{body})(?!\w)", re.IGNORECASE)


def _topic_words(body: str) -> re.Pattern[str]:
    """Whole words, any case, hashtags included (#COVID19 is COVID talk)."""
    return re.compile(rf"(?<![\w@])#?(?:{body})(?!\w)", re.IGNORECASE)


_AI_WORDS = _words("|".join(vocab.AI_PHRASES))
_ML_WORDS = _words("|".join(vocab.ML_PHRASES))
_NLP_VISION_WORDS = _words("|".join(vocab.NLP_VISION_PHRASES))
_DATA_SCIENCE_WORDS = _words("|".join(vocab.DATA_SCIENCE_PHRASES))
_METHOD_WORDS = _words("|".join(vocab.METHOD_PHRASES))
_TOOL_WORDS = _words("|".join(vocab.TOOL_NAMES))
# Spelled-out AI vocabulary that a confuser ("AI in his prime", "5 ml", "enemy AI") never has.
_STRONG_AI = _words("|".join(vocab.STRONG_AI_PHRASES))
_AI_ACRONYM_RE = re.compile(vocab.AI_ACRONYM)
_ML_ACRONYM_RE = re.compile(vocab.ML_ACRONYM)
_ML_OR_MLB = re.compile(r"\bMLB?\b")
_OTHER_AI_SENSES = re.compile(vocab.OTHER_AI_SENSES, re.IGNORECASE)
_OTHER_ML_SENSES = re.compile(vocab.OTHER_ML_SENSES, re.IGNORECASE)
_CRYPTO_PITCH_RE = _words(vocab.CRYPTO_PITCH)
_SPAM_TEXT = re.compile(vocab.SPAM_PHRASES, re.IGNORECASE)
_TECH = _words(vocab.TECH_HINTS)
_URL = re.compile(r"https?://\S+|\bpic\.twitter\.com/\S+")
_ENTITY = re.compile(r"(?<![\w&])[#＃@]\w+")
_TOKEN = re.compile(r"[#＃@]?\w+(?:['’]\w+)*")
_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://(?:www\.)?([^/?#:]+)([^?#]*)", re.IGNORECASE)


class TextStats(NamedTuple):
    """What several LFs need to know about one text, computed once (see `_stats`)."""

    tokens: int  # words, hashtags and mentions; links not counted
    hashtags: int  # hashtags among the tokens
    prose: str  # the text without links, hashtags and mentions
    prose_words: int
    strong_ai: bool  # spelled-out AI vocabulary, which the acronyms' other senses never have
    acronyms: bool  # "AI", "ML models", "NLP"... in any sense
    ai_words: bool  # spelled-out AI vocabulary, or an acronym in its AI sense
    tech_hint: bool  # AI words, or any hint of technology or data in the prose
    crypto_pitch: bool


@lru_cache(maxsize=4096)  # the LFs of one row ask about the same text one after another
def _stats(text: str) -> TextStats:
    without_links = _URL.sub(" ", text)
    tokens = _TOKEN.findall(without_links)
    prose = _ENTITY.sub(" ", without_links)
    strong = _STRONG_AI.search(text) is not None
    ai_acronym, ml_acronym = _AI_ACRONYM_RE.search(text) is not None, _ML_ACRONYM_RE.search(text) is not None
    ai_words = strong or (ai_acronym and _OTHER_AI_SENSES.search(text) is None) or (
        ml_acronym and _OTHER_ML_SENSES.search(text) is None)
    return TextStats(
        tokens=len(tokens), hashtags=sum(token[0] in "#＃" for token in tokens), prose=prose,
        prose_words=len(_TOKEN.findall(prose)), strong_ai=strong, acronyms=ai_acronym or ml_acronym,
        ai_words=ai_words, tech_hint=ai_words or _TECH.search(prose) is not None,
        crypto_pitch=_CRYPTO_PITCH_RE.search(text) is not None)


def _hosts(x: Any) -> list[tuple[str, str]]:
    """(host, path) of each link, from the expanded form when the API gave one."""
    found = []
    for link in x.urls if x.urls is not None else ():
        if isinstance(link, dict):
            match = _HOST.match(link.get("expanded_url") or link.get("url") or "")
            if match:
                found.append((match[1].lower(), match[2].lower()))
    return found


def _on(host: str, path: str, sites: Iterable[str]) -> bool:
    """The link is on one of `sites`: a domain or its subdomains; "amazon." is any Amazon domain;
    "host/prefix" also needs the path to start with the prefix."""
    for site in sites:
        name, _, prefix = site.partition("/")
        if name.endswith("."):
            on_host = host.startswith(name) or f".{name}" in host
        else:
            on_host = host == name or host.endswith(f".{name}")
        if on_host and path.lstrip("/").startswith(prefix):
            return True
    return False


def _links_to(x: Any, sites: Iterable[str]) -> bool:
    return any(_on(host, path, sites) for host, path in _hosts(x))


def _hashtags(x: Any) -> Iterable[str]:
    return x.hashtags if x.hashtags is not None else ()


def _is_ai_hashtag(tag: str) -> bool:
    return tag.lower() in vocab.AI_HASHTAGS or vocab.AI_HASHTAG_SHAPE.search(tag) is not None


def _has_ai_hashtag(x: Any) -> bool:
    return any(_is_ai_hashtag(tag) for tag in _hashtags(x))


def _is_ai_handle(handle: str) -> bool:
    return handle.lower() in vocab.AI_HANDLES or vocab.AI_HANDLE_SHAPE.search(handle) is not None


def _code_link_about_ml(x: Any) -> bool:
    """A code link with ML words in the tweet or the link's path, or a blog/video link with AI words."""
    for host, path in _hosts(x):
        if _on(host, path, vocab.CODE_SITES):
            if vocab.ML_CODE_WORDS.search(_stats(x.text).prose) or vocab.ML_PATH_TOKENS.search(path):
                return True
        elif _on(host, path, vocab.BLOG_VIDEO_SITES) and (_stats(x.text).ai_words or vocab.ML_PATH_TOKENS.search(path)):
            return True
    return False


def _ai_signal(x: Any) -> bool:
    """Anything a positive LF looks for: AI vocabulary, an AI hashtag, account, site or code link."""
    return (_stats(x.text).ai_words or _has_ai_hashtag(x) or _links_to(x, vocab.AI_SITES)
            or any(_is_ai_handle(h) for h in _handles(x)) or _code_link_about_ml(x))


def _technical(x: Any) -> bool:
    """An AI signal, or any hint of technology or data in the words."""
    return _stats(x.text).tech_hint or _ai_signal(x)


def _handles(x: Any) -> list[str]:
    handles = [x.author_handle] if isinstance(x.author_handle, str) else []
    handles.extend(x.mentions if x.mentions is not None else ())
    return handles


def _is_spam(x: Any) -> bool:
    """A crypto pitch, or three or more hashtags with crypto, job-board or shop tags or phrases
    whose words (hashtags aside) name no AI or data-science subject: an ad for a data scientist
    is an AI job (the labeling guide), a software job tagged #AI is not."""
    stats = _stats(x.text)
    if stats.crypto_pitch:
        return True
    tags = list(_hashtags(x))
    return len(tags) >= 3 and (any(tag.lower() in vocab.SPAM_TAGS for tag in tags)
                               or _SPAM_TEXT.search(x.text) is not None) and not _STRONG_AI.search(stats.prose)


# --- labeling functions --------------------------------------------------------------------------
# Each LF's docstring is one line saying its heuristic; `lf_summary` shows it as `description`.


def _lf(name: str, doc: str, f: Callable[[Any], int]) -> LabelingFunction:
    f.__doc__ = doc
    return labeling_function(name=name)(f)


def make_keyword_lf(name: str, doc: str, words: re.Pattern[str], acronyms: re.Pattern[str] | None = None,
                    other_senses: re.Pattern[str] | None = None) -> LabelingFunction:
    """AI when the text has one of `words`, or one of `acronyms` and no context of `other_senses`;
    never on spam (a job ad for a data scientist is still a job ad)."""

    def keyword(x: Any) -> int:
        stats = _stats(x.text)
        if not (stats.strong_ai or stats.acronyms) or _is_spam(x):  # no AI vocabulary at all: the common case
            return ABSTAIN
        if words.search(x.text):
            return AI
        if acronyms is not None and acronyms.search(x.text):
            return ABSTAIN if other_senses is not None and other_senses.search(x.text) else AI
        return ABSTAIN

    return _lf(name, doc, keyword)


def make_other_sense_lf(name: str, doc: str, context: str, acronym: re.Pattern[str] | None = None,
                        flags: int = re.IGNORECASE) -> LabelingFunction:
    """NOT_AI when the text has `acronym` (if given) and another sense's `context`, unless
    spelled-out AI vocabulary says it is about AI after all."""
    pattern = re.compile(context, flags)

    def other_sense(x: Any) -> int:
        if (acronym is not None and acronym.search(x.text) is None) or pattern.search(x.text) is None:
            return ABSTAIN
        return ABSTAIN if _stats(x.text).strong_ai else NOT_AI

    return _lf(name, doc, other_sense)


def make_topic_lf(name: str, doc: str, words: str, sites: Iterable[str] = ()) -> LabelingFunction:
    """NOT_AI when an everyday topic's words (or a link to its sites) appear and nothing technical does."""
    pattern, sites = _topic_words(words), tuple(sites)

    def topic(x: Any) -> int:
        if pattern.search(x.text) is None and not (sites and _links_to(x, sites)):
            return ABSTAIN
        return ABSTAIN if _technical(x) else NOT_AI

    return _lf(name, doc, topic)


keyword_ai = make_keyword_lf(
    "keyword_ai", "'AI' (the acronym, case kept) or 'artificial intelligence', not in another sense.",
    _AI_WORDS, _AI_ACRONYM_RE, _OTHER_AI_SENSES)
keyword_machine_learning = make_keyword_lf(
    "keyword_machine_learning", "Machine/deep learning, neural nets, or ML/NLP as a field ('ML models').",
    _ML_WORDS, _ML_ACRONYM_RE, _OTHER_ML_SENSES)
keyword_nlp_vision = make_keyword_lf(
    "keyword_nlp_vision", "NLP and vision tasks and models: language models, GPT, chatbots, recognition.",
    _NLP_VISION_WORDS)
keyword_data_science = make_keyword_lf(
    "keyword_data_science", "Data science, big data, (predictive) analytics, data mining, anomaly detection, Kaggle.",
    _DATA_SCIENCE_WORDS)
keyword_ml_methods = make_keyword_lf(
    "keyword_ml_methods", "ML methods: fine-tuning, backpropagation, overfitting, random forests, embeddings.",
    _METHOD_WORDS)
keyword_ml_tools = make_keyword_lf(
    "keyword_ml_tools", "ML libraries and labs by name: PyTorch, TensorFlow, scikit-learn, Hugging Face.",
    _TOOL_WORDS)


@labeling_function()
def hashtag_ai(x: Any) -> int:
    """An AI, ML or data-science hashtag (#AI, #MachineLearning, #reworkAI), unless the tweet is spam."""
    return AI if _has_ai_hashtag(x) and not _is_spam(x) else ABSTAIN


@labeling_function()
def link_ai_site(x: Any) -> int:
    """A link to an AI research, model or tutorial site: arxiv, paperswithcode, huggingface, openreview."""
    return AI if _links_to(x, vocab.AI_SITES) else ABSTAIN


@labeling_function()
def link_code_ml_words(x: Any) -> int:
    """A code link (GitHub) with ML words, or a blog/video link (Medium, YouTube) with AI vocabulary."""
    return AI if _code_link_about_ml(x) and not _is_spam(x) else ABSTAIN


@labeling_function()
def handle_ai_account(x: Any) -> int:
    """By, retweeting or mentioning a known AI account or one named for the field (@OpenAI, @x_AI)."""
    if any(_is_ai_handle(handle) for handle in _handles(x)):
        return ABSTAIN if _is_spam(x) else AI
    return ABSTAIN


other_ai_iverson = make_other_sense_lf(
    "other_ai_iverson", "'AI' as Allen Iverson: Iverson, Sixers, NBA, highlights, 'AI in his prime'.",
    vocab.IVERSON, _AI_ACRONYM_RE)
other_ai_air_india = make_other_sense_lf(
    "other_ai_air_india", "Air India and its flights ('flight AI 101', 'AI-9614').", vocab.AIR_INDIA)
other_ai_insemination = make_other_sense_lf(
    "other_ai_insemination", "'AI' as artificial insemination: heifers, cows, sires, breeding.",
    vocab.INSEMINATION, _AI_ACRONYM_RE)
other_ai_illustrator = make_other_sense_lf(
    "other_ai_illustrator", "'.ai' as an Adobe Illustrator file: Illustrator, 'AI and EPS', 'logo.ai'.",
    vocab.ILLUSTRATOR)
other_ai_game = make_other_sense_lf(
    "other_ai_game", "Game AI: 'enemy AI', 'AI teammates', 'the AI in this game', #gaming.",
    vocab.GAME, _AI_ACRONYM_RE)
other_ml_millilitres = make_other_sense_lf(
    "other_ml_millilitres", "'ml' as millilitres: '5 ml', '10ml', 'ml of'.", vocab.MILLILITRES)
other_ml_major_league = make_other_sense_lf(
    "other_ml_major_league", "'ML' as Major League or moneyline: MLB, 'ML -150', 'ML debut', parlays.",
    vocab.MAJOR_LEAGUE, _ML_OR_MLB)
other_dl = make_other_sense_lf(
    "other_dl", "'DL' as defensive line, download, disabled list or distance learning.", vocab.DL, flags=0)


@labeling_function()
def spam_hashtag_stuffing(x: Any) -> int:
    """A crypto pitch, or three or more hashtags with crypto, job-board or shop tags: spam riding #AI."""
    return NOT_AI if _is_spam(x) else ABSTAIN


spam_retail = make_topic_lf(
    "spam_retail", "Shop and gift spam ('% off', deals, free shipping, shop links), nothing technical.",
    vocab.RETAIL, vocab.SHOP_SITES)
topic_covid = make_topic_lf(
    "topic_covid", "COVID-19 news and lockdown talk with no technology or data word.", vocab.COVID)
topic_sports = make_topic_lf(
    "topic_sports", "Sports talk (leagues, games, players, sports sites) with no technology or data word.",
    vocab.SPORTS, vocab.SPORTS_SITES)


@labeling_function()
def short_chat(x: Any) -> int:
    """A short message (at most four words besides mentions, links and hashtags) with nothing technical."""
    return NOT_AI if _stats(x.text).prose_words <= 4 and not _technical(x) else ABSTAIN


@labeling_function()
def no_tech_words(x: Any) -> int:
    """Not a single technology or data word, AI hashtag, AI account or AI link."""
    return ABSTAIN if _technical(x) else NOT_AI


@labeling_function()
def hashtag_density(x: Any) -> int:
    """Hashtags are half the tokens, under 40% of them about AI, and the words name no AI: promotion."""
    stats, tags = _stats(x.text), list(_hashtags(x))
    if stats.hashtags < 4 or 2 * stats.hashtags < stats.tokens or _AI_ACRONYM_RE.search(stats.prose) or (
            _STRONG_AI.search(stats.prose)):
        return ABSTAIN
    ai_tags = sum(_is_ai_hashtag(tag) for tag in tags)
    return NOT_AI if 5 * ai_tags < 2 * max(len(tags), 1) else ABSTAIN


LFS: tuple[LabelingFunction, ...] = (
    keyword_ai, keyword_machine_learning, keyword_nlp_vision, keyword_data_science, keyword_ml_methods,
    keyword_ml_tools, hashtag_ai, link_ai_site, link_code_ml_words, handle_ai_account,
    other_ai_iverson, other_ai_air_india, other_ai_insemination, other_ai_illustrator, other_ai_game,
    other_ml_millilitres, other_ml_major_league, other_dl, spam_hashtag_stuffing, spam_retail, topic_covid,
    topic_sports, short_chat, no_tech_words, hashtag_density,
)


# --- frames and the label matrix -----------------------------------------------------------------


def frame_from_tweets(tweets: Iterable[Tweet]) -> pd.DataFrame:
    """The LFs' input frame from normalized tweets (links with their expanded form)."""
    rows = [(t.text, list(t.hashtags), list(t.mentions),
             [{"url": u.url, "expanded_url": u.expanded_url} for u in t.urls], t.author_handle, t.is_retweet)
            for t in tweets]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def frame_from_texts(texts: Iterable[str]) -> pd.DataFrame:
    """The LFs' input frame from plain texts (`ai-tweets weak-label`): hashtags, mentions and links
    are read from the text as `schema.from_text` does; no author, links not expanded. A text that
    is not a tweet (empty, too long) keeps its row, with no entities, so that rows stay aligned."""
    tweets = []
    for number, text in enumerate(texts, start=1):
        try:
            tweets.append(from_text(text, number, _TEXT_ONLY_TIME))
        except MalformedTweet:
            tweets.append(Tweet(id=number, text=str(text or ""), created_at=_TEXT_ONLY_TIME, source="text"))
    return frame_from_tweets(tweets)


def apply_lfs(df: pd.DataFrame) -> np.ndarray:
    """The label matrix L (rows × LFS, values -1/0/1), exactly `PandasLFApplier(LFS).apply(df)` (a
    test holds them equal) in half the time: one tight loop over namedtuples, no Series per row."""
    L = np.full((len(df), len(LFS)), ABSTAIN, dtype=int)
    if len(df) == 0:
        return L
    rows = df[list(COLUMNS)].itertuples(index=False, name="Row")
    L[:] = [[lf(x) for lf in LFS] for x in rows]
    return L


def lf_summary(L: np.ndarray, gold: np.ndarray | None = None) -> pd.DataFrame:
    """One row per LF: `lf` (name), `description` (its docstring line), `polarity` (labels it gave),
    `coverage`, `overlaps`, `conflicts` (shares of all rows), and against `gold` where it is 0/1
    (rows with -1 are ignored): `correct`, `incorrect`, `emp_accuracy` (NaN if it never voted there)."""
    with warnings.catch_warnings():  # scipy's FutureWarning about a dtype inside Snorkel's analysis
        warnings.simplefilter("ignore", FutureWarning)
        stats = LFAnalysis(L, list(LFS)).lf_summary()
    summary = pd.DataFrame({
        "lf": [lf.name for lf in LFS],
        "description": [_description(lf) for lf in LFS],
        "polarity": [[int(label) for label in p] for p in stats["Polarity"]],
        "coverage": stats["Coverage"].to_numpy(float),
        "overlaps": stats["Overlaps"].to_numpy(float),
        "conflicts": stats["Conflicts"].to_numpy(float),
    })
    if gold is not None:
        gold = np.asarray(gold, dtype=float)  # None/NaN/-1 (no gold label) are all left out
        labeled = np.isin(gold, (NOT_AI, AI))
        votes, truth = L[labeled], gold[labeled].astype(int)[:, None]
        correct = ((votes == truth) & (votes != ABSTAIN)).sum(axis=0)
        incorrect = ((votes != truth) & (votes != ABSTAIN)).sum(axis=0)
        summary["correct"], summary["incorrect"] = correct, incorrect
        with np.errstate(divide="ignore", invalid="ignore"):
            summary["emp_accuracy"] = np.where(correct + incorrect > 0, correct / (correct + incorrect), np.nan)
    return summary


def _description(lf: LabelingFunction) -> str:
    doc = lf._f.__doc__ or ""  # Snorkel keeps the wrapped function, not its docstring
    return doc.strip().splitlines()[0] if doc.strip() else ""
