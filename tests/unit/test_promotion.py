"""The approval request of a promotion: both versions' metrics side by side, the live tweets on
which they disagree (escaped), and nothing done without an Approve."""

from __future__ import annotations

from ai_tweets.promotion import Disagreements, request_body, settle_approval, settle_refusal

COMPARISON = {"judged_on": "gold", "rows": 240, "metric": "f1",
              "champion": {"version": "4", "f1": 0.58, "precision": 0.61, "recall": 0.552},
              "challenger": {"version": "7", "f1": 0.77, "precision": 0.83, "recall": 0.71}}


def test_the_body_shows_both_versions_on_the_same_rows_and_their_disagreements():
    found = Disagreements(scored=2_000, champion_only=12, challenger_only=25,
                          examples=[(0.1, 0.93, "New | LLM *bold* <script>x</script> " + "y" * 400)])
    body = request_body("ai-tweet-classifier", COMPARISON, found, "tweets", 24)
    assert "| on the same gold-labeled test rows | champion v4 | challenger v7 |" in body
    assert "| f1 | 0.580 | 0.770 |" in body and "| recall | 0.552 | 0.710 |" in body
    assert "same 240 test tweets" in body and "within 24 h" in body
    assert "they disagree on 37 (1.8%)" in body and "challenger alone calls 25" in body
    row = body.splitlines()[-1]
    assert row.startswith("| 0.10 | 0.93 | New &#124; LLM &#42;bold&#42; &#60;script&#62;") and row.endswith("… |")
    assert len(row) < 400, "a long tweet is shortened"


def test_without_live_tweets_the_body_says_so():
    body = request_body("m", COMPARISON, Disagreements(0, 0, 0, []), "tweets", 24)
    assert body.endswith("No live tweets in `tweets` to compare them on.")


def test_nothing_is_settled_without_the_matching_answer():
    requests = [{"version": "7", "kwargs": {}}]
    rejected = [{"chosen_options": ["Reject"], "responded_by_user": {"id": "admin", "name": "admin"}}]
    assert settle_approval(requests, rejected)["promoted"] is None, "a Reject never moves the alias"
    approved = {"chosen_options": ["Approve"], "responded_by_user": {"id": "admin", "name": "admin"}}
    assert settle_refusal(requests, approved)["promoted"] is None, "an Approve is not recorded as a refusal"
    assert settle_refusal(requests, None)["reason"] == "no answer recorded: the version still waits"
    assert settle_refusal([], None)["reason"] == "no version waited for an approval"
