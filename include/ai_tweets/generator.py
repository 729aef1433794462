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
import random
import re
import string
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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


# --- vocabulary -----------------------------------------------------------------------------

Source = Callable[[random.Random], str]


def _pick(*options: str) -> Source:
    return lambda rng: rng.choice(options)


def _digits(low: int, high: int) -> Source:
    return lambda rng: str(rng.randrange(low, high))


def _alnum(length: int) -> Source:
    return lambda rng: "".join(rng.choices(_ALNUM, k=length))


def _slug(*words: Source) -> Source:
    return lambda rng: "-".join(w(rng) for w in words).lower().replace(" ", "-")


MODEL = _pick("BERT", "GPT-2", "T5", "RoBERTa", "ResNet-50", "EfficientNet-B0", "YOLOv5",
              "a Vision Transformer", "a U-Net", "an LSTM", "a GAN", "a diffusion model", "XGBoost",
              "DistilBERT", "CLIP", "Llama 2", "Mistral 7B", "a small language model",
              "a graph neural network", "a variational autoencoder", "wav2vec 2.0", "Whisper", "a 1D CNN",
              "a seq2seq transformer", "LightGBM", "DeBERTa-v3")
SIMPLE_MODEL = _pick("logistic regression", "a random forest", "gradient boosting", "XGBoost", "LightGBM",
                     "a linear SVM", "k-nearest neighbours", "naive Bayes", "a small MLP", "CatBoost")
LIBRARY = _pick("PyTorch", "TensorFlow", "Keras", "JAX", "scikit-learn", "Hugging Face Transformers", "spaCy",
                "pandas", "PyTorch Lightning", "fastai", "ONNX Runtime", "Ray", "Spark MLlib", "LangChain",
                "vLLM", "Optuna", "Polars", "NumPy", "Snorkel", "sentence-transformers", "Flax", "DuckDB")
TASK = _pick("sentiment analysis", "named entity recognition", "image segmentation", "object detection",
             "machine translation", "text summarization", "question answering", "speech recognition",
             "anomaly detection", "time series forecasting", "recommendation", "fraud detection",
             "churn prediction", "document classification", "image captioning", "pose estimation",
             "code generation", "retrieval-augmented generation", "topic modeling", "entity linking",
             "protein structure prediction", "medical image classification", "semantic search",
             "optical character recognition", "intent detection", "depth estimation")
TECHNIQUE = _pick("contrastive learning", "knowledge distillation", "transfer learning", "few-shot learning",
                  "self-supervised pretraining", "quantization", "pruning", "LoRA fine-tuning", "RLHF",
                  "active learning", "weak supervision", "data augmentation", "mixed-precision training",
                  "hyperparameter search", "gradient checkpointing", "curriculum learning",
                  "federated learning", "sparse attention", "batch normalization", "dropout", "beam search",
                  "instruction tuning", "prompt engineering", "label smoothing", "early stopping",
                  "cross-validation", "ensembling", "mixture of experts")
TITLE_ADJ = _pick("Efficient", "Scalable", "Robust", "Sparse", "Self-Supervised", "Multilingual",
                  "Hierarchical", "Interpretable", "Data-Efficient", "Adaptive", "Unified", "Lightweight",
                  "Causal", "Differentiable", "Contrastive", "Calibrated", "Long-Context", "Compositional")
TITLE_NOUN = _pick("Transformers", "Representations", "Embeddings", "Attention", "Graph Networks",
                   "Language Models", "Vision Models", "Retrieval", "Distillation", "Tokenization",
                   "Pretraining", "Neural Fields", "Reward Models", "Speech Encoders", "Diffusion Models")
TITLE_TASK = _pick("Machine Translation", "Open-Domain Question Answering", "Image Segmentation",
                   "Object Detection", "Text Classification", "Speech Recognition", "Code Generation",
                   "Tabular Data", "Time Series Forecasting", "Named Entity Recognition", "Summarization",
                   "Visual Question Answering", "Low-Resource Languages", "Medical Imaging", "Recommendation")
