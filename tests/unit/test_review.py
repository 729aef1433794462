"""The retweet review queue's pure parts: how candidates are shown, read back, and configured."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ai_tweets.precision import precision_curve, threshold_for_precision
from ai_tweets.retweet import Candidate, RetweetPolicy
from ai_tweets.review import NONE_OPTION, ReviewItem, _body, tweet_id_of
from ai_tweets.schema import Tweet, TweetUrl
from ai_tweets.urls import extract_urls
from stackbase.settings import RETWEET_VARIABLES, X_USER_CREDENTIALS, SettingsError, retweet_settings


def item(tweet_id: int, text: str, *links: str, author: str = "ml_news", probability: float = 0.93) -> ReviewItem:
    tweet = Tweet(id=tweet_id, text=text, created_at=datetime(2026, 5, 1, tzinfo=UTC), author_handle=author,
                  urls=tuple(TweetUrl(f"https://t.co/{i}", url) for i, url in enumerate(links)))
    return ReviewItem(Candidate(tweet_id, author, probability, tuple(extract_urls(tweet)), text))


def test_each_option_names_its_tweet_and_reads_back_to_its_id():
    long = item(1234567890123456789, "A new open model for code.\nWeights and paper: " + "x" * 200)
    short = item(42, "Short one")
    assert long.option.startswith("1234567890123456789 · @ml_news · A new open model for code. Weights")
    assert long.option.endswith("…") and len(long.option) < 100 and "\n" not in long.option
    assert short.option == "42 · @ml_news · Short one"
    assert tweet_id_of(long.option) == 1234567890123456789 and tweet_id_of(short.option) == 42
    assert tweet_id_of(NONE_OPTION) is None


def test_the_body_shows_each_candidate_whole_with_markup_escaped():
    """As a CommonMark renderer (Airflow's page) shows it: the tweet's text as typed, no markup
    of its own in effect, and its links as links."""
    from markdown_it import MarkdownIt

    body = _body([item(7, "1. LLMs *will* [click](https://evil.example) <b>now</b>", "https://arxiv.org/abs/1_2",
                       "https://twitter.com/a/status/9", probability=0.875)], minutes=45)
    shown = MarkdownIt("commonmark").render(body)
    assert "<strong>1. tweet 7</strong> by @ml_news, P(AI) 0.88" in shown
    assert "<blockquote>\n<p>1. LLMs *will* [click](https://evil.example) &lt;b&gt;now&lt;/b&gt;</p>" in shown
    assert 'links: <a href="https://arxiv.org/abs/1_2">arxiv.org/abs/1_2</a>' in shown
    assert "twitter" not in body and "evil.example\">" not in shown  # links to X are not shown
    assert "within 45 minutes, none is retweeted" in body


def test_review_is_the_default_in_live_mode_only_and_can_be_set_either_way():
    assert retweet_settings({}).review is False  # a dry run decides by itself
    assert retweet_settings({"X_RETWEET_DRY_RUN": "false"}).review is True
    assert retweet_settings({"X_RETWEET_DRY_RUN": "false", "X_RETWEET_REVIEW": "false"}).review is False
    assert retweet_settings({"X_RETWEET_REVIEW": "true"}).review is True
    assert RetweetPolicy.from_settings(retweet_settings({"X_RETWEET_REVIEW": "yes"})).review is True
    assert retweet_settings({}).review_minutes == 60


@pytest.mark.parametrize("variable, value", [("X_RETWEET_REVIEW", "maybe"), ("X_RETWEET_REVIEW_MINUTES", "0"),
                                             ("X_RETWEET_REVIEW_MINUTES", "20000"),
                                             ("X_RETWEET_REVIEW_MINUTES", "soon")])
def test_a_bad_review_setting_is_named(variable, value):
    with pytest.raises(SettingsError, match=variable):
        retweet_settings({variable: value})


# --- automatic live retweets: a threshold for a stated precision on gold labels ---------------

def test_the_precision_curve_counts_the_tweets_at_or_above_each_distinct_score():
    curve = precision_curve([0.9, 0.8, 0.8, 0.4, 0.95], [1, 1, 0, 0, 1])
    assert curve == [[0.95, 1.0, 1], [0.9, 1.0, 2], [0.8, 0.75, 4], [0.4, 0.6, 5]]
    assert precision_curve([], []) == []


def test_the_threshold_is_the_lowest_that_reaches_the_precision_over_enough_tweets():
    curve = precision_curve([0.99, 0.97, 0.95, 0.9, 0.85, 0.6, 0.5], [1, 1, 1, 1, 0, 1, 0])
    assert threshold_for_precision(curve, 1.0, 3) == 0.9
    assert threshold_for_precision(curve, 0.8, 3) == 0.6  # 5 of 6 at or above 0.6
    assert threshold_for_precision(curve, 1.0, 5) is None  # never 5 tweets all right
    assert threshold_for_precision([], 0.5, 1) is None


def test_the_minimum_precision_setting_is_a_share_and_zero_turns_it_off():
    assert retweet_settings({}).min_precision == 0.9
    assert RetweetPolicy.from_settings(retweet_settings({"X_RETWEET_MIN_PRECISION": "0.75"})).min_precision == 0.75
    assert RetweetPolicy.from_settings(retweet_settings({"X_RETWEET_MIN_PRECISION": "0"})).min_precision is None
    for bad in ("1.5", "-0.1", "nan", "high"):
        with pytest.raises(SettingsError, match="X_RETWEET_MIN_PRECISION"):
            retweet_settings({"X_RETWEET_MIN_PRECISION": bad})


def test_the_retweet_settings_read_exactly_the_listed_variables():
    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

        def __contains__(self, key):
            read.add(key)
            return super().__contains__(key)

    read: set[str] = set()
    retweet_settings(Recording())
    assert read == set(RETWEET_VARIABLES) | set(X_USER_CREDENTIALS)
