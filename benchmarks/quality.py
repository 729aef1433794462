"""`make quality`: how good the classifier is on real tweets it never saw, and how it learns
from people's labels, on the running local stack.

Reads the development set beside the project (`../shared/data`); without it, says so and exits
0. Replays everything but the held-out evaluation rows through the real pipeline (capture,
prepare, train), then runs the active-learning loop through Label Studio with a simulated
annotator, once per strategy: uncertainty sampling, disagreement sampling (champion vs the
latest version, or vs the weak labels) and random sampling (the control); see
`ai_tweets.quality` for the held-out rule and the loop. Prints the table and the learning
curve, writes the curve as a PNG (logged to MLflow, experiment `ai-tweets-quality`, and shown
on the dashboard from the `learning_curve` table) and `.local/bench/QUALITY.md`.

    source .local/activate
    python benchmarks/quality.py [--rounds 8] [--per-round 50] [--strategies uncertainty disagreement random]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ai_tweets.quality import STRATEGIES, QualityDataMissing, development_set, report_markdown, run_quality
from stackbase.settings import PROJECT_ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="labeling rounds after the first training")
    parser.add_argument("--per-round", type=int, default=50, help="gold labels per round")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    args = parser.parse_args()
    try:
        data = development_set()
    except QualityDataMissing as exc:
        print(f"skipped: {exc}")
        return 0
    print(f"quality on real tweets: {data.description}", flush=True)
    began = time.monotonic()
    run = run_quality(data, rounds=args.rounds, per_round=args.per_round, epochs=args.epochs,
                      strategies=args.strategies,
                      progress=lambda line: print(f"  [{time.monotonic() - began:5.0f} s] {line}", flush=True))
    report = report_markdown(run)
    print("\n" + report)
    out = PROJECT_ROOT / ".local" / "bench" / "QUALITY.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"learning curve: {run.plot} (MLflow run {run.mlflow_run_id}); table: {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
