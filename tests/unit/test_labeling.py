"""Labeling functions and the label model: each LF on hand-written tweets, the fast applier
against Snorkel's, weak-label quality on generated tweets, the LF summary, model round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score
from snorkel.labeling import PandasLFApplier

from ai_tweets import label_model, labeling
from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.tables import ABSTAIN, AI, NOT_AI

REAL_TEXTS = Path(__file__).parents[2].parent / "shared" / "data" / "tweets_2020_text.jsonl"
LF = {lf.name: lf for lf in labeling.LFS}
POSITIVE = [name for name in LF if name.startswith(("keyword_", "hashtag_ai", "link_", "handle_"))]


def tweet(text: str, urls: tuple[str, ...] = (), author: str | None = None) -> pd.Series:
    """One row as Snorkel's PandasLFApplier hands it to an LF; `urls` are expanded links."""
    frame = labeling.frame_from_texts([text])
    frame["author_handle"] = [author]
    if urls:
        frame["urls"] = [[{"url": f"https://t.co/abc{i}", "expanded_url": url} for i, url in enumerate(urls)]]
    return frame.iloc[0]


def generated(count: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    items = list(generate(count, seed=seed))
    frame = labeling.frame_from_tweets(normalize(item.payload) for item in items)
    return frame, np.array([int(item.is_ai) for item in items])


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    """A label model fitted on 6,000 generated tweets (seed 1), and 3,000 others (seed 2) to score."""
    train, _ = generated(6_000, seed=1)
    test, truth = generated(3_000, seed=2)
    L_train, L_test = labeling.apply_lfs(train), labeling.apply_lfs(test)
    return {"model": label_model.fit_label_model(L_train, seed=0), "L_train": L_train, "L_test": L_test,
            "truth": truth, "test": test}


# --- each LF on the case it is written for -------------------------------------------------------

FIRES = [
    ("keyword_ai", tweet("How AI is changing radiology, one scan at a time"), AI),
    ("keyword_ai", tweet("Artificial intelligence will not replace teachers"), AI),
    ("keyword_machine_learning", tweet("A gentle introduction to machine learning for biologists"), AI),
    ("keyword_machine_learning", tweet("Our ML models now run on the phone, no server needed"), AI),
    ("keyword_nlp_vision", tweet("Large language models still cannot count the letters in a word"), AI),
    ("keyword_data_science", tweet("Day 12 of learning data science: groupby finally clicked"), AI),
    ("keyword_data_science", tweet("Why retailers still doubt big data analytics, a study from Cape Town"), AI),
    # an AI job is an AI tweet (the labeling guide), job-board hashtags or not
    ("keyword_data_science", tweet("Acme Ltd: Senior data scientist [ https://t.co/abc0 ] #jobs #Hiring #BTC #AI"), AI),
    ("keyword_ml_methods", tweet("Fine-tuning on 500 labelled examples beat every prompt we tried"), AI),
    ("keyword_ml_tools", tweet("Ported the whole training loop from TensorFlow to PyTorch this week"), AI),
    ("hashtag_ai", tweet("Great thread on evaluating models properly #MachineLearning"), AI),
    ("link_ai_site", tweet("Our new paper is out https://t.co/abc0", urls=("https://arxiv.org/abs/2004.01234",)), AI),
    ("link_code_ml_words", tweet("Code for the text classifier is up https://t.co/abc0",
                                 urls=("https://github.com/someone/tiny-classifier",)), AI),
    ("handle_ai_account", tweet("We are releasing a new API for developers today", author="OpenAI"), AI),
    ("other_ai_iverson", tweet("AI in his prime was unguardable, Allen Iverson forever"), NOT_AI),
    ("other_ai_air_india", tweet("Air India flight AI 101 to Delhi delayed by three hours again"), NOT_AI),
    ("other_ai_insemination", tweet("Booked the AI technician for the heifers on Monday"), NOT_AI),
    ("other_ai_illustrator", tweet("Send the logo as an .ai file please, Illustrator keeps crashing"), NOT_AI),
    ("other_ai_game", tweet("The enemy AI is dumb, they just run into walls"), NOT_AI),
    ("other_ml_millilitres", tweet("Add 5 ml of milk and stir until smooth"), NOT_AI),
    ("other_ml_millilitres", tweet("Two spoons of syrup, 10ml each, twice a day"), NOT_AI),
    ("other_ml_major_league", tweet("Yankees ML -150 is my lock of the day"), NOT_AI),
    ("other_dl", tweet("Updated depth chart: he moves to starting DL, rookie at LB"), NOT_AI),
    ("other_dl", tweet("Free DL link for the full mixtape in my bio"), NOT_AI),
    ("spam_hashtag_stuffing", tweet("#AI #ML #crypto #bitcoin giveaway"), NOT_AI),
    ("spam_hashtag_stuffing", tweet("We're hiring a Java developer in Lagos. Apply now! #jobs #hiring #AI #ML"),
     NOT_AI),
    ("spam_retail", tweet("50% OFF wireless earbuds today only, free shipping!"), NOT_AI),
    ("topic_covid", tweet("Lockdown extended another two weeks, stay home everyone"), NOT_AI),
    ("topic_sports", tweet("What a match, the striker scored twice in the last ten minutes"), NOT_AI),
    ("short_chat", tweet("@friend lol same"), NOT_AI),
    ("no_tech_words", tweet("Made banana bread again and the kitchen smells amazing"), NOT_AI),
    ("hashtag_density", tweet("Sunday vibes #coffee #books #cozy #weekend #mood"), NOT_AI),
]


@pytest.mark.parametrize(("name", "row", "label"), FIRES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(FIRES)])
def test_lf_fires_on_its_case(name, row, label):
    assert LF[name](row) == label


