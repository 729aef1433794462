"""The vocabulary of AI tweets and of what only looks like one: phrases, acronyms and their
other senses, spam and everyday topics, hashtags, accounts and sites.

Data only, shared by the labeling functions (`ai_tweets.labeling`, Python regular expressions)
and the classifier's signal features (`ai_tweets.model`, the same vocabulary as RE2 patterns
inside the TensorFlow graph, see `SIGNALS`). Phrases are regular-expression bodies, matched
case-blind unless they say `(?-i:...)`.
"""

from __future__ import annotations

import re

# Spelled-out phrases (any case): they rarely mean anything but AI, ML or data science.
AI_PHRASES = (
    r"artificial[\s-]+intelligence", r"gen[\s-]?ai",
    r"(?:explainable|generative|conversational|responsible|ethical|trustworthy)[\s-]+ai",
)
ML_PHRASES = (
    r"machine[\s-]+learning", r"deep[\s-]+learning", r"neural[\s-]+net(?:work)?s?",
    r"reinforcement[\s-]+learning", r"(?:un|self[\s-]|semi[\s-])?supervised[\s-]+learning",
    r"transfer[\s-]+learning", r"federated[\s-]+learning", r"few[\s-]shot", r"zero[\s-]shot",
    r"ml[\s-]?ops", r"auto[\s-]?ml", r"tiny[\s-]?ml", r"graph[\s-]+neural",
)
NLP_VISION_PHRASES = (
    r"natural[\s-]+language[\s-]+(?:processing|understanding|generation)", r"computer[\s-]+vision",
    r"(?:large[\s-]+)?language[\s-]+models?", r"chat[\s-]?gpt", r"gpt-?[234](?:o|\.5)?", r"chat[\s-]?bots?",
    r"(?:image|speech|voice|face|facial)[\s-]+recognition", r"object[\s-]+detection",
    r"image[\s-]+(?:segmentation|classification|captioning|generation)", r"sentiment[\s-]+analysis",
    r"named[\s-]+entity[\s-]+recognition", r"machine[\s-]+translation", r"question[\s-]+answering",
    r"text[\s-]+(?:classification|summari[sz]ation|generation)", r"speech[\s-]+(?:synthesis|to[\s-]text)",
    r"text[\s-]+to[\s-]+(?:speech|image)", r"deep[\s-]?fakes?", r"diffusion[\s-]+models?",
    r"transformer[\s-]+(?:models?|architecture)", r"word[\s-]+embeddings?", r"llama[\s-]?[23]",
)
DATA_SCIENCE_PHRASES = (
    r"data[\s-]+scien(?:ce|tists?)", r"predictive[\s-]+(?:analytics|model(?:l?ing|s)?)", r"data[\s-]+mining",
    r"feature[\s-]+(?:engineering|stores?)", r"kaggle", r"jupyter", r"anomaly[\s-]+detection",
    r"time[\s-]+series[\s-]+(?:forecasting|models?)", r"recommend(?:er|ation)[\s-]+(?:systems?|engines?)",
    r"big[\s-]+data", r"(?:data|big[\s-]+data)[\s-]+analytics",  # "big data / analytics" (the labeling guide)
)
METHOD_PHRASES = (
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
TOOL_NAMES = (
    r"py-?torch", r"tensor-?flow", r"keras", r"scikit-?learn", r"sklearn", r"hugging[\s-]?face", r"xgboost",
    r"lightgbm", r"catboost", r"spacy", r"ml-?flow", r"kubeflow", r"fast\.?ai", r"openai", r"deepmind",
    r"google[\s-]+colab", r"langchain", r"stable[\s-]+diffusion", r"midjourney", r"onnx", r"vllm",
)
# Acronyms keep their case: "AI" counts, "said", "Kai" and the Portuguese "ai" do not.
AI_ACRONYM = r"(?<![\w#@$/.&])(?:AI|AIs|A\.I\.?)(?![\w]|[-/]\d|\.\w)"
ML_ACRONYM = (
    r"(?<![#@$])(?:\b(?:AI|A\.I\.?)\s*(?:/|&|&amp;|and|\+|,)\s*(?:ML|DL|NLP)\b"
    r"|\bML\s*(?:/|&|&amp;|and|\+)\s*(?:AI|DL|NLP)\b"
    r"|\b(?:ML|NLP|DL)(?:-based|-powered|-driven)?\s+(?:models?|engineers?|engineering|research(?:ers?)?|"
    r"pipelines?|algorithms?|systems?|platforms?|workflows?|projects?|papers?|practitioners?|community|"
    r"techniques?|applications?|infrastructure|teams?|tools?|librar(?:y|ies)|frameworks?|courses?)\b"
    r"|\b(?:NLP|LLMs?|NLU|RNNs?|LSTMs?|GANs?|BERT|RoBERTa)\b)"
)
# Spelled-out AI vocabulary that a confuser ("AI in his prime", "5 ml", "enemy AI") never has.
STRONG_AI_PHRASES = (*AI_PHRASES, *ML_PHRASES, *NLP_VISION_PHRASES, *DATA_SCIENCE_PHRASES, *METHOD_PHRASES, *TOOL_NAMES)

# The acronyms' other meanings. `(?-i:AI)` keeps the acronym's case inside a case-blind pattern.
IVERSON = (r"\b(?:allen[\s-]?)?iverson\b|\bsixers\b|\b76ers\b|\bcrossover\b|\bnba\b|\bhighlights\b|\bdunks?\b|"
            r"\bpoints\b|\bhall of fame\b|\bmvp\b|\b(?-i:AI) in his prime\b|\bprime (?-i:AI)\b")
AIR_INDIA = (r"\bair[\s-]?india\b|\bairindia\b|\bvande\s*bharat|\bflight\s+(?-i:AI)\b|"
              r"(?-i:\bAI[\s-]?(?!(?:19|20)\d\d\b)\d{3,4}\b)")  # a flight number, not a year
INSEMINATION = r"\binseminat\w*|\b(?:heifers?|cows?|cattle|sires?|bulls?|dairy|calving|breeding|semen)\b"
ILLUSTRATOR = (r"\billustrator\b|\.ai\s+files?\b|\b(?-i:AI)\s*(?:,|and|&|&amp;|/)\s*eps\b|"
                r"\beps\s*(?:,|and|&|&amp;|/)\s*(?-i:AI)\b|"
                r"\b[\w-]+\.ai\b(?![/\w.])(?=.*\b(?:files?|open|logo|vector|eps|svg)\b)")
GAME = (r"\b(?:enemy|enemies|companion|npc|cpu|bot|teammates?|opponents?|allies|ally|squad|games?|game's|"
         r"gaming|in-?game)\s+(?-i:AI)\b|\b(?-i:AI)\s+(?:teammates?|opponents?|enemies|companions?|"
         r"difficulty|drivers?|cheats?|controlled|players?|pathfinding)\b|\bthe (?-i:AI) in (?:this|the|that) "
         r"game\b|\bvideo ?games?\b|\bgameplay\b|\bhard mode\b|#(?:gaming|ps4|ps5|xbox\w*|nintendoswitch|gamer)\b")
MILLILITRES = (r"\d\s?(?:ml|millilit(?:re|er)s?)\b(?!\s+(?:models?|engineers?|research|papers?|projects?|"
                r"algorithms?))|\bml of\b|\bmillilit(?:re|er)s?\b")
MAJOR_LEAGUE = (r"(?-i:\bMLB\b|\bML\s*[+-]\d{3}\b|\bML\s+(?:debut|picks?|odds|lock|bets?|play|parlay|dog))|"
                 r"\bmoney\s?line\b|\bparlay\b|\bbaseball\b|\bpitch(?:er|ers|ing)\b|\binnings?\b|\bbullpen\b|"
                 r"\bbetting\b|\bcalled up\b|\bprospects?\b")
DL = (r"(?-i:\bDL\b)(?=.*(?:\b(?:depth chart|draft|pass rush|linem[ae]n|tackles?|sacks?|download\w*|links?|"
       r"mixtapes?|remix|songs?|album|bio|disabled list|injur\w+|licen[cs]e|distance learning|curriculum|"
       r"speeds?)\b|(?-i:\b(?:LB|OL|DE|DT|WR|QB|CB|NFL|IL|RT)\b)))"
       r"|(?-i:\b(?:OL|DE|DT|LB)\s*(?:/|&|&amp;|and)\s*DL\b|\bDL\s*(?:/|&|&amp;)\s*(?:RT|LB|DE|DT|OL)\b)")
OTHER_AI_SENSES = "|".join((IVERSON, AIR_INDIA, INSEMINATION, ILLUSTRATOR, GAME))
OTHER_ML_SENSES = f"{MILLILITRES}|{MAJOR_LEAGUE}"

# Spam that rides #AI #ML: crypto pitches (with or without hashtags), job boards, shops.
CRYPTO_PITCH = r"to the moon|air-?drops?|pre-?sale|trading bot|\d+x potential|just listed|claim (?:your|before)"
SPAM_PHRASES = (rf"{CRYPTO_PITCH}|dm (?:me )?for|we'?re hiring|now hiring|job alert|apply now|"
                 r"full[\s-]time|\d+ new .{0,40} openings|\d+\s?% (?:off|discount)|deal of the day|"
                 r"free shipping|shop now|buy now|giveaway")
SPAM_TAGS = frozenset({
    "bitcoin", "btc", "eth", "ethereum", "crypto", "cryptocurrency", "cryptocurrencies", "altcoin",
    "altcoins", "airdrop", "presale", "ico", "defi", "nft", "nfts", "binance", "forex", "cryptotrading",
    "giveaway", "jobs", "job", "hiring", "jobsearch", "jobopening", "jobalert", "nowhiring", "employment",
    "career", "careers", "recruiting", "recruitment", "vacancy", "remotejobs", "techjobs", "aijobs",
    "datajobs", "deal", "deals", "sale", "discount", "coupon", "freebies", "shopmycloset",
})
# Everyday topics (words may be hashtags: #COVID19, #StayHome, #NFL).
RETAIL = (r"\d+\s?% off|deal of the day|free shipping|shop now|buy now|order now|giveaway|discount(?:ed|s)?|"
           r"coupons?|promo code|on sale|flash sale|gift (?:ideas?|cards?|guide)|restocked|shopmycloset|"
           r"limited time offer|best ?sellers?")
COVID = (r"covid\w*|coronavirus\w*|corona|pandemic|epidemic|lockdown\w*|quarantin\w*|self[\s-]?isolat\w*|"
          r"social[\s-]?distancing|stay ?home\w*|stay ?safe|ventilators?|face ?masks?|masks?|chloroquine|"
          r"hydroxychloroquine|cases|deaths|death toll|infected|outbreak|virus|wuhan|hospitals?|curfew|"
          r"tested positive|flatten the curve|vaccines?|frontline workers|(?-i:PPE|WHO|NHS|CDC)")
SPORTS = (r"nfl\w*|nba|mlb|nhl|ufc|wwe|fifa|uefa|ucl|ipl|premier league|champions league|la ?liga|serie a|"
           r"touchdowns?|quarterbacks?|receivers?|linebackers?|pitchers?|innings?|home runs?|playoffs?|draft|"
           r"goalkeeper|striker|midfielder|hat-?trick|penalt(?:y|ies)|coach|league|matches|match|scored|"
           r"goals?|basketball|baseball|football|soccer|cricket|tennis|golf|hockey|wrestling|boxing|"
           r"stadium|transfer window|world cup|olympics?|athletes?|teammates?|offseason|(?-i:QB)")
# Any hint of technology or data: without one, a tweet is very unlikely to be about AI.
TECH_HINTS = (r"algorithm\w*|data\w*|models?|model(?:l?ing)|learn\w*|neural|robot\w*|automat\w*|comput\w*|"
               r"software|code|coding|coder|programm\w*|python|sql|tech\w*|digital\w*|analytic\w*|"
               r"statistic\w*|predict\w*|research\w*|science|scientists?|engineer\w*|iot|cloud|gpus?|chips?|"
               r"apps?|api|github|startups?|innovation|intelligen\w*|smart|bots?|cyber\w*|internet|online|"
               r"platform|papers?|preprint|arxiv|study|studies|tensor\w*|training|forecast\w*|detection|"
               r"classif\w*|pipelines?|tuning|benchmark\w*|workshop|webinar|conference|inference|graphs?|"
               r"imaging|segmentation|retrieval|open[\s-]?source|notebooks?|dashboards?|pandas|deploy\w*|"
               r"production|latency|accuracy|metrics?|baselines?|features?|regression|embedding\w*|"
               r"token\w*|checkpoint\w*|quantiz\w*|optimi[sz]\w*|epochs?|batch\w*|parameters?|ablations?")

AI_HASHTAGS = frozenset({
    "ai", "artificialintelligence", "machinelearning", "deeplearning", "ml", "dl", "nlp", "datascience",
    "datascientist", "datascientists", "computervision", "neuralnetworks", "neuralnetwork", "mlops", "llm",
    "llms", "generativeai", "genai", "reinforcementlearning", "explainableai", "xai", "100daysofmlcode",
    "pytorch", "tensorflow", "keras", "naturallanguageprocessing", "chatgpt", "openai", "datamining",
    "predictiveanalytics", "aiethics", "ethicalai", "responsibleai", "conversationalai", "chatbots",
    "chatbot", "deepfake", "deepfakes", "machine_learning", "artificial_intelligence", "deep_learning",
    "data_science",
})
# Tags built on the acronym, keeping its case: #GoodAI, #reworkAI, #AINews, #ResponsibleML.
AI_HASHTAG_SHAPE = re.compile(r"(?:[a-z0-9]|^)(?:AI|ML)$|^AI[A-Z][a-z]")
AI_HANDLES = frozenset(handle.lower() for handle in (
    "OpenAI", "DeepMind", "GoogleAI", "GoogleDeepMind", "MetaAI", "facebookai", "MSFTResearch",
    "huggingface", "PyTorch", "TensorFlow", "kdnuggets", "TDataScience", "paperswithcode", "DeepLearningAI_",
    "ylecun", "AndrewYNg", "karpathy", "fchollet", "goodfellow_ian", "hardmaru", "JeffDean", "demishassabis",
    "KirkDBorne", "Synced_Global", "AnalyticsVidhya", "MIT_CSAIL", "StanfordAILab", "berkeley_ai",
    "allen_ai", "weights_biases", "MLflow", "kaggle", "fastdotai", "jeremyphoward", "rasbt", "chipro",
    "math_rachel", "timnitGebru", "GaryMarcus", "seb_ruder", "stanfordnlp", "NVIDIAAI", "AzureML",
    "IBMWatson", "Ronald_vanLoon",
))
# Handles named for the field: @IndianSocietyAI, @ml_review, @DataScienceCtrl (not @MLB, @Kai).
AI_HANDLE_SHAPE = re.compile(r"[a-z0-9](?:AI|ML|NLP)(?:_|$)|^(?:AI|ML|NLP)_|"
                              r"(?i:datascien|machinelearn|deeplearn|artificialintel|neuralnet)")

AI_SITES = (
    "arxiv.org", "paperswithcode.com", "huggingface.co", "openreview.net", "distill.pub", "aclanthology.org",
    "aclweb.org", "neurips.cc", "nips.cc", "mlr.press", "jmlr.org", "ai.googleblog.com", "research.google",
    "ai.facebook.com", "ai.meta.com", "openai.com", "deepmind.com", "deepmind.google", "kaggle.com",
    "towardsdatascience.com", "kdnuggets.com", "machinelearningmastery.com", "analyticsvidhya.com",
    "pytorch.org", "tensorflow.org", "keras.io", "scikit-learn.org", "fast.ai", "wandb.ai", "neptune.ai",
    "thegradient.pub", "syncedreview.com", "bair.berkeley.edu", "ai.stanford.edu", "deeplearning.ai",
    "mlflow.org", "datascience.stackexchange.com", "stats.stackexchange.com", "blogs.nvidia.com",
    "venturebeat.com/ai", "technologyreview.com/topic/artificial",
)
CODE_SITES = ("github.com", "gitlab.com", "colab.research.google.com", "bitbucket.org")
BLOG_VIDEO_SITES = ("medium.com", "github.io", "substack.com", "dev.to", "youtube.com", "youtu.be")
# What makes a code link about ML: words in the tweet, or tokens of the link's path.
ML_CODE_WORDS = re.compile(
    r"(?<![a-z])(?:nlp|llms?|gpt\w*|bert|models?|datasets?|training|trained|neural|deep learning|"
    r"machine learning|classifiers?|predictions?|inference|tensor\w*|torch|keras|transformers?|embeddings?|"
    r"notebooks?|computer vision|detection|segmentation|regression|diffusion|gans?|reinforcement|"
    r"fine-?tun\w*|data science|research)(?![a-z])", re.IGNORECASE)
ML_PATH_TOKENS = re.compile(r"(?<![a-z0-9])(?:ai|ml|nlp|llm|research|learning|neural|models?|transformers?|"
                             r"torch|tensorflow|keras|bert|gpt\w*|diffusion|vision|detection|distillation|"
                             r"embeddings?|classification|segmentation|tuning|supervision)(?![a-z0-9])")
SHOP_SITES = ("amazon.", "amzn.", "etsy.com", "ebay.", "poshmark.com", "aliexpress.", "flipkart.com",
               "redbubble.com", "teespring.com")
SPORTS_SITES = ("espn.", "bleacherreport.com", "nfl.com", "nba.com", "mlb.com", "skysports.com", "goal.com",
                 "cricbuzz.com", "theathletic.com")


# --- the same vocabulary as the classifier's signal features ----------------------------------
# RE2 patterns (TensorFlow's regex ops), searched in the raw text of a tweet inside the model's
# graph: RE2 has no look-around, so word edges are spelled out as `(?:^|[^\w…])` and a few
# other-sense patterns are close approximations of the labeling functions' ones. A signal is a
# feature the classifier learns a weight for, not a vote: approximations cost little.

def _re2_words(body: str) -> str:
    """Whole words, any case, not inside a hashtag or a handle."""
    return rf"(?i:(?:^|[^\w#@])(?:{body})(?:[^\w]|$))"


def _re2_topic(body: str) -> str:
    """Whole words, any case, hashtags included."""
    return rf"(?i:(?:^|[^\w@])#?(?:{body})(?:[^\w]|$))"


def _re2_prefixed(prefix: str, names: frozenset[str] | tuple[str, ...]) -> str:
    """`#tag` or `@handle` among `names`, any case."""
    return rf"(?i:{prefix}(?:{'|'.join(sorted(re.escape(name) for name in names))})(?:[^\w]|$))"


_AIR_INDIA_RE2 = (r"\bair[\s-]?india\b|\bairindia\b|\bvande\s*bharat|\bflight\s+(?-i:AI)\b|"
                  r"(?-i:\bAI[\s-]?(?:\d{3}|[03-9]\d{3}|1[0-8]\d\d|2[1-9]\d\d)\b)")  # a flight number, not a year
_ILLUSTRATOR_RE2 = (r"\billustrator\b|\.ai\s+files?\b|\b(?-i:AI)\s*(?:,|and|&|&amp;|/)\s*eps\b|"
                    r"\beps\s*(?:,|and|&|&amp;|/)\s*(?-i:AI)\b|"
                    r"\b[\w-]+\.ai(?:[^/\w.]|$).*\b(?:files?|open|logo|vector|eps|svg)\b")
_MILLILITRES_RE2 = r"\d\s?(?:ml|millilit(?:re|er)s?)\b|\bml of\b|\bmillilit(?:re|er)s?\b"
_SITE = r"(?i:(?:^|[^\w.])(?:{sites})(?:[^\w]|$))"

# (name, RE2 pattern): one 0/1 feature each.
SIGNALS: tuple[tuple[str, str], ...] = (
    ("ai_words", _re2_words("|".join(AI_PHRASES))),
    ("ml_words", _re2_words("|".join(ML_PHRASES))),
    ("nlp_vision_words", _re2_words("|".join(NLP_VISION_PHRASES))),
    ("data_science_words", _re2_words("|".join(DATA_SCIENCE_PHRASES))),
    ("method_words", _re2_words("|".join(METHOD_PHRASES))),
    ("tool_words", _re2_words("|".join(TOOL_NAMES))),
    ("ai_acronym", r"(?:^|[^\w#@$/.&])(?:AI|AIs|A\.I\.?)(?:$|[^\w\-/.]|[-/][^\d]|\.(?:[^\w]|$))"),
    ("ml_acronym", r"(?:^|[^#@$])" + ML_ACRONYM.removeprefix("(?<![#@$])")),
    ("other_ai_senses", f"(?i:{'|'.join((IVERSON, _AIR_INDIA_RE2, INSEMINATION, _ILLUSTRATOR_RE2, GAME))})"),
    ("other_ml_senses", f"(?i:{_MILLILITRES_RE2}|{MAJOR_LEAGUE})"),
    ("other_dl", DL.replace("(?=.*", ".*(?:")),
    ("crypto_pitch", _re2_words(CRYPTO_PITCH)),
    ("spam_phrases", f"(?i:{SPAM_PHRASES})"),
    ("spam_hashtag", _re2_prefixed("#", SPAM_TAGS)),
    ("retail", _re2_topic(RETAIL)),
    ("covid", _re2_topic(COVID)),
    ("sports", _re2_topic(SPORTS)),
    ("tech_hint", _re2_words(TECH_HINTS)),
    ("ai_hashtag", _re2_prefixed("#", AI_HASHTAGS) + r"|#\w*[a-z0-9](?:AI|ML)(?:[^\w]|$)|#AI[A-Z][a-z]"),
    ("ai_handle", _re2_prefixed("@", AI_HANDLES) + r"|@\w*[a-z0-9](?:AI|ML|NLP)(?:[^\w]|$)|@(?:AI|ML|NLP)_|"
                  r"(?i:@\w*(?:datascien|machinelearn|deeplearn|artificialintel|neuralnet))"),
    ("ai_site", _SITE.format(sites="|".join(re.escape(site) for site in AI_SITES))),
    ("code_or_blog_site", _SITE.format(sites="|".join(re.escape(site) for site in (*CODE_SITES, *BLOG_VIDEO_SITES)))),
    ("link", r"https?://"),
    ("retweet", r"^RT @"),
)
