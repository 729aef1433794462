"""Training time and scoring throughput of the classifier on generated tweets.

    source .local/activate && python benchmarks/train_and_serve.py [--tweets 50000] [--tracking-uri URL]

Generates N tweets (80% train, 10% dev, 10% test; targets 0.9/0.1 from the generator's
ground truth, as weak labels would be), trains with the defaults the pipeline uses, and
prints the training time, test metrics and how many texts a second the model scores. With
--tracking-uri it also logs and registers the model (as `<model>-bench`) and times that.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from ai_tweets import model as classifier  # noqa: E402
from ai_tweets.generator import generate  # noqa: E402
from ai_tweets.schema import normalize  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracking-uri", help="also log and register the model on this MLflow server")
    parser.add_argument("--model-name", default="ai-tweet-classifier-bench")
    args = parser.parse_args()

    started = time.perf_counter()
    items = list(generate(args.tweets, seed=args.seed))
    texts = [normalize(item.payload).text for item in items]
    labels = np.array([item.is_ai for item in items], dtype=int)
    soft = np.where(labels == 1, 0.9, 0.1)
    elapsed = time.perf_counter() - started
    print(f"generated {len(texts):,} tweets ({labels.mean():.1%} AI) in {elapsed:.1f} s")

    train_end, dev_end = int(0.8 * len(texts)), int(0.9 * len(texts))
    started = time.perf_counter()
    trained = classifier.train(texts[:train_end], soft[:train_end], texts[train_end:dev_end],
                               soft[train_end:dev_end], dev_labels=labels[train_end:dev_end],
                               epochs=args.epochs, seed=args.seed)
    training_seconds = time.perf_counter() - started
    epochs_run, settings = len(trained.history["loss"]), trained.hyperparameters
    print(f"trained on {train_end:,} tweets in {training_seconds:.1f} s ({epochs_run} epochs, best "
          f"{settings['best_epoch']}, vocabulary {settings['vocabulary_size']:,}, "
          f"threshold {trained.threshold:.3f})")

    test_texts, test_labels = texts[dev_end:], labels[dev_end:]
    started = time.perf_counter()
    probabilities = trained.predict(test_texts)
    scoring_seconds = time.perf_counter() - started
    metrics = classifier.evaluate(probabilities, test_labels, trained.threshold)
    print("test: " + ", ".join(f"{name} {metrics[name]:.4f}" for name in
                               ("precision", "recall", "f1", "roc_auc", "pr_auc")))
    print(f"scored {len(test_texts):,} texts in {scoring_seconds:.2f} s "
          f"({len(test_texts) / scoring_seconds:,.0f} texts/s in process)")

    if args.tracking_uri:
        started = time.perf_counter()
        version = classifier.log_and_register(
            trained, {f"test_{name}": value for name, value in metrics.items()},
            tracking_uri=args.tracking_uri, model_name=args.model_name, tags={"purpose": "benchmark"},
            dataset_info={"source": "generator", "seed": args.seed, "train_rows": train_end})
        elapsed = time.perf_counter() - started
        print(f"logged and registered {args.model_name} v{version.version} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
