"""Raw capture throughput, Kafka → Spark ingest → Postgres, on the local stack.

    make up && source .local/activate && python benchmarks/capture_throughput.py [--tweets 200000]

Produces N generated tweets into a fresh topic (timed separately), then runs the ingest
job in available-now mode over them and prints tweets/s for the Kafka → Postgres part.
Uses its own topic and table prefix; drops the table afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ai_tweets.capture import produce_tweets
from ai_tweets.storage import connect, count_rows
from ai_tweets.tables import identifier, raw_table_name
from stackbase.settings import environment, load_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=200_000)
    parser.add_argument("--max-offsets", type=int, default=200_000, help="messages per micro-batch")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark table")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    env = {**environment(), "TWEETS_TOPIC": f"bench-{tag}", "RAW_TABLE_PREFIX": f"bench_raw_{tag}",
           "DATA_DIR": str(ROOT / ".local" / "bench" / tag)}
    settings = load_settings(env)
    table = raw_table_name(settings)

    print(f"producing {args.tweets:,} generated tweets into topic {settings.tweets_topic} …", flush=True)
    report = produce_tweets("generate", count=args.tweets, seed=7, settings=settings)
    print(f"  producer: {report['tweets_per_second']:,} tweets/s ({report['seconds']} s)")

    print("ingesting with Spark (available-now) …", flush=True)
    began = time.monotonic()
    job = subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--available-now",
                            "--max-offsets", str(args.max_offsets)],
                           env={**os.environ, **env, "PYTHONPATH": str(ROOT / "include")},
                           stderr=subprocess.PIPE, text=True)
    batches = []  # (seconds since start when the batch ended, its own duration)
    for line in job.stderr:
        if "ai_tweets.ingest: batch" in line:
            batches.append((time.monotonic() - began, float(line.rsplit(",", 1)[1].split()[0])))
            print("  " + line.split("ai_tweets.ingest: ")[1].strip(), flush=True)
    if job.wait() != 0:
        raise SystemExit("ingest job failed")
    seconds = time.monotonic() - began
    # Steady state: from the start of the first batch to the end of the last one.
    streaming = batches[-1][0] - (batches[0][0] - batches[0][1]) if batches else seconds
    with connect(settings) as conn:
        rows = count_rows(conn, table)
        if not args.keep:
            from psycopg import sql

            conn.execute(sql.SQL("DROP TABLE {table}").format(table=identifier(table)))
    print()
    print(f"{'tweets produced':<36}{args.tweets:>12,}")
    print(f"{'rows in raw table':<36}{rows:>12,}")
    print(f"{'ingest wall time (incl. Spark start)':<36}{seconds:>11.1f}s")
    print(f"{'streaming time (first to last batch)':<36}{streaming:>11.1f}s")
    print(f"{'throughput incl. Spark start':<36}{rows / seconds:>12,.0f} tweets/s")
    print(f"{'capture throughput Kafka → Postgres':<36}{rows / streaming:>12,.0f} tweets/s")
    return 0 if rows == args.tweets else 1


if __name__ == "__main__":
    sys.exit(main())