DATASET = _pick("ImageNet", "COCO", "SQuAD", "GLUE", "SuperGLUE", "MNIST", "CIFAR-10", "LibriSpeech",
                "WikiText-103", "MS MARCO", "Common Voice", "the Titanic dataset", "CoNLL-2003",
                "IMDB reviews", "ADE20K", "MMLU", "HumanEval", "KITTI", "a million product reviews")
METRIC = _pick("F1", "accuracy", "BLEU", "mAP", "perplexity", "AUC", "top-1 accuracy", "ROUGE-L",
               "word error rate", "recall at 10", "exact match", "macro F1", "calibration error")
GAIN = _pick("1.8 points", "2.3 points", "4%", "12%", "0.7 points", "a wide margin", "3x less compute",
             "half the parameters", "5.1 points", "9% relative")
SCORE = _pick(*(f"0.{n}" for n in range(71, 99)))
CONF = _pick("NeurIPS", "ICML", "ICLR", "CVPR", "ACL", "EMNLP", "KDD", "AAAI", "PyData Berlin", "ODSC East",
             "Spark + AI Summit", "MLSys", "Interspeech", "NAACL", "ECCV", "PyCon", "the TWIML meetup",
             "the local ML meetup", "Data Council")
WHEN = _pick("tomorrow", "on Thursday", "next week", "this Friday", "today at 3pm", "on Monday morning",
             "in two weeks", "tonight")
ORG = _pick("Our lab", "The team", "Google Research", "Meta AI", "OpenAI", "DeepMind", "Hugging Face",
            "Allen AI", "Mila", "Stanford NLP", "EleutherAI", "Microsoft Research", "our startup")
SIZE = _pick("60M", "125M", "350M", "1.3B", "3B", "7B", "13B", "small", "tiny", "distilled")
MODALITY = _pick("text", "vision", "speech", "code", "multimodal", "embedding", "vision-language")
VERSION = _pick("2.0", "1.5", "0.9", "3.1", "4.0", "1.13", "0.24", "2.12", "1.0", "5.2")
FEATURE = _pick("data loaders", "distributed training", "model export", "tokenizers", "mixed precision",
                "sparse tensors", "GPU memory use", "checkpointing", "inference latency", "type hints",
                "error messages", "the callback API")
BUG = _pick("label leakage", "a shuffled validation split", "duplicated rows", "the wrong tokenizer",
            "a learning rate 100x too high", "images loaded as BGR", "a silent dtype cast",
            "train and test from the same users", "padding tokens in the loss",
            "normalisation stats from test")
CHECK = _pick("data splits", "label distribution", "preprocessing", "baselines", "learning curves",
              "tokenizer output", "confusion matrix")
LLM_WEAKNESS = _pick("multi-step arithmetic", "long documents", "citing sources", "low-resource languages",
                     "calibrated uncertainty", "consistent JSON output", "tabular reasoning")
MLOPS_TOOL = _pick("MLflow", "Kubeflow", "Airflow", "Feast", "Seldon", "BentoML", "Evidently",
                   "Great Expectations", "DVC", "TFX", "Prefect", "Triton", "Kafka",
                   "Spark Structured Streaming")
MLOPS_TOPIC = _pick("model monitoring", "feature stores", "data drift detection", "model registries",
                    "CI for ML", "shadow deployments", "online inference", "experiment tracking",
                    "reproducible training pipelines", "data validation", "model rollbacks", "batch scoring",
                    "retraining triggers")
DATA_DOMAIN = _pick("sensor", "sales", "clickstream", "hospital", "weather", "taxi trip", "energy", "survey",
                    "transaction", "air quality", "housing")
N_SMALL = _pick("3", "5", "7", "10", "12", "15", "20", "30")
N_LARGE = _digits(20, 900)
EMOJI_AI = ("🚀", "🔥", "🤖", "🧠", "📈", "✨", "👇", "📄", "🎉", "💡", "📊", "🧵")
EMOJI_CHAT = ("😂", "🙏", "❤️", "😭", "🤣", "😅", "🙄", "😍", "💯", "👀", "🥲", "😩")
EMOJI_SPAM = ("💰", "🔥", "🚀", "💎", "🎁", "⚡", "✅", "📢")

