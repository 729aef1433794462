"""Precision on gold labels at each threshold, and the threshold that reaches a stated precision.

The train stage stores each gold-judged version's `precision_curve` in `model_quality`; the
retweet action's automatic live mode retweets only tweets at or above
`threshold_for_precision(curve, X_RETWEET_MIN_PRECISION, MIN_GOLD_TWEETS_ABOVE)` for the version
that scored them. Light on purpose (numpy only): the classify job's workers import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# Gold-labeled test tweets at or above a threshold before its precision counts: fewer say little.
MIN_GOLD_TWEETS_ABOVE = 10


def precision_curve(probabilities: Iterable[float], labels: Iterable[int]) -> list[list[float]]:
    """[threshold, precision, tweets at or above it] for each distinct probability, highest first:
    what `threshold_for_precision` chooses from (stored per version, judged on gold labels)."""
    scores = np.asarray(list(probabilities), dtype=np.float64)
    truth = np.asarray(list(labels)).astype(int)
    if not scores.size:
        return []
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], np.cumsum(truth[order])
    lasts = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])  # the last row of each distinct score
    return [[float(scores[last]), float(hits[last] / (last + 1)), int(last + 1)] for last in lasts]


def threshold_for_precision(curve: Sequence[Sequence[float]], target: float, min_tweets: int) -> float | None:
    """The lowest threshold of `curve` (`precision_curve`) at which precision is at least `target`
    over at least `min_tweets` tweets; None when none is."""
    chosen = None
    for threshold, precision, tweets in curve:
        if tweets >= min_tweets and precision >= target:
            chosen = threshold if chosen is None else min(chosen, threshold)
    return chosen
