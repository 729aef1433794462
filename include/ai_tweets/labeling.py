"""Weak supervision: Snorkel labeling functions (LFs) and the LabelModel that combines them.

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
import tempfile
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from snorkel.labeling import LabelingFunction, LFAnalysis, labeling_function
from snorkel.labeling.model import LabelModel

from ai_tweets.dataset import ABSTAIN, AI, NOT_AI
from ai_tweets.schema import MalformedTweet, Tweet, from_text

# What an LF may read: one row of a frame with these columns (a Series or a namedtuple).
COLUMNS = ("text", "hashtags", "mentions", "urls", "author_handle", "is_retweet")
_TEXT_ONLY_TIME = pd.Timestamp("2020-01-01", tz="UTC").to_pydatetime()  # plain texts have none; no LF reads it

# --- vocabulary --------------------------------------------------------------------------------
# Spelled-out phrases (any case): they rarely mean anything but AI, ML or data science.
_AI_PHRASES = (
    r"artificial[\s-]+intelligence", r"gen[\s-]?ai",
    r"(?:explainable|generative|conversational|responsible|ethical|trustworthy)[\s-]+ai",
)
_ML_PHRASES = (
    r"machine[\s-]+learning", r"deep[\s-]+learning", r"neural[\s-]+net(?:work)?s?",
    r"reinforcement[\s-]+learning", r"(?:un|self[\s-]|semi[\s-])?supervised[\s-]+learning",
    r"transfer[\s-]+learning", r"federated[\s-]+learning", r"few[\s-]shot", r"zero[\s-]shot",
    r"ml[\s-]?ops", r"auto[\s-]?ml", r"tiny[\s-]?ml", r"graph[\s-]+neural",
)
_NLP_VISION_PHRASES = (
    r"natural[\s-]+language[\s-]+(?:processing|understanding|generation)", r"computer[\s-]+vision",
    r"(?:large[\s-]+)?language[\s-]+models?", r"chat[\s-]?gpt", r"gpt-?[234](?:o|\.5)?", r"chat[\s-]?bots?",
    r"(?:image|speech|voice|face|facial)[\s-]+recognition", r"object[\s-]+detection",
    r"image[\s-]+(?:segmentation|classification|captioning|generation)", r"sentiment[\s-]+analysis",
    r"named[\s-]+entity[\s-]+recognition", r"machine[\s-]+translation", r"question[\s-]+answering",
    r"text[\s-]+(?:classification|summari[sz]ation|generation)", r"speech[\s-]+(?:synthesis|to[\s-]text)",
    r"text[\s-]+to[\s-]+(?:speech|image)", r"deep[\s-]?fakes?", r"diffusion[\s-]+models?",
    r"transformer[\s-]+(?:models?|architecture)", r"word[\s-]+embeddings?", r"llama[\s-]?[23]",
)
_DATA_SCIENCE_PHRASES = (
    r"data[\s-]+scien(?:ce|tists?)", r"predictive[\s-]+(?:analytics|model(?:l?ing|s)?)", r"data[\s-]+mining",
    r"feature[\s-]+(?:engineering|stores?)", r"kaggle", r"jupyter", r"anomaly[\s-]+detection",
    r"time[\s-]+series[\s-]+(?:forecasting|models?)", r"recommend(?:er|ation)[\s-]+(?:systems?|engines?)",
)
_METHOD_PHRASES = (
    r"fine[\s-]?tun(?:e|ed|es|ing)", r"back[\s-]?propagation", r"gradient[\s-]+(?:descent|boost(?:ing|ed)?)",
    r"over[\s-]?fitt?(?:ing|ed)", r"hyper[\s-]?parameters?", r"training[\s-]+(?:data|set|loop|runs?)",
    r"labell?ed[\s-]+data", r"random[\s-]+forests?", r"logistic[\s-]+regression", r"decision[\s-]+trees?",
    r"support[\s-]+vector[\s-]+machines?", r"k-?means", r"convolutional", r"auto-?encoders?", r"embeddings",
    r"attention[\s-]+mechanism", r"pre-?trained[\s-]+models?", r"knowledge[\s-]+distillation",
    r"weak[\s-]+supervision", r"model[\s-]+(?:training|inference|serving|monitoring|registry|drift)",
    r"cross[\s-]validation", r"data[\s-]+(?:augmentation|drift)", r"prompt[\s-]+engineering",
    r"instruction[\s-]+tuning", r"learning[\s-]+rate", r"loss[\s-]+function", r"confusion[\s-]+matrix",
    r"experiment[\s-]+tracking", r"mixed[\s-]+precision",
)
_TOOL_NAMES = (
    r"py-?torch", r"tensor-?flow", r"keras", r"scikit-?learn", r"sklearn", r"hugging[\s-]?face", r"xgboost",
    r"lightgbm", r"catboost", r"spacy", r"ml-?flow", r"kubeflow", r"fast\.?ai", r"openai", r"deepmind",
    r"google[\s-]+colab", r"langchain", r"stable[\s-]+diffusion", r"midjourney", r"onnx", r"vllm",
)
# Acronyms keep their case: "AI" counts, "said", "Kai" and the Portuguese "ai" do not.
_AI_ACRONYM = r"(?<![\w#@$/.&])(?:AI|AIs|A\.I\.?)(?![\w]|[-/]\d|\.\w)"
_ML_ACRONYM = (
    r"(?<![#@$])(?:\b(?:AI|A\.I\.?)\s*(?:/|&|&amp;|and|\+|,)\s*(?:ML|DL|NLP)\b"
    r"|\bML\s*(?:/|&|&amp;|and|\+)\s*(?:AI|DL|NLP)\b"
    r"|\b(?:ML|NLP|DL)(?:-based|-powered|-driven)?\s+(?:models?|engineers?|engineering|research(?:ers?)?|"
    r"pipelines?|algorithms?|systems?|platforms?|workflows?|projects?|papers?|practitioners?|community|"
    r"techniques?|applications?|infrastructure|teams?|tools?|librar(?:y|ies)|frameworks?|courses?)\b"
    r"|\b(?:NLP|LLMs?|NLU|RNNs?|LSTMs?|GANs?|BERT|RoBERTa)\b)"
)

# The acronyms' other meanings. `(?-i:AI)` keeps the acronym's case inside a case-blind pattern.
_IVERSON = (r"\b(?:allen[\s-]?)?iverson\b|\bsixers\b|\b76ers\b|\bcrossover\b|\bnba\b|\bhighlights\b|\bdunks?\b|"
            r"\bpoints\b|\bhall of fame\b|\bmvp\b|\b(?-i:AI) in his prime\b|\bprime (?-i:AI)\b")
_AIR_INDIA = (r"\bair[\s-]?india\b|\bairindia\b|\bvande\s*bharat|\bflight\s+(?-i:AI)\b|"
              r"(?-i:\bAI[\s-]?(?!(?:19|20)\d\d\b)\d{3,4}\b)")  # a flight number, not a year
_INSEMINATION = r"\binseminat\w*|\b(?:heifers?|cows?|cattle|sires?|bulls?|dairy|calving|breeding|semen)\b"
_ILLUSTRATOR = (r"\billustrator\b|\.ai\s+files?\b|\b(?-i:AI)\s*(?:,|and|&|&amp;|/)\s*eps\b|"
                r"\beps\s*(?:,|and|&|&amp;|/)\s*(?-i:AI)\b|"
                r"\b[\w-]+\.ai\b(?![/\w.])(?=.*\b(?:files?|open|logo|vector|eps|svg)\b)")
_GAME = (r"\b(?:enemy|enemies|companion|npc|cpu|bot|teammates?|opponents?|allies|ally|squad|games?|game's|"
         r"gaming|in-?game)\s+(?-i:AI)\b|\b(?-i:AI)\s+(?:teammates?|opponents?|enemies|companions?|"
         r"difficulty|drivers?|cheats?|controlled|players?|pathfinding)\b|\bthe (?-i:AI) in (?:this|the|that) "
         r"game\b|\bvideo ?games?\b|\bgameplay\b|\bhard mode\b|#(?:gaming|ps4|ps5|xbox\w*|nintendoswitch|gamer)\b")
_MILLILITRES = (r"\d\s?(?:ml|millilit(?:re|er)s?)\b(?!\s+(?:models?|engineers?|research|papers?|projects?|"
                r"algorithms?))|\bml of\b|\bmillilit(?:re|er)s?\b")
_MAJOR_LEAGUE = (r"(?-i:\bMLB\b|\bML\s*[+-]\d{3}\b|\bML\s+(?:debut|picks?|odds|lock|bets?|play|parlay|dog))|"
                 r"\bmoney\s?line\b|\bparlay\b|\bbaseball\b|\bpitch(?:er|ers|ing)\b|\binnings?\b|\bbullpen\b|"
                 r"\bbetting\b|\bcalled up\b|\bprospects?\b")
_DL = (r"(?-i:\bDL\b)(?=.*(?:\b(?:depth chart|draft|pass rush|linem[ae]n|tackles?|sacks?|download\w*|links?|"
       r"mixtapes?|remix|songs?|album|bio|disabled list|injur\w+|licen[cs]e|distance learning|curriculum|"
       r"speeds?)\b|(?-i:\b(?:LB|OL|DE|DT|WR|QB|CB|NFL|IL|RT)\b)))"
       r"|(?-i:\b(?:OL|DE|DT|LB)\s*(?:/|&|&amp;|and)\s*DL\b|\bDL\s*(?:/|&|&amp;)\s*(?:RT|LB|DE|DT|OL)\b)")

# Spam that rides #AI #ML: crypto pitches (with or without hashtags), job boards, shops.
_CRYPTO_PITCH = r"to the moon|air-?drops?|pre-?sale|trading bot|\d+x potential|just listed|claim (?:your|before)"
_SPAM_PHRASES = (rf"{_CRYPTO_PITCH}|dm (?:me )?for|we'?re hiring|now hiring|job alert|apply now|"
                 r"full[\s-]time|\d+ new .{0,40} openings|\d+\s?% (?:off|discount)|deal of the day|"
                 r"free shipping|shop now|buy now|giveaway")
_SPAM_TAGS = frozenset({
    "bitcoin", "btc", "eth", "ethereum", "crypto", "cryptocurrency", "cryptocurrencies", "altcoin",
    "altcoins", "airdrop", "presale", "ico", "defi", "nft", "nfts", "binance", "forex", "cryptotrading",
    "giveaway", "jobs", "job", "hiring", "jobsearch", "jobopening", "jobalert", "nowhiring", "employment",
    "career", "careers", "recruiting", "recruitment", "vacancy", "remotejobs", "techjobs", "aijobs",
    "datajobs", "deal", "deals", "sale", "discount", "coupon", "freebies", "shopmycloset",
})
# Everyday topics (words may be hashtags: #COVID19, #StayHome, #NFL).
_RETAIL = (r"\d+\s?% off|deal of the day|free shipping|shop now|buy now|order now|giveaway|discount(?:ed|s)?|"
           r"coupons?|promo code|on sale|flash sale|gift (?:ideas?|cards?|guide)|restocked|shopmycloset|"
           r"limited time offer|best ?sellers?")
_COVID = (r"covid\w*|coronavirus\w*|corona|pandemic|epidemic|lockdown\w*|quarantin\w*|self[\s-]?isolat\w*|"
          r"social[\s-]?distancing|stay ?home\w*|stay ?safe|ventilators?|face ?masks?|masks?|chloroquine|"
          r"hydroxychloroquine|cases|deaths|death toll|infected|outbreak|virus|wuhan|hospitals?|curfew|"
          r"tested positive|flatten the curve|vaccines?|frontline workers|(?-i:PPE|WHO|NHS|CDC)")
_SPORTS = (r"nfl\w*|nba|mlb|nhl|ufc|wwe|fifa|uefa|ucl|ipl|premier league|champions league|la ?liga|serie a|"
           r"touchdowns?|quarterbacks?|receivers?|linebackers?|pitchers?|innings?|home runs?|playoffs?|draft|"
           r"goalkeeper|striker|midfielder|hat-?trick|penalt(?:y|ies)|coach|league|matches|match|scored|"
           r"goals?|basketball|baseball|football|soccer|cricket|tennis|golf|hockey|wrestling|boxing|"
           r"stadium|transfer window|world cup|olympics?|athletes?|teammates?|offseason|(?-i:QB)")
# Any hint of technology or data: without one, a tweet is very unlikely to be about AI.
_TECH_HINTS = (r"algorithm\w*|data\w*|models?|model(?:l?ing)|learn\w*|neural|robot\w*|automat\w*|comput\w*|"
               r"software|code|coding|coder|programm\w*|python|sql|tech\w*|digital\w*|analytic\w*|"
               r"statistic\w*|predict\w*|research\w*|science|scientists?|engineer\w*|iot|cloud|gpus?|chips?|"
               r"apps?|api|github|startups?|innovation|intelligen\w*|smart|bots?|cyber\w*|internet|online|"
               r"platform|papers?|preprint|arxiv|study|studies|tensor\w*|training|forecast\w*|detection|"
               r"classif\w*|pipelines?|tuning|benchmark\w*|workshop|webinar|conference|inference|graphs?|"
               r"imaging|segmentation|retrieval|open[\s-]?source|notebooks?|dashboards?|pandas|deploy\w*|"
               r"production|latency|accuracy|metrics?|baselines?|features?|regression|embedding\w*|"
               r"token\w*|checkpoint\w*|quantiz\w*|optimi[sz]\w*|epochs?|batch\w*|parameters?|ablations?")

_AI_HASHTAGS = frozenset({
    "ai", "artificialintelligence", "machinelearning", "deeplearning", "ml", "dl", "nlp", "datascience",
    "datascientist", "datascientists", "computervision", "neuralnetworks", "neuralnetwork", "mlops", "llm",
    "llms", "generativeai", "genai", "reinforcementlearning", "explainableai", "xai", "100daysofmlcode",
    "pytorch", "tensorflow", "keras", "naturallanguageprocessing", "chatgpt", "openai", "datamining",
    "predictiveanalytics", "aiethics", "ethicalai", "responsibleai", "conversationalai", "chatbots",
    "chatbot", "deepfake", "deepfakes", "machine_learning", "artificial_intelligence", "deep_learning",
    "data_science",
})
# Tags built on the acronym, keeping its case: #GoodAI, #reworkAI, #AINews, #ResponsibleML.
_AI_HASHTAG_SHAPE = re.compile(r"(?:[a-z0-9]|^)(?:AI|ML)$|^AI[A-Z][a-z]")
_AI_HANDLES = frozenset(handle.lower() for handle in (
    "OpenAI", "DeepMind", "GoogleAI", "GoogleDeepMind", "MetaAI", "facebookai", "MSFTResearch",
    "huggingface", "PyTorch", "TensorFlow", "kdnuggets", "TDataScience", "paperswithcode", "DeepLearningAI_",
    "ylecun", "AndrewYNg", "karpathy", "fchollet", "goodfellow_ian", "hardmaru", "JeffDean", "demishassabis",
    "KirkDBorne", "Synced_Global", "AnalyticsVidhya", "MIT_CSAIL", "StanfordAILab", "berkeley_ai",
    "allen_ai", "weights_biases", "MLflow", "kaggle", "fastdotai", "jeremyphoward", "rasbt", "chipro",
    "math_rachel", "timnitGebru", "GaryMarcus", "seb_ruder", "stanfordnlp", "NVIDIAAI", "AzureML",
    "IBMWatson", "Ronald_vanLoon",
))
# Handles named for the field: @IndianSocietyAI, @ml_review, @DataScienceCtrl (not @MLB, @Kai).
_AI_HANDLE_SHAPE = re.compile(r"[a-z0-9](?:AI|ML|NLP)(?:_|$)|^(?:AI|ML|NLP)_|"
                              r"(?i:datascien|machinelearn|deeplearn|artificialintel|neuralnet)")

_AI_SITES = (
    "arxiv.org", "paperswithcode.com", "huggingface.co", "openreview.net", "distill.pub", "aclanthology.org",
    "aclweb.org", "neurips.cc", "nips.cc", "mlr.press", "jmlr.org", "ai.googleblog.com", "research.google",
    "ai.facebook.com", "ai.meta.com", "openai.com", "deepmind.com", "deepmind.google", "kaggle.com",
    "towardsdatascience.com", "kdnuggets.com", "machinelearningmastery.com", "analyticsvidhya.com",
    "pytorch.org", "tensorflow.org", "keras.io", "scikit-learn.org", "fast.ai", "wandb.ai", "neptune.ai",
    "thegradient.pub", "syncedreview.com", "bair.berkeley.edu", "ai.stanford.edu", "deeplearning.ai",
    "mlflow.org", "datascience.stackexchange.com", "stats.stackexchange.com", "blogs.nvidia.com",
    "venturebeat.com/ai", "technologyreview.com/topic/artificial",
)
_CODE_SITES = ("github.com", "gitlab.com", "colab.research.google.com", "bitbucket.org")
_BLOG_VIDEO_SITES = ("medium.com", "github.io", "substack.com", "dev.to", "youtube.com", "youtu.be")
# What makes a code link about ML: words in the tweet, or tokens of the link's path.
_ML_CODE_WORDS = re.compile(
    r"(?<![a-z])(?:nlp|llms?|gpt\w*|bert|models?|datasets?|training|trained|neural|deep learning|"
    r"machine learning|classifiers?|predictions?|inference|tensor\w*|torch|keras|transformers?|embeddings?|"
    r"notebooks?|computer vision|detection|segmentation|regression|diffusion|gans?|reinforcement|"
    r"fine-?tun\w*|data science|research)(?![a-z])", re.IGNORECASE)
_ML_PATH_TOKENS = re.compile(r"(?<![a-z0-9])(?:ai|ml|nlp|llm|research|learning|neural|models?|transformers?|"
                             r"torch|tensorflow|keras|bert|gpt\w*|diffusion|vision|detection|distillation|"
                             r"embeddings?|classification|segmentation|tuning|supervision)(?![a-z0-9])")
_SHOP_SITES = ("amazon.", "amzn.", "etsy.com", "ebay.", "poshmark.com", "aliexpress.", "flipkart.com",
               "redbubble.com", "teespring.com")
_SPORTS_SITES = ("espn.", "bleacherreport.com", "nfl.com", "nba.com", "mlb.com", "skysports.com", "goal.com",
                 "cricbuzz.com", "theathletic.com")


def _words(body: str) -> re.Pattern[str]:
    """Whole words, any case, not inside a hashtag or a handle (AI vocabulary has its own LFs for tags)."""
    return re.compile(rf"(?<![\w#@])(?:{body})(?!\w)", re.IGNORECASE)


def _topic_words(body: str) -> re.Pattern[str]:
    """Whole words, any case, hashtags included (#COVID19 is COVID talk)."""
    return re.compile(rf"(?<![\w@])#?(?:{body})(?!\w)", re.IGNORECASE)


_AI_WORDS = _words("|".join(_AI_PHRASES))
_ML_WORDS = _words("|".join(_ML_PHRASES))
_NLP_VISION_WORDS = _words("|".join(_NLP_VISION_PHRASES))
_DATA_SCIENCE_WORDS = _words("|".join(_DATA_SCIENCE_PHRASES))
_METHOD_WORDS = _words("|".join(_METHOD_PHRASES))
_TOOL_WORDS = _words("|".join(_TOOL_NAMES))
# Spelled-out AI vocabulary that a confuser ("AI in his prime", "5 ml", "enemy AI") never has.
_STRONG_AI = _words("|".join((*_AI_PHRASES, *_ML_PHRASES, *_NLP_VISION_PHRASES, *_DATA_SCIENCE_PHRASES,
                              *_METHOD_PHRASES, *_TOOL_NAMES)))
_AI_ACRONYM_RE = re.compile(_AI_ACRONYM)
_ML_ACRONYM_RE = re.compile(_ML_ACRONYM)
_ML_OR_MLB = re.compile(r"\bMLB?\b")
_OTHER_AI_SENSES = re.compile("|".join((_IVERSON, _AIR_INDIA, _INSEMINATION, _ILLUSTRATOR, _GAME)),
                              re.IGNORECASE)
_OTHER_ML_SENSES = re.compile(f"{_MILLILITRES}|{_MAJOR_LEAGUE}", re.IGNORECASE)
_CRYPTO_PITCH_RE = _words(_CRYPTO_PITCH)
_SPAM_TEXT = re.compile(_SPAM_PHRASES, re.IGNORECASE)
_TECH = _words(_TECH_HINTS)
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
    return tag.lower() in _AI_HASHTAGS or _AI_HASHTAG_SHAPE.search(tag) is not None


def _has_ai_hashtag(x: Any) -> bool:
    return any(_is_ai_hashtag(tag) for tag in _hashtags(x))


def _is_ai_handle(handle: str) -> bool:
    return handle.lower() in _AI_HANDLES or _AI_HANDLE_SHAPE.search(handle) is not None


def _code_link_about_ml(x: Any) -> bool:
    """A code link with ML words in the tweet or the link's path, or a blog/video link with AI words."""
    for host, path in _hosts(x):
        if _on(host, path, _CODE_SITES):
            if _ML_CODE_WORDS.search(_stats(x.text).prose) or _ML_PATH_TOKENS.search(path):
                return True
        elif _on(host, path, _BLOG_VIDEO_SITES) and (_stats(x.text).ai_words or _ML_PATH_TOKENS.search(path)):
            return True
    return False


def _ai_signal(x: Any) -> bool:
    """Anything a positive LF looks for: AI vocabulary, an AI hashtag, account, site or code link."""
    return (_stats(x.text).ai_words or _has_ai_hashtag(x) or _links_to(x, _AI_SITES)
            or any(_is_ai_handle(h) for h in _handles(x)) or _code_link_about_ml(x))


def _technical(x: Any) -> bool:
    """An AI signal, or any hint of technology or data in the words."""
    return _stats(x.text).tech_hint or _ai_signal(x)


def _handles(x: Any) -> list[str]:
    handles = [x.author_handle] if isinstance(x.author_handle, str) else []
    handles.extend(x.mentions if x.mentions is not None else ())
    return handles


def _is_spam(x: Any) -> bool:
    """A crypto pitch, or three or more hashtags with crypto, job-board or shop tags or phrases."""
    if _stats(x.text).crypto_pitch:
        return True
    tags = list(_hashtags(x))
    return len(tags) >= 3 and (any(tag.lower() in _SPAM_TAGS for tag in tags)
                               or _SPAM_TEXT.search(x.text) is not None)


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
    "keyword_data_science", "Data science, predictive analytics, data mining, anomaly detection, Kaggle.",
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
    return AI if _links_to(x, _AI_SITES) else ABSTAIN


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
    _IVERSON, _AI_ACRONYM_RE)