TEAM_MLB = _pick("Yankees", "Dodgers", "Red Sox", "Cubs", "Astros", "Mets", "Braves", "Giants", "Padres",
                 "Phillies")
TEAM_NFL = _pick("Bears", "Packers", "Cowboys", "Eagles", "Steelers", "Chiefs", "Ravens", "Bills", "Jets",
                 "49ers")
TEAM_SOCCER = _pick("Arsenal", "Liverpool", "Barcelona", "Juventus", "Bayern", "Chelsea", "Ajax", "Porto",
                    "PSG")
PERSON = _pick("Johnson", "Martinez", "Williams", "Okoye", "Thompson", "Rivera", "Jackson", "Davis", "Moore",
               "Lee")
ODDS = _pick("-150", "+120", "-110", "+145", "-200", "+105", "-135")
CITY = _pick("Delhi", "Mumbai", "London", "Chicago", "Lagos", "Toronto", "Madrid", "Manila", "Sydney",
             "Dubai", "New York", "Bengaluru", "Milan", "Houston")
COUNTRY = _pick("Italy", "Spain", "India", "the UK", "Germany", "Nigeria", "Brazil", "Canada", "France",
                "Iran")
LIQUID = _pick("milk", "water", "olive oil", "cream", "lemon juice", "vanilla extract", "soy sauce",
               "coconut milk", "stock", "honey")
INGREDIENT = _pick("flour", "sugar", "butter", "rice", "oats", "cocoa", "chickpeas", "spinach", "cheese")
SYRUP = _pick("paracetamol syrup", "cough syrup", "ibuprofen suspension", "amoxicillin", "saline", "Calpol",
              "the antibiotic")
GAME = _pick("this new shooter", "the Resident Evil remake", "Animal Crossing", "FIFA 20", "Call of Duty",
             "this racing game", "Skyrim", "the new Doom", "Fortnite", "this stealth game")
PRODUCT = _pick("wireless earbuds", "a phone case", "LED strip lights", "a yoga mat", "a coffee grinder",
                "a smart watch", "kids puzzle set", "a gaming mouse", "a face mask pack", "a desk lamp")
COIN = _pick("$SAFEMOON", "$DOGE", "$SHIB", "$MOONX", "$AIBOT", "$GPTX", "$BTC", "$NEURAL")
JOB = _pick("Java Developer", "Sales Associate", "Warehouse Operator", "Nurse Practitioner",
            "Account Manager", "Frontend Engineer", "Customer Support Rep", "Project Coordinator",
            "Delivery Driver", "SAP Consultant", "Network Administrator", "Marketing Intern")
FOOD = _pick("banana bread", "sourdough", "pancakes", "dal", "curry", "lasagna", "brownies", "smoothies",
             "jollof rice", "ramen")
