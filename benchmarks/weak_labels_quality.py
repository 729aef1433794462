"""Weak-label quality and speed: the LFs and the LabelModel against the generator's ground truth.

    source .local/activate
    python benchmarks/weak_labels_quality.py [--train 10000] [--test 5000] [--speed 50000] [--lf-summary]

Fits the LabelModel on generated tweets (seed 1), scores other generated tweets (seed 2) and
prints precision, recall and F1 of weak_label == AI (abstains counted as NOT_AI, and apart);
times the LFs on --speed tweets (CPU and wall clock, one core) and the fit. When the real 2020
sample is beside the project (../shared/data), also prints coverage and AI share on its
unfiltered part (first 10,000) and its keyword-captured part (last 1,500).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ai_tweets import label_model, labeling
from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.tables import ABSTAIN, AI

ROOT = Path(__file__).resolve().parents[1]

REAL_TEXTS = ROOT.parent / "shared" / "data" / "tweets_2020_text.jsonl"


def generated(count: int, seed: int):
    items = list(generate(count, seed=seed))
    return (labeling.frame_from_tweets(normalize(item.payload) for item in items),
            np.array([int(item.is_ai) for item in items]))


def timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def scores(truth: np.ndarray, predicted: np.ndarray) -> str:
    true_positive = int((predicted & truth).sum())
    precision = true_positive / max(int(predicted.sum()), 1)
    recall = true_positive / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f"precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}  (n={len(truth):,})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=10_000, help="generated tweets to fit on (seed 1)")
    parser.add_argument("--test", type=int, default=5_000, help="generated tweets to score (seed 2)")
    parser.add_argument("--speed", type=int, default=50_000, help="generated tweets to time the LFs on")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--lf-summary", action="store_true", help="print every LF's accuracy on the test set")
    args = parser.parse_args()

    frame, _ = generated(args.speed, seed=3)
    _, wall, cpu = timed(labeling.apply_lfs, frame)
    print(f"LFs: {len(labeling.LFS)} on {len(frame):,} tweets: {cpu:.1f} s CPU ({wall:.1f} s wall), "
          f"{len(frame) / cpu:,.0f} tweets/s")

    train, _ = generated(args.train, seed=1)
    test, truth = generated(args.test, seed=2)
    L_train, L_test = labeling.apply_lfs(train), labeling.apply_lfs(test)
    model, wall, cpu = timed(lambda: label_model.fit_label_model(L_train, seed=0, epochs=args.epochs))
    prior = label_model.majority_class_balance(L_train)[AI]
    print(f"LabelModel fit on {len(L_train):,} rows, {args.epochs} epochs: {cpu:.1f} s CPU ({wall:.1f} s wall); "
          f"class prior P(AI) {prior:.3f}")

    labels, _ = label_model.weak_labels(model, L_test)
    covered = labels != ABSTAIN
    print(f"generated test set: {truth.mean():.1%} AI, weak labels cover {covered.mean():.1%} "
          f"({int((~covered).sum())} abstain, {truth[~covered].mean() if (~covered).any() else 0:.1%} of them AI)")
    print(f"  weak_label == AI, abstain as NOT_AI: {scores(truth, labels == AI)}")
    print(f"  covered rows only:                   {scores(truth[covered], labels[covered] == AI)}")
    if args.lf_summary:
        summary = labeling.lf_summary(L_test, truth).drop(columns=["description"])
        print(summary.to_string(index=False, float_format="{:.3f}".format))

    if REAL_TEXTS.exists():
        texts = [json.loads(line)["text"] for line in REAL_TEXTS.read_text(encoding="utf-8").splitlines()]
        L_real = labeling.apply_lfs(labeling.frame_from_texts(texts))
        real_labels, _ = label_model.weak_labels(label_model.fit_label_model(L_real, seed=0), L_real)
        for name, part in (("unfiltered (first 10,000)", slice(0, 10_000)),
                           ("keyword-captured (rest)", slice(10_000, None))):
            part_labels = real_labels[part]
            print(f"real 2020 sample, {name}: coverage {(part_labels != ABSTAIN).mean():.1%}, "
                  f"AI {(part_labels == AI).mean():.2%} ({int((part_labels == AI).sum())} tweets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