other_ai_air_india = make_other_sense_lf(
    "other_ai_air_india", "Air India and its flights ('flight AI 101', 'AI-9614').", _AIR_INDIA)
other_ai_insemination = make_other_sense_lf(
    "other_ai_insemination", "'AI' as artificial insemination: heifers, cows, sires, breeding.",
    _INSEMINATION, _AI_ACRONYM_RE)
other_ai_illustrator = make_other_sense_lf(
    "other_ai_illustrator", "'.ai' as an Adobe Illustrator file: Illustrator, 'AI and EPS', 'logo.ai'.",
    _ILLUSTRATOR)
other_ai_game = make_other_sense_lf(
    "other_ai_game", "Game AI: 'enemy AI', 'AI teammates', 'the AI in this game', #gaming.",
    _GAME, _AI_ACRONYM_RE)
other_ml_millilitres = make_other_sense_lf(
    "other_ml_millilitres", "'ml' as millilitres: '5 ml', '10ml', 'ml of'.", _MILLILITRES)
other_ml_major_league = make_other_sense_lf(
    "other_ml_major_league", "'ML' as Major League or moneyline: MLB, 'ML -150', 'ML debut', parlays.",
    _MAJOR_LEAGUE, _ML_OR_MLB)
other_dl = make_other_sense_lf(
    "other_dl", "'DL' as defensive line, download, disabled list or distance learning.", _DL, flags=0)