WEEKDAY = _pick("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
THING = _pick("laptop", "wifi", "phone", "printer", "headphones", "router", "tablet", "smart TV")
SHOW = _pick("Tiger King", "Money Heist", "The Office", "Normal People", "Ozark", "Friends", "Love Is Blind")
FLIGHT = _digits(100, 999)
N_CASES = _digits(120, 9000)

_LOWER_TASK = _slug(TASK)
_LOWER_TECHNIQUE = _slug(TECHNIQUE)

_FIELDS: dict[str, Source] = {
    "model": MODEL, "simple_model": SIMPLE_MODEL, "library": LIBRARY, "library2": LIBRARY, "task": TASK,
    "technique": TECHNIQUE, "technique2": TECHNIQUE, "title_adj": TITLE_ADJ, "title_noun": TITLE_NOUN,
    "title_task": TITLE_TASK, "dataset": DATASET, "metric": METRIC, "gain": GAIN, "score": SCORE,
    "conf": CONF,
    "when": WHEN, "org": ORG, "size": SIZE, "modality": MODALITY, "version": VERSION, "feature": FEATURE,
    "feature2": FEATURE, "bug": BUG, "check": CHECK, "llm_weakness": LLM_WEAKNESS, "mlops_tool": MLOPS_TOOL,
    "mlops_tool2": MLOPS_TOOL, "mlops_topic": MLOPS_TOPIC, "data_domain": DATA_DOMAIN, "n": N_SMALL,
    "n_large": N_LARGE, "team_mlb": TEAM_MLB, "team_mlb2": TEAM_MLB, "team_nfl": TEAM_NFL,
    "team_soccer": TEAM_SOCCER, "team_soccer2": TEAM_SOCCER, "person": PERSON, "person2": PERSON,
    "odds": ODDS,
    "city": CITY, "city2": CITY, "country": COUNTRY, "liquid": LIQUID, "ingredient": INGREDIENT,
    "syrup": SYRUP, "game": GAME, "product": PRODUCT, "coin": COIN, "job": JOB, "food": FOOD,
    "weekday": WEEKDAY, "thing": THING, "show": SHOW, "flight": FLIGHT, "n_cases": N_CASES,
    "n_ml": _pick("2.5", "5", "10", "15", "20", "30", "50", "100", "150", "250", "500"),
    "n_g": _pick("50", "100", "125", "200", "250", "300", "400"),
    "minutes": _pick("12", "20", "25", "30", "35", "40", "45", "60"),
    "temp": _pick("160", "170", "180", "190", "200", "220"),
    "hours": _pick("4", "6", "8", "12", "24"),
    "score_game": _pick("1-0", "2-1", "3-2", "0-0", "4-1", "2-2", "3-0"),
    "score_ball": _pick("5-3", "7-2", "4-1", "10-6", "3-2", "6-5"),
    "pct": _pick("30", "40", "50", "60", "70", "75", "80"),
    "file": _pick("logo_final", "poster_v2", "brand_kit", "menu_design", "tshirt_print", "icons_set"),
    "song": _pick("Blinding Lights", "Savage", "Rain On Me", "Toosie Slide", "Say So", "Roses"),
    "price": _pick("9.99", "14.99", "19.99", "24.99", "29.99", "39.99", "4.99"),
}


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

_BLOG = _pick("lilianweng.github.io/posts", "jalammar.github.io", "karpathy.github.io", "distill.pub/2020",
              "ruder.io", "www.fast.ai/posts", "blog.tensorflow.org/2020/04", "pytorch.org/blog",
              "sebastianraschka.com/blog", "eugeneyan.com/writing", "www.kdnuggets.com/2020/04",
              "machinelearningmastery.com", "neptune.ai/blog", "wandb.ai/site/articles")
_GH_USER = _pick("huggingface", "pytorch", "google-research", "facebookresearch", "openai", "microsoft",
                 "explosion", "mlflow", "snorkel-team", "karpathy", "rasbt", "ml-tooling", "jina-ai")
_HF_ORG = _pick("bert-base-uncased", "google", "facebook", "microsoft", "distilbert", "openai", "mistralai",
                "sentence-transformers", "allenai", "EleutherAI")


def _ARXIV_ID(rng: random.Random) -> str:  # noqa: N802 - a Source like the constants around it
    return f"{rng.randrange(18, 24)}{rng.randrange(1, 13):02d}.{rng.randrange(10**5):05d}"


_LINKS_AI: tuple[Source, ...] = (
    lambda rng: f"https://arxiv.org/abs/{_ARXIV_ID(rng)}",
    lambda rng: f"https://arxiv.org/pdf/{_ARXIV_ID(rng)}.pdf",
    lambda rng: f"https://paperswithcode.com/paper/{_LOWER_TECHNIQUE(rng)}-for-{_LOWER_TASK(rng)}",
    lambda rng: f"https://huggingface.co/{_HF_ORG(rng)}/{_LOWER_TASK(rng)}-{SIZE(rng).lower()}",
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
    lambda rng: f"https://www.reuters.com/article/us-health-coronavirus-{_slug(COUNTRY)(rng)}"
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
    lambda rng: f"https://giftshowcase.shop/deals/{_slug(PRODUCT)(rng)}",
)
_LINKS_SPAM: tuple[Source, ...] = (
    lambda rng: f"https://{_alnum(6)(rng).lower()}-presale.io/?ref={_alnum(8)(rng)}",
    lambda rng: f"https://t.me/{_alnum(9)(rng)}",
    lambda rng: f"https://jobs.talentfeed.net/job/{rng.randrange(100000, 999999)}",
    lambda rng: f"https://www.jobsboard.io/listing/{_slug(JOB)(rng)}-{rng.randrange(1000, 9999)}",
)
_LINKS_MISC: tuple[Source, ...] = (
    lambda rng: f"https://www.instagram.com/p/{_alnum(11)(rng)}/",
    lambda rng: f"https://www.allrecipes.com/recipe/{rng.randrange(10000, 280000)}/{_slug(FOOD)(rng)}/",
    lambda rng: f"https://www.airindia.in/flight-status.htm?flight=AI{FLIGHT(rng)}",
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


_AI_TAGS = ("AI", "MachineLearning", "DeepLearning", "NLP", "DataScience", "LLM", "ComputerVision", "MLOps",
            "Python", "PyTorch", "TensorFlow", "ArtificialIntelligence", "GenerativeAI", "NeuralNetworks",
            "100DaysOfMLCode", "OpenSource", "ML", "BigData", "Analytics", "research")
_STUFFED_TAGS = ("AI", "ML", "BigData", "DataScience", "MachineLearning", "IoT", "Blockchain", "Cloud",
                 "DeepLearning", "Tech", "Python", "100DaysOfCode", "fintech", "startup")

KINDS: tuple[_Kind, ...] = (
    _Kind("paper", True, 0.2, _templates(
        'New paper: "{title_adj} {title_noun} for {title_task}". We show {technique} improves {metric} on '
        '{dataset} by {gain}.',
        'Our {conf} paper "{title_adj} {title_noun} for {title_task}" is now on arXiv! '
        "{technique} meets {task}.",
        '"Rethinking {technique} for {title_task}": a simple recipe that beats {model} on {dataset} '
        "with {gain}",
        "Interesting read on {technique} for {task}. The ablations on {dataset} are worth your time.",
        "Paper of the day: {title_adj} {title_noun}. Combines {technique} with {technique2}, "
        "{metric} {score} on {dataset}, code included",
        "This {conf} paper shows {model} is badly calibrated on {task}, and {technique} fixes most of it",
        "Accepted at {conf}! We study when {technique} helps {task}, with experiments on {dataset}.",
        "Neat result: {technique} closes the gap between {model} and much larger models on {title_task}",
        "Preprint with {at}: {title_adj} {title_noun} for {title_task}. Feedback welcome",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.75, emojis=EMOJI_AI, emoji_rate=0.3, long_rate=0.15),
    _Kind("tutorial", True, 0.2, _templates(
        "How to fine-tune {model} for {task} with {library} in under {n} lines of code",
        "A gentle introduction to {technique}, with {library} examples",
        "{n} things I wish I knew before training {model} on my own data",
        "Step by step: building your first {task} pipeline with {library} and {library2}",
        "Why does {technique} work? A visual explanation for people who hate equations",
        "{library} tip: profile your {feature} before buying more GPUs. Saved us hours on {task}",
        "New blog post: {task} from scratch with {library}, from raw data to a {metric} of {score}",
        "Notebook: comparing {model} and {simple_model} for {task} on {dataset}",
        "Free course on {technique} and {task}, taught with {library}. Lecture {n} is up",
        "Learning {library} this week. Today: {technique} for {task}",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.7, emojis=EMOJI_AI, emoji_rate=0.3, long_rate=0.15),
    _Kind("release", True, 0.14, _templates(
        "{org} open-sourced their {size} parameter {modality} model for {task}. Weights are on the Hub",
        "{library} {version} is out: faster {feature}, better {feature2}",
        "Just released: our {task} model trained on {dataset}, {metric} {score}",
        "{org} released a new {modality} benchmark for {task}. {model} is far from solving it",
        "We just shipped {technique} support in {library}. {task} training is now {gain} faster",
        "Model card and demo for our {size} {modality} model are live. Try it on your own {task} data",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.8, emojis=EMOJI_AI, emoji_rate=0.4, long_rate=0.1),
    _Kind("talk", True, 0.1, _templates(
        "Excited to give a talk on {technique} for {task} at {conf} {when}! Slides soon",
        "Join our workshop at {conf}: hands-on {task} with {library}",
        "{when} at {conf}: {at} shows how we scaled {task} with {technique}",
        "The recording of my {conf} talk on {mlops_topic} for {task} models is up",
        "Giving a webinar {when} on {technique} in practice. Bring your questions about {task}",
        "Poster session at {conf} {when}: {title_adj} {title_noun} for {title_task}. Come say hi",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.55, emojis=EMOJI_AI, emoji_rate=0.4, long_rate=0.1),
    _Kind("discussion", True, 0.14, _templates(
        "Hot take: {technique} is underrated for {task}. Most teams jump straight to {model}.",
        "Anyone compared {library} and {library2} for {task}? Curious about training speed",
        "Spent the week debugging our {task} model. The culprit: {bug}. Always check your {check}!",
        "Reminder: {metric} alone will mislead you on imbalanced {task} data. Look at the confusion matrix.",
        "Large language models still struggle with {llm_weakness}. Tricks like {technique} help, "
        "but not enough.",
        "Is {technique} still worth it with models like {model}? My results on {dataset} say yes",
        "Neural nets memorise {dataset} faster than you think. Held-out {metric} is the only number that "
        "matters",
        "Our {model} beat the {simple_model} baseline by only {gain} on {task}. Start with the baseline.",
        "The best machine learning skill nobody teaches: reading your {check} before tuning anything",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.25, emojis=EMOJI_AI, emoji_rate=0.25, long_rate=0.2,
        reply_rate=0.25),
    _Kind("data_science", True, 0.11, _templates(
        "Cleaned {n_large}k rows of {data_domain} data with pandas today, then a quick {simple_model} "
        "baseline got {metric} {score}",
        "Feature engineering beat model choice again: {simple_model} with good features matched {model} on "
        "{data_domain} data",
        "Kaggle notebook: {task} on {dataset} with {simple_model} and {technique}",
        "Data science tip: do {technique} inside the cross-validation loop, not before it",
        "Built the {data_domain} forecasting dashboard with {library}. {simple_model} was good enough",
        "{n} SQL and pandas patterns every data scientist should know for {data_domain} data",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.55, emojis=EMOJI_AI, emoji_rate=0.25, long_rate=0.1),
    _Kind("mlops", True, 0.11, _templates(
        "Shipping {model} to production: how we set up {mlops_topic} with {mlops_tool}",
        "{mlops_tool} plus {mlops_tool2} for {mlops_topic}: our setup for {task} models",
        "Your model is only as good as your {mlops_topic}. Notes from running {task} in production",
        "We cut inference latency of our {task} model by {gain} with {technique} and {mlops_tool}",
        "Lessons from a year of {mlops_topic}: retrain on drift, not on a calendar",
        "Model registry, {mlops_topic} and a rollback button: the minimum for putting {model} in production",
    ), _AI_TAGS, links=_LINKS_AI, link_rate=0.6, emojis=EMOJI_AI, emoji_rate=0.2, long_rate=0.15),
    # --- not AI: everyday streams ---
    _Kind("chat", False, 0.19, _templates(
        "Can't believe it's only {weekday}. Need coffee",
        "Made {food} like everyone else in lockdown lol",
        "Finished {show} in two days, no regrets",
        "My {thing} stopped working right when I needed it",
        "Day {n} of quarantine: talking to my plants",
        "{at} happy birthday!! Miss you, see you when this is over",
        "Who else is up at this hour watching {show}",
        "Honestly {food} at 2am hits different",
        "The neighbours are having a party again on a {weekday}",
        "Grocery run done, still no flour anywhere in {city}",
    ), ("quarantine", "StayHome", "mood", "lockdown", "weekend"), (0, 0, 0, 0, 1),
        links=_LINKS_MISC, link_rate=0.1, emojis=EMOJI_CHAT, emoji_rate=0.5, long_rate=0.05, reply_rate=0.3),
    _Kind("short_reply", False, 0.12, _templates(
        "lol same", "this", "facts", "omg yes", "no way", "congrats!!", "love this", "so true", "hahaha",
        "I'm crying", "same tbh", "wait what", "big mood", "exactly", "thank you!", "not again",
    ), (), (0,), emojis=EMOJI_CHAT, emoji_rate=0.5, reply_rate=1.0, retweet_rate=0.0, photo_rate=0.0),
    _Kind("sports", False, 0.09, _templates(
        "{team_soccer} {score_game} {team_soccer2}. What a finish!",
        "{team_nfl} need a receiver in the draft, everyone knows it",
        "Rewatching the {team_mlb} {score_ball} classic since there is no baseball",
        "{person} signing with the {team_nfl} is the move of the offseason",
        "{team_soccer} fans, how are we feeling about {person}?",
    ), ("NFLDraft", "MLB", "football", "NBA", "UCL"), links=_LINKS_SPORTS, link_rate=0.35,
        emojis=("⚽", "🏈", "⚾", "🏀", "🔥"), emoji_rate=0.3, reply_rate=0.1),
    _Kind("covid", False, 0.12, _templates(
        "{country} reports {n_cases} new COVID-19 cases today",
        "{city} lockdown extended by {n} days, officials say",
        "Stay home, wash your hands. Hospitals in {city} are full",
        "Health ministry: {n_cases} recovered from coronavirus in {country} so far",
        "Testing in {city} still too slow, nurses say they wait {n} days for results",
        "Masks now required on public transport in {city}",
    ), ("COVID19", "coronavirus", "StayHome", "lockdown", "Covid_19", "pandemic"),
        links=_LINKS_NEWS, link_rate=0.6, emojis=("😷", "🙏", "🏠"), emoji_rate=0.15, long_rate=0.15),
    _Kind("retail_spam", False, 0.06, _templates(
        "New gift idea ({product}) has been published",
        "{pct}% OFF {product} today only!",
        "Deal of the day: {product} for ${price}",
        "Restocked: {product}. Free shipping",
    ), ("gift", "shopping", "deal", "amazon", "discount", "follow", "giveaway", "sale"), (3, 4, 5),
        links=_LINKS_SHOP, link_rate=0.95, emojis=EMOJI_SPAM, emoji_rate=0.5, reply_rate=0.0, photo_rate=0.3),
    _Kind("crypto_spam", False, 0.05, _templates(
        "{coin} to the moon! Join the presale now",
        "{coin} airdrop is live, claim before it ends",
        "{coin} just listed, {pct}x potential, don't miss it",
        "Our trading bot made {pct}% this week with {coin}. DM for access",
    ), _STUFFED_TAGS, (4, 5, 6), links=_LINKS_SPAM, link_rate=0.85, emojis=EMOJI_SPAM, emoji_rate=0.7,
        reply_rate=0.0),
    _Kind("job_spam", False, 0.05, _templates(
        "We're hiring: {job} in {city}. Apply now!",
        "Job alert: {job}, {city}, full time",
        "Now hiring {job} ({city}, remote friendly)",
        "{n} new {job} openings in {city}",
    ), ("jobs", "hiring", "career", *_STUFFED_TAGS), (4, 5, 6), links=_LINKS_SPAM, link_rate=0.9,
        reply_rate=0.0),
    _Kind("tech_chat", False, 0.05, _templates(
        "My {thing} fan sounds like a jet engine since the update",
        "Is it just me or is the {thing} slow today? Restarted twice",
        "Zoom call number {n} today, my {thing} is begging for mercy",
        "Finally upgraded my {thing}. Setting it up now",
    ), ("tech", "WFH"), (0, 0, 1), links=_LINKS_MISC, link_rate=0.15, emojis=EMOJI_CHAT, emoji_rate=0.3),
    # --- not AI: hard negatives for keyword labelers ---
    _Kind("recipe_ml", False, 0.04, _templates(
        "Recipe: {n_ml} ml {liquid}, {n_g} g {ingredient}, pinch of salt. Bake {minutes} minutes at {temp}C",
        "Add {n_ml} ml of {liquid} and stir until smooth. Easiest {food} ever",
        "Whisk {n_g}g {ingredient} with {n_ml} ml {liquid}, rest {minutes} min",
    ), ("baking", "recipe", "foodie", "homemade", "lockdowncooking"), links=_LINKS_MISC, link_rate=0.4,
        emojis=("🍞", "🍰", "🥞", "😋"), emoji_rate=0.4, long_rate=0.1),
    _Kind("medicine_ml", False, 0.03, _templates(
        "Doctor said {n_ml} ml of {syrup} every {hours} hours for the little one. Hope the fever breaks soon",
        "Dosage on the bottle: {n_ml} ml twice a day after meals. Why is it so hard to measure",
        "Donated {n_ml} ml of plasma today, easier than I expected",
    ), ("health", "parenting"), (0, 0, 1), emojis=("🤒", "🙏", "💉"), emoji_rate=0.3, reply_rate=0.15),
    _Kind("baseball_ml", False, 0.04, _templates(
        "{team_mlb} ML {odds} is my lock of the day",
        "{person} makes his ML debut for the {team_mlb} tonight",
        "Parlay: {team_mlb} ML and {team_mlb2} ML, let's ride",
        "AAA to the ML: {team_mlb} call up their top prospect {person}",
    ), ("GamblingTwitter", "MLB", "SportsBetting", "baseball"), links=_LINKS_SPORTS, link_rate=0.2,
        emojis=("⚾", "💰", "🔒"), emoji_rate=0.4),
    _Kind("iverson", False, 0.025, _templates(
        "AI in his prime was unguardable. That crossover still hurts to watch",
        "Watching old AI highlights. {n_large} points on the road, no help",
        "Prime AI vs anyone in this league today, I'm taking AI",
        "AI stepping over Lue is still the hardest picture in sports",
    ), ("Sixers", "NBA", "AllenIverson"), links=_LINKS_SPORTS, link_rate=0.3, emojis=("🏀", "🐐", "🔥"),
        emoji_rate=0.4),
    _Kind("air_india", False, 0.025, _templates(
        "Air India flight AI {flight} from {city} to {city2} delayed by {hours} hours again",
        "AI {flight} evacuation flight lands in {city}, {n_large} passengers back home",
        "Booked AI {flight} to {city}, fingers crossed it actually flies",
    ), ("AirIndia", "VandeBharatMission", "travel"), links=_LINKS_MISC, link_rate=0.3, emojis=("✈️", "🙏"),
        emoji_rate=0.3),
    _Kind("farming_ai", False, 0.02, _templates(
        "Booked the AI technician for the heifers this week, {n} cows bred by AI this season",
        "Artificial insemination (AI) timing matters: breed {hours} hours after standing heat",
        "AI sires vs a bull on the farm, what do you run? Conception rate was {pct}% for us",
    ), ("dairy", "farming", "cattle", "agriculture"), emojis=("🐄", "🚜"), emoji_rate=0.3),
    _Kind("illustrator", False, 0.025, _templates(
        "Need the logo as an .ai file, not a PNG. Can anyone open {file}.ai without Illustrator?",
        "Selling a vector pack: {n_large} icons, AI and EPS formats",
        "Client sent {file}.ai and my Illustrator crashes every time",
    ), ("graphicdesign", "illustrator", "vector", "design"), links=_LINKS_SHOP, link_rate=0.3,
        emojis=("🎨", "😩"), emoji_rate=0.3),
    _Kind("depth_chart_dl", False, 0.03, _templates(
        "Updated depth chart: {person} moves to starting DL, {person2} at LB",
        "{team_nfl} have to take DL in round one, the pass rush was a joke",
        "Free DL: {song} remix, link below",
        "DL link for the full mixtape in my bio",
    ), ("NFLDraft", "NFL", "mixtape", "newmusic"), links=_LINKS_MISC, link_rate=0.45,
        emojis=("🏈", "🎧", "🔥"), emoji_rate=0.3),
    _Kind("game_ai", False, 0.04, _templates(
        "The enemy AI in {game} is so dumb, they just run into walls",
        "Companion AI in {game} keeps blocking every doorway",
        "Whoever programmed the AI teammates in {game} owes me an apology",
        "Hard mode in {game} just means the AI cheats, change my mind",
    ), ("gaming", "PS4", "XboxShare", "NintendoSwitch"), links=_LINKS_MISC, link_rate=0.2,
        emojis=("🎮", "😂", "🤦"), emoji_rate=0.4),
)


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
