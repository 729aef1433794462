"""The retweet action's pure parts: eligibility, policy and credential parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ai_tweets.retweet import (
    DEFAULT_RETWEETS_PER_15_MIN,
    X_RETWEETS_PER_15_MIN,
    Candidate,
    RetweetPolicy,
    credentials_from_env,
    eligible,
)
from ai_tweets.schema import Tweet, TweetUrl
from ai_tweets.urls import UrlRecord, extract_urls
from stackbase.settings import SettingsError

POLICY = RetweetPolicy()


def links(*expanded: str) -> list[UrlRecord]:
    tweet = Tweet(id=1, text="t", created_at=datetime(2026, 5, 1, tzinfo=UTC),
                  urls=tuple(TweetUrl(f"https://t.co/{i}", url) for i, url in enumerate(expanded)))
    return extract_urls(tweet)


# --- eligibility -------------------------------------------------------------------------


def test_a_tweet_with_an_external_link_is_eligible():
    assert eligible(links("https://arxiv.org/abs/1", "https://twitter.com/a/status/2/photo/1"), POLICY) == (
        True, "eligible: arxiv.org")


def test_the_reason_names_every_external_domain_once():
    ok, reason = eligible(links("https://arxiv.org/abs/1", "https://github.com/a/b", "https://arxiv.org/abs/2"),
                          POLICY)
    assert ok and reason == "eligible: arxiv.org, github.com"


@pytest.mark.parametrize(("expanded", "reason"), [
    ((), "no_links"),
    (("https://twitter.com/a/status/2",), "twitter_links_only"),
    (("https://x.com/a/status/2/video/1", "https://pic.twitter.com/x"), "twitter_links_only"),
    (("https://t.co/unexpanded",), "twitter_links_only"),
])
def test_tweets_without_an_external_link_are_not_eligible(expanded, reason):
    assert eligible(links(*expanded), POLICY) == (False, reason)


def test_deny_matches_subdomains_and_wins_over_allow():
    policy = RetweetPolicy(allow_domains=("example.com",), deny_domains=("spam.example.com",))
    assert eligible(links("https://blog.example.com/a"), policy) == (True, "eligible: blog.example.com")
    assert eligible(links("https://spam.example.com/a"), policy) == (False, "denied_domain: spam.example.com")
    assert eligible(links("https://x.spam.example.com/a"), policy) == (
        False, "denied_domain: x.spam.example.com")


def test_one_denied_link_is_enough_to_skip():
    policy = RetweetPolicy(deny_domains=("bit.ly",))
    assert eligible(links("https://arxiv.org/abs/1", "https://bit.ly/x"), policy) == (
        False, "denied_domain: bit.ly")


def test_a_denied_domain_does_not_match_lookalikes():
    policy = RetweetPolicy(deny_domains=("ample.com",))
    assert eligible(links("https://example.com/a"), policy)[0] is True


def test_with_an_allow_list_every_external_link_must_be_on_it():
    policy = RetweetPolicy(allow_domains=("arxiv.org", "github.com"))
    assert eligible(links("https://arxiv.org/abs/1", "https://github.com/a"), policy)[0] is True
    assert eligible(links("https://arxiv.org/abs/1", "https://medium.com/p"), policy) == (
        False, "domain_not_allowed: medium.com")
    # links back to X need not be allowed
    assert eligible(links("https://arxiv.org/abs/1", "https://twitter.com/a/status/3"), policy)[0] is True


def test_www_does_not_matter_in_lists_or_links():
    policy = RetweetPolicy(allow_domains=("WWW.Nature.com",))
    assert policy.allow_domains == ("nature.com",)
    assert eligible(links("https://www.nature.com/articles/1"), policy)[0] is True


def test_candidate_from_tweet():
    tweet = Tweet(id=5, text="t", created_at=datetime(2026, 5, 1, tzinfo=UTC), author_handle="ml",
                  urls=(TweetUrl("https://t.co/a", "https://arxiv.org/abs/1"),
                        TweetUrl("https://t.co/b", "https://twitter.com/i/web/status/5")))
    candidate = Candidate.from_tweet(tweet, 0.93)
    assert (candidate.tweet_id, candidate.author_handle, candidate.ai_probability) == (5, "ml", 0.93)
    assert candidate.domains == ("arxiv.org",)  # the read-more link is not a link


# --- policy from the environment -----------------------------------------------------------


def test_policy_defaults_are_a_dry_run_below_x_limit():
    policy = RetweetPolicy.from_env({})
    assert policy == RetweetPolicy(dry_run=True, max_per_15min=40, allow_domains=(), deny_domains=(), min_precision=0.9)
    assert DEFAULT_RETWEETS_PER_15_MIN < X_RETWEETS_PER_15_MIN == 50


def test_policy_from_env():
    policy = RetweetPolicy.from_env({
        "X_RETWEET_DRY_RUN": " False ", "X_RETWEETS_PER_15_MIN": "12",
        "X_RETWEET_ALLOW_DOMAINS": "arxiv.org, *.github.io,,.Nature.com, arxiv.org",
        "X_RETWEET_DENY_DOMAINS": "bit.ly,m\u00fcller.de",
    })
    assert policy.dry_run is False and policy.max_per_15min == 12
    assert policy.allow_domains == ("arxiv.org", "github.io", "nature.com")
    assert policy.deny_domains == ("bit.ly", "xn--mller-kva.de")


@pytest.mark.parametrize(("value", "dry_run"), [("1", True), ("yes", True), ("TRUE", True), ("on", True),
                                                ("0", False), ("no", False), ("off", False), ("", True)])
def test_dry_run_values(value, dry_run):
    assert RetweetPolicy.from_env({"X_RETWEET_DRY_RUN": value, "X_RETWEET_ANY_DOMAIN": "true"}).dry_run is dry_run


@pytest.mark.parametrize(("env", "variable"), [
    ({"X_RETWEET_DRY_RUN": "maybe"}, "X_RETWEET_DRY_RUN"),
    ({"X_RETWEETS_PER_15_MIN": "51"}, "X_RETWEETS_PER_15_MIN"),
    ({"X_RETWEETS_PER_15_MIN": "0"}, "X_RETWEETS_PER_15_MIN"),
    ({"X_RETWEETS_PER_15_MIN": "-3"}, "X_RETWEETS_PER_15_MIN"),
    ({"X_RETWEETS_PER_15_MIN": "ten"}, "X_RETWEETS_PER_15_MIN"),
    ({"X_RETWEETS_PER_15_MIN": "\u0664\u0660"}, "X_RETWEETS_PER_15_MIN"),  # Arabic-Indic digits
    ({"X_RETWEET_ALLOW_DOMAINS": "https://arxiv.org/"}, "X_RETWEET_ALLOW_DOMAINS"),
    ({"X_RETWEET_DENY_DOMAINS": "bad domain.com"}, "X_RETWEET_DENY_DOMAINS"),
    ({"X_RETWEET_DENY_DOMAINS": "evil.com:8080"}, "X_RETWEET_DENY_DOMAINS"),
    ({"X_RETWEETS_PER_DAY": "0"}, "X_RETWEETS_PER_DAY"),
    ({"X_RETWEETS_PER_DAY": "2401"}, "X_RETWEETS_PER_DAY"),
    ({"X_RETWEET_ANY_DOMAIN": "maybe"}, "X_RETWEET_ANY_DOMAIN"),
    ({"X_RETWEET_DRY_RUN": "false"}, "X_RETWEET_ALLOW_DOMAINS"),  # live mode: an allow list, or "any" said
    ({"X_RETWEET_DRY_RUN": "false", "X_RETWEET_ALLOW_DOMAINS": " , "}, "X_RETWEET_ALLOW_DOMAINS"),
])
def test_bad_policy_settings_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        RetweetPolicy.from_env(env)


def test_live_mode_with_an_allow_list_or_any_domain_said_explicitly():
    listed = RetweetPolicy.from_env({"X_RETWEET_DRY_RUN": "false", "X_RETWEET_ALLOW_DOMAINS": "arxiv.org"})
    anything = RetweetPolicy.from_env({"X_RETWEET_DRY_RUN": "false", "X_RETWEET_ANY_DOMAIN": "yes",
                                       "X_RETWEETS_PER_DAY": "20"})
    assert (listed.allow_domains, listed.any_domain, listed.max_per_day) == (("arxiv.org",), False, 100)
    assert (anything.allow_domains, anything.any_domain, anything.max_per_day) == ((), True, 20)
    with pytest.raises(SettingsError, match="X_RETWEET_ANY_DOMAIN=true"):
        RetweetPolicy(dry_run=False)


# --- credentials ---------------------------------------------------------------------------

CREDENTIALS = {"X_API_KEY": "key", "X_API_SECRET": "secret", "X_ACCESS_TOKEN": "1000-token",
               "X_ACCESS_TOKEN_SECRET": "token-secret"}


def test_credentials_from_env_and_kept_out_of_repr():
    credentials = credentials_from_env(CREDENTIALS)
    assert (credentials.api_key, credentials.api_secret, credentials.access_token,
            credentials.access_token_secret) == ("key", "secret", "1000-token", "token-secret")
    assert repr(credentials) == "XCredentials()"


@pytest.mark.parametrize("variable", list(CREDENTIALS))
@pytest.mark.parametrize("value", [None, "", "  ", "change-me"])
def test_a_missing_credential_is_named(variable, value):
    env = dict(CREDENTIALS)
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    with pytest.raises(SettingsError, match=rf"^{variable} is not set: live retweeting"):
        credentials_from_env(env)