@labeling_function()
def spam_hashtag_stuffing(x: Any) -> int:
    """A crypto pitch, or three or more hashtags with crypto, job-board or shop tags: spam riding #AI."""
    return NOT_AI if _is_spam(x) else ABSTAIN


spam_retail = make_topic_lf(
    "spam_retail", "Shop and gift spam ('% off', deals, free shipping, shop links), nothing technical.",
    _RETAIL, _SHOP_SITES)
topic_covid = make_topic_lf(
    "topic_covid", "COVID-19 news and lockdown talk with no technology or data word.", _COVID)
topic_sports = make_topic_lf(
    "topic_sports", "Sports talk (leagues, games, players, sports sites) with no technology or data word.",
    _SPORTS, _SPORTS_SITES)


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


# --- the label model -----------------------------------------------------------------------------


def fit_label_model(L_train: np.ndarray, seed: int = 0, epochs: int = 500,  # noqa: N803 - Snorkel's name
                    class_balance: list[float] | None = None) -> LabelModel:
    """Snorkel's LabelModel (binary) fitted on `L_train`, seeded: the same matrix gives the same model.

    `class_balance` is the prior [P(NOT_AI), P(AI)]; by default it is estimated from the LFs'
    majority vote. (Snorkel's own default, 50/50, is far from a stream where AI is rare, and
    with it the model explains the negative LFs' large coverage by making them fire on AI too.)
    """
    if len(L_train) == 0:
        raise ValueError("cannot fit the label model on an empty label matrix: the training split has no "
                         "tweets yet (capture some, then run dedup and split first)")
    model = LabelModel(cardinality=2, verbose=False)
    model.fit(L_train, class_balance=class_balance or majority_class_balance(L_train), progress_bar=False,
              n_epochs=epochs, seed=seed, log_freq=epochs)
    return model