def test_every_lf_has_a_case_and_a_one_line_docstring():
    assert {name for name, _, _ in FIRES} == set(LF)
    summary = labeling.lf_summary(np.full((1, len(LF)), ABSTAIN))
    assert summary["description"].str.len().gt(20).all()
    assert not summary["description"].str.contains("\n").any()


CONFUSERS = [
    "Add 5 ml of milk and stir until smooth",
    "AI in his prime, Allen Iverson was unstoppable",
    "Air India flight AI 101 to Delhi is delayed",
    "The enemy AI is dumb in this game",
    "#AI #ML #crypto #bitcoin giveaway",
    "Yankees ML -150, lock it in",
    "Artificial insemination (AI) timing matters for the herd",
    "I said hi to Kai and Mai at the market",
]


@pytest.mark.parametrize("text", CONFUSERS)
def test_positive_lfs_do_not_fall_for_other_senses(text):
    row = tweet(text)
    assert {name: LF[name](row) for name in POSITIVE} == dict.fromkeys(POSITIVE, ABSTAIN)


def test_a_job_ad_is_spam_unless_its_words_name_an_ai_or_data_science_job():
    software = tweet("Lead Software Engineer - Cloud https://t.co/abc0 #jobs #hiring #bigdata #ai")
    scientist = tweet("Lead data scientist, remote https://t.co/abc0 #jobs #hiring #bigdata #ai")
    assert LF["spam_hashtag_stuffing"](software) == NOT_AI and LF["hashtag_ai"](software) == ABSTAIN
    assert LF["spam_hashtag_stuffing"](scientist) == ABSTAIN and LF["hashtag_ai"](scientist) == AI
    # a crypto pitch stays spam whatever its words say
    assert LF["spam_hashtag_stuffing"](tweet("Data science says BTC to the moon #BTC #ETH #crypto")) == NOT_AI


