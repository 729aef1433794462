"""`make bench`: every benchmark on the local stack, one after the other; their figures are
printed as one table at the end and written to .local/bench/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = [
    ("capture: Kafka → Spark → Postgres", ["capture_throughput.py", "--tweets", "200000"]),
    ("prepare: dedup + split + weak labels", ["prepare_dataset.py", "--tweets", "50000"]),
    ("weak labels: LF speed, fit, quality", ["weak_labels_quality.py"]),
    ("train: 50,000 tweets, in-process scoring", ["train_and_serve.py"]),
    ("classify: end to end vs one request per row", ["classify_stream.py"]),
    ("quality: held-out real tweets, active learning", ["quality.py"]),
]


def main() -> int:
    results = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    for title, argv in BENCHMARKS:
        print(f"\n=== {title}", flush=True)
        began = time.monotonic()
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / argv[0]), *argv[1:]], env=env,
                             capture_output=True, text=True)
        lines = [line for line in run.stdout.splitlines() if line.strip()]
        tail = 40 if argv[0] == "quality.py" else 8  # the quality table is longer than one figure
        figures = lines[-tail:] if run.returncode == 0 else [f"FAILED (exit {run.returncode}): {run.stderr[-500:]}"]
        print("\n".join(figures), flush=True)
        results.append((title, time.monotonic() - began, figures))
    report = ["# Benchmark results", "", f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores.", ""]
    for title, seconds, figures in results:
        report += [f"## {title} ({seconds:.0f} s)", "", "```", *figures, "```", ""]
    out = ROOT / ".local" / "bench" / "RESULTS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report))
    print(f"\nwritten to {out}")
    return 0 if all(not f[0].startswith("FAILED") for _, _, f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
