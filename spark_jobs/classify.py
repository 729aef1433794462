"""Spark application: the long-running classifier of the live stream.

    spark-submit spark_jobs/classify.py [--available-now] [--batch-size 1000] [--retweet]

Kafka topic `tweets` → batched calls to MLflow model serving → ai_tweets, tweet_urls and
classify_batches in streamingdb. The logic is `ai_tweets.classify`.
"""

import sys

from ai_tweets.cli import main

if __name__ == "__main__":
    sys.exit(main(["classify", *sys.argv[1:]]))