def test_the_ai_acronym_keeps_its_case_and_its_word_boundaries():
    keyword_ai = LF["keyword_ai"]
    assert keyword_ai(tweet("A.I. will write our emails")) == AI
    assert keyword_ai(tweet("AI-powered search, finally")) == AI
    for text in ("He said the train was late", "ai que saudade", "Thai food tonight", "$AI down 3% today"):
        assert keyword_ai(tweet(text)) == ABSTAIN, text


# --- the fast applier ----------------------------------------------------------------------------


def test_apply_lfs_equals_pandas_lf_applier():
    frame, _ = generated(1_200, seed=7)
    hand = pd.DataFrame([row for _, row, _ in FIRES] + [tweet(text) for text in CONFUSERS])
    frame = pd.concat([frame, hand[list(labeling.COLUMNS)]], ignore_index=True)
    expected = PandasLFApplier(list(labeling.LFS)).apply(frame, progress_bar=False)
    got = labeling.apply_lfs(frame)
    assert got.shape == (len(frame), len(labeling.LFS))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert set(np.unique(got)) <= {ABSTAIN, NOT_AI, AI}


def test_apply_lfs_on_an_empty_frame():
    assert labeling.apply_lfs(labeling.frame_from_texts([])).shape == (0, len(labeling.LFS))


# --- the label model -----------------------------------------------------------------------------


def test_weak_labels_reach_f1_on_generated_tweets(fitted):
    labels, probs = label_model.weak_labels(fitted["model"], fitted["L_test"])
    predicted = (labels == AI).astype(int)  # abstain counts as NOT_AI
    assert f1_score(fitted["truth"], predicted) >= 0.85
    assert precision_score(fitted["truth"], predicted) >= 0.9
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (labels[probs > 0.5] == AI).all()


def test_weak_labels_of_the_confusers_are_not_ai(fitted):
    labels, _ = label_model.weak_labels(fitted["model"], labeling.apply_lfs(labeling.frame_from_texts(CONFUSERS)))
    assert (labels != AI).all()


def test_all_abstain_rows_get_abstain_and_the_class_prior(fitted):
    L = np.vstack([np.full(len(labeling.LFS), ABSTAIN), fitted["L_test"][:5]])
    labels, probs = label_model.weak_labels(fitted["model"], L)
    assert labels[0] == ABSTAIN and (labels[1:] != ABSTAIN).all()
    prior = label_model.majority_class_balance(fitted["L_train"])[AI]
    assert probs[0] == pytest.approx(prior, abs=1e-6)


def test_fitting_is_seeded(fitted):
    again = label_model.fit_label_model(fitted["L_train"], seed=0)
    np.testing.assert_allclose(again.predict_proba(fitted["L_test"]),
                               fitted["model"].predict_proba(fitted["L_test"]), atol=1e-6)


def test_fitting_an_empty_matrix_says_what_to_do():
    with pytest.raises(ValueError, match="empty label matrix"):
        label_model.fit_label_model(np.empty((0, len(labeling.LFS)), dtype=int))


def test_dump_and_load_round_trip(fitted):
    data = label_model.dump_label_model(fitted["model"])
    assert isinstance(data, bytes) and data
    loaded = label_model.load_label_model(data)
    for got, expected in zip(label_model.weak_labels(loaded, fitted["L_test"]),
                             label_model.weak_labels(fitted["model"], fitted["L_test"]), strict=True):
        np.testing.assert_array_equal(got, expected)


# --- the LF summary ------------------------------------------------------------------------------


def test_lf_summary_without_gold(fitted):
    summary = labeling.lf_summary(fitted["L_test"])
    assert list(summary.columns) == ["lf", "description", "polarity", "coverage", "overlaps", "conflicts"]
    assert summary["lf"].tolist() == [lf.name for lf in labeling.LFS]
    assert summary["coverage"].between(0, 1).all()
    assert summary.set_index("lf").loc["keyword_nlp_vision", "polarity"] == [AI]