def majority_class_balance(L: np.ndarray, floor: float = 0.01) -> list[float]:
    """[P(NOT_AI), P(AI)] among the rows where the LFs' majority vote is not a tie, within [floor, 1-floor]."""
    ai, not_ai = (L == AI).sum(axis=1), (L == NOT_AI).sum(axis=1)
    decided = int((ai != not_ai).sum())
    share = float((ai > not_ai).sum() / decided) if decided else 0.5
    share = min(max(share, floor), 1 - floor)
    return [1 - share, share]


def weak_labels(model: LabelModel, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weak_label, weak_prob) per row. weak_label is ABSTAIN where every LF abstained, else the
    model's label, a tie going to NOT_AI (a fixed rule: precision on AI first). weak_prob is
    P(AI) from `predict_proba`; where every LF abstained that is the model's class prior."""
    if len(L) == 0:
        return np.empty(0, dtype=int), np.empty(0, dtype=float)
    probs = model.predict_proba(L)[:, AI]
    labels = model.predict(L, tie_break_policy="abstain")
    labels[labels == ABSTAIN] = NOT_AI
    labels[(L == ABSTAIN).all(axis=1)] = ABSTAIN
    return labels.astype(int), probs.astype(float)


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


def dump_label_model(model: LabelModel) -> bytes:
    """The fitted model as bytes (Snorkel's own `save`: a pickle; load only bytes you trust)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "label_model.pkl"
        model.save(str(path))
        return path.read_bytes()


def load_label_model(data: bytes) -> LabelModel:
    """A model from `dump_label_model` bytes; it predicts exactly as the dumped one did."""
    model = LabelModel(cardinality=2, verbose=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "label_model.pkl"
        path.write_bytes(data)
        model.load(str(path))
    return model
