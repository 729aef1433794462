"""Prepare-stage timing on the local stack: dedup + split + weak labels for N tweets.

    make up && source .local/activate && python benchmarks/prepare_dataset.py [--tweets 50000]

Captures N generated tweets into a raw table of its own (a random dataset version), then
times each step of `ai_tweets.prepare` and prints them, with the LabelModel fit time and the
weak labels' F1 against the generator's ground truth on the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ai_tweets.capture import produce_tweets
from ai_tweets.generator import ground_truth
from ai_tweets.prepare import dedup, split, weak_label
from ai_tweets.storage import connect
from ai_tweets.tables import split_table_name
from stackbase.settings import environment, load_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=50_000)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    version = random.randint(100_000, 999_999)
    env = {**environment(), "TWEETS_TOPIC": f"bench-prepare-{tag}", "RAW_TABLE_PREFIX": f"bench_prep_{tag}",
           "DATASET_VERSION": str(version), "DATA_DIR": str(ROOT / ".local" / "bench" / tag)}
    os.environ.update(env)  # the prepare functions read the settings from the environment
    settings = load_settings(env)
    print(f"capturing {args.tweets:,} generated tweets (version {version}) …", flush=True)
    produce_tweets("generate", count=args.tweets, seed=81, settings=settings)
    subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--available-now"],
                   env={**os.environ, "PYTHONPATH": str(ROOT / "include")}, check=True,
                   stderr=subprocess.DEVNULL)
    timings = {}
    began = time.monotonic()
    removed = dedup()["removed"]
    timings["dedup"] = time.monotonic() - began
    step = time.monotonic()
    counts = split(seed=1)
    timings["split"] = time.monotonic() - step
    step = time.monotonic()
    report = weak_label(version, track=False)
    timings["weak labels (LFs + LabelModel + writes + Parquet)"] = time.monotonic() - step
    timings["total"] = time.monotonic() - began

    truth = ground_truth(args.tweets, seed=81)
    with connect(settings) as conn:
        labels = dict(conn.execute(f'SELECT tweet_id, weak_label FROM "{split_table_name("test", settings)}"')  # noqa: S608
                      .fetchall())
    true_ai = {i for i in labels if truth[i]}
    said_ai = {i for i, label in labels.items() if label == 1}
    precision = len(true_ai & said_ai) / max(len(said_ai), 1)
    recall = len(true_ai & said_ai) / max(len(true_ai), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)

    print(f"\n{'tweets':<52}{args.tweets:>10,}")
    print(f"{'duplicates removed':<52}{removed:>10,}")
    print(f"{'splits':<52}{json.dumps(counts):>10}")
    for name, seconds in timings.items():
        print(f"{name:<52}{seconds:>9.1f}s")
    print(f"{'LabelModel fit (10,000 rows)':<52}{report['label_model_fit_seconds']:>9.1f}s")
    print(f"{'weak-label F1 vs generator truth (test split)':<52}{f1:>10.3f}  (P {precision:.3f}, R {recall:.3f})")
    out = ROOT / ".local" / "bench" / "prepare_dataset.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tweets": args.tweets, **timings, "fit": report["label_model_fit_seconds"],
                               "f1": f1, "precision": precision, "recall": recall}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