def test_lf_summary_counts_against_gold_where_there_is_gold():
    L = np.full((4, len(labeling.LFS)), ABSTAIN)
    first, second = 0, len(labeling.LFS) - 1
    L[:, first] = [AI, AI, NOT_AI, AI]
    gold = np.array([AI, NOT_AI, NOT_AI, ABSTAIN])  # the last row has no gold label
    summary = labeling.lf_summary(L, gold).set_index("lf")
    assert {"correct", "incorrect", "emp_accuracy"} <= set(summary.columns)
    row = summary.iloc[first]
    assert (row["correct"], row["incorrect"]) == (2, 1)
    assert row["emp_accuracy"] == pytest.approx(2 / 3)
    assert row["coverage"] == 1.0  # coverage is over every row, gold or not
    assert np.isnan(summary.iloc[second]["emp_accuracy"])


# --- frames --------------------------------------------------------------------------------------


def test_frame_from_texts_reads_entities_from_the_text():
    frame = labeling.frame_from_texts([
        "RT @lab_news: New #NLP paper https://t.co/AbCdEf1234 #MachineLearning",
        "",
        "plain words",
    ])
    assert list(frame.columns) == list(labeling.COLUMNS) and len(frame) == 3
    first = frame.iloc[0]
    assert first["hashtags"] == ["NLP", "MachineLearning"]
    assert first["mentions"] == ["lab_news"]
    assert first["urls"] == [{"url": "https://t.co/AbCdEf1234", "expanded_url": None}]
    assert first["is_retweet"] and first["author_handle"] is None
    assert frame.iloc[1]["hashtags"] == [] and frame.iloc[1]["text"] == ""  # kept, so rows stay aligned
    assert labeling.apply_lfs(frame)[0, list(LF).index("hashtag_ai")] == AI


# --- the real 2020 sample, when it is beside the project --------------------------------------------


@pytest.mark.skipif(not REAL_TEXTS.exists(), reason="the shared real-tweet sample is not beside the project")
def test_real_stream_sample_ai_shares():
    texts = [json.loads(line)["text"] for line in REAL_TEXTS.read_text(encoding="utf-8").splitlines()]
    L = labeling.apply_lfs(labeling.frame_from_texts(texts))
    labels, _ = label_model.weak_labels(label_model.fit_label_model(L, seed=0), L)
    unfiltered, keyword_captured = labels[:10_000], labels[10_000:]
    assert (unfiltered == AI).mean() < 0.005  # an unfiltered stream: almost no AI
    assert 0.2 < (keyword_captured == AI).mean() < 0.45  # captured with AI/data keywords: about a third


def test_the_development_set_holds_out_even_labeled_lines_and_their_duplicates():
    from ai_tweets.dataset import normalized_text
    from ai_tweets.quality import QualityDataMissing, development_set

    try:
        data = development_set(REAL_TEXTS.parent)
    except QualityDataMissing:
        pytest.skip(f"the development set is not in {REAL_TEXTS.parent}")
    held = {normalized_text(text) for text in data.evaluation.texts}
    replayed = [json.loads(line)["text"] for line in data.replay_lines]
    assert not held & {normalized_text(text) for text in replayed}, "no held-out tweet is replayed"
    assert len(data.evaluation) == 994 and data.evaluation.labels.sum() == 182
    assert set(data.answers) <= {normalized_text(text) for text in replayed}
    assert len(data.answers) > 900 and 0 < data.evaluation.sure.sum() < len(data.evaluation)


def test_normalized_text_ignores_what_dedup_ignores():
    from ai_tweets.dataset import normalized_text

    assert normalized_text("RT @someone: Deep  Learning rocks https://t.co/abc…") == "deep learning rocks"
    assert normalized_text("deep learning rocks...") == normalized_text("  DEEP learning   rocks ")
    assert normalized_text("rt @a: rt @b: x") == "rt @b: x", "only the first retweet prefix, as in SQL"
