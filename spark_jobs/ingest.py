"""Spark application: Kafka topic `tweets` → raw table `{prefix}_{version}` in streamingdb.

    spark-submit spark_jobs/ingest.py [--available-now] [--trigger-seconds 2] [--max-offsets 200000]

The logic is `ai_tweets.ingest`; this file only parses arguments and runs the query.
"""

import sys

from ai_tweets.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
