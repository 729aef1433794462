"""End-to-end classify throughput and latency, Kafka → Spark → model serving → Postgres,
against the one-request-per-row call pattern, in the same run, on the local stack.

    make up && source .local/activate
    python benchmarks/classify_stream.py [--tweets 100000] [--rate 1000] [--seconds 60]

1. throughput: N generated tweets already in a fresh topic, classified in available-now
   mode (batched calls); tweets/s over the streaming part (first batch start → last end).
2. latency: the job running continuously while a producer sends `--rate` tweets/s for
   `--seconds`; per AI row, produce (Kafka timestamp) → row committed; p50/p95.
3. baseline: the same job with one request per tweet (`--batch-size 1 --concurrency 1`) over
   a smaller sample, so the ratio is measured, not assumed.
4. shadow scoring (unless `--no-shadow`): a second version becomes the `challenger`, served
   beside the champion, and step 1 is run again: every batch is also scored by it; the ratio
   to step 1 is the cost of shadow scoring.
A model of its own is trained on generated data, registered and served on a free port (and
the challenger on another).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from ai_tweets import classify
from ai_tweets.capture import produce_tweets
from ai_tweets.storage import connect
from ai_tweets_devkit.models import ModelServer, free_port, register_model
from stackbase.settings import environment, load_settings

ROOT = Path(__file__).resolve().parents[1]


def _env(base: dict, topic: str) -> dict:
    return {**base, "TWEETS_TOPIC": topic, "DATA_DIR": str(ROOT / ".local" / "bench" / topic)}


def _job(env: dict, *args: str) -> subprocess.Popen:
    """The classify job on `env`'s topic; its output goes to classify.log in the topic's DATA_DIR."""
    log = Path(env["DATA_DIR"]) / "classify.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), *args],
                                env={**os.environ, **env, "PYTHONPATH": str(ROOT / "include")},
                                start_new_session=True, stderr=subprocess.STDOUT, stdout=out)


def _query(settings, sql: str, parameters: tuple) -> list[tuple]:
    with connect(settings) as conn:
        return conn.execute(sql, parameters).fetchall()


def _batches(settings, topic: str) -> list[tuple]:
    return _query(settings, "SELECT rows_in, latency_ms, finished_at FROM classify_batches WHERE query_name = %s "
                  "ORDER BY batch_id", (classify.query_name(settings),))


def _streaming_rate(settings, topic: str) -> tuple[int, float]:
    """Tweets/s from the start of the second micro-batch to the end of the last: the first one
    also starts the Python workers and the model server's TensorFlow graph."""
    rows = [b for b in _batches(settings, topic) if b[0]]
    steady = rows[1:] if len(rows) >= 3 else rows
    total = sum(b[0] for b in steady)
    began = steady[0][2].timestamp() - steady[0][1] / 1000
    return sum(b[0] for b in rows), total / max(steady[-1][2].timestamp() - began, 1e-9)


def _fresh_seed() -> int:
    """A generator seed no earlier run used (likely): tweets of an earlier run would already be
    in ai_tweets and only hit the ON CONFLICT path (and keep their old produced_at). Not from
    the `random` module, which training seeds (keras.utils.set_random_seed)."""
    return secrets.randbelow(60_000)


def _check_written(settings, topic: str, since: float) -> None:
    """Every AI row the job's batches report is a new row of ai_tweets, or the figures are off."""
    reported = sum(ai for ai, in _query(settings, "SELECT ai_rows FROM classify_batches WHERE query_name = %s",
                                        (classify.query_name(settings),)))
    written = _query(settings, "SELECT count(*) FROM ai_tweets WHERE produced_at >= to_timestamp(%s)", (since,))[0][0]
    if written < reported:
        raise SystemExit(f"{topic}: the job reported {reported:,} AI rows but wrote {written:,} new ones: its "
                         "tweets were already in ai_tweets (a seed of an earlier run), so it measured the "
                         "conflict path; run again")


def throughput(base: dict, tweets: int, *extra: str) -> tuple[int, float]:
    topic = f"bench-classify-{uuid.uuid4().hex[:8]}"
    env = _env(base, topic)
    settings = load_settings(env)
    since = time.time()
    produce_tweets("generate", count=tweets, seed=_fresh_seed(), settings=settings)
    job = _job(env, "--available-now", *extra)
    if job.wait() != 0:
        raise SystemExit(f"classify job failed ({' '.join(extra)}); see {env['DATA_DIR']}/classify.log")
    _check_written(settings, topic, since)
    return _streaming_rate(settings, topic)


def serving_throughput(url: str, batches: int = 20, size: int = 1_000) -> float:
    """Texts per second through /invocations with batches of `size` texts."""
    import urllib.request

    from ai_tweets_devkit.models import generated_texts

    texts = generated_texts(size, seed=74)[0]
    payload = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()
    began = time.monotonic()
    for _ in range(batches):
        request = urllib.request.Request(f"{url}/invocations", data=payload,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    return batches * size / (time.monotonic() - began)


def latency(base: dict, rate: float, seconds: float) -> dict:
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    env = _env(base, topic)
    settings = load_settings(env)
    produce_tweets("generate", count=100, seed=72, settings=settings)  # create the topic
    job = _job(env, "--trigger-seconds", "0.5", "--starting-offsets", "latest")
    # The job reads from the latest offset it finds when its query starts: a few tweets at a
    # time until one of its batches has rows, so that the measured ones are all read.
    deadline = time.monotonic() + 300
    while not any(rows for rows, *_ in _batches(settings, topic)):
        if job.poll() is not None or time.monotonic() > deadline:
            os.killpg(job.pid, signal.SIGTERM)
            raise SystemExit(f"latency: the classify job {'stopped' if job.poll() is not None else 'read nothing'}"
                             f" within 300 s; see {env['DATA_DIR']}/classify.log")
        produce_tweets("generate", count=10, seed=_fresh_seed(), settings=settings)
        time.sleep(2)
    started = time.time()
    stop = threading.Event()
    report = produce_tweets("generate", seconds=seconds, seed=_fresh_seed(), rate=rate,
                            settings=settings, stop=stop)
    time.sleep(10)  # the last batches
    os.killpg(job.pid, signal.SIGTERM)
    job.wait(60)
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM classified_at - produced_at)), count(*) FROM ai_tweets "
            "WHERE produced_at >= to_timestamp(%s)", (started,)).fetchone()
    p50, p95 = rows[0] or (None, None)
    if not rows[1]:
        raise SystemExit(f"latency: no AI row of the {report['delivered']:,} tweets sent was committed; "
                         f"see {env['DATA_DIR']}/classify.log")
    return {"sent": report["delivered"], "achieved_rate": report["tweets_per_second"], "ai_rows": rows[1],
            "p50_s": p50, "p95_s": p95}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=200_000)
    parser.add_argument("--baseline-tweets", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=1_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--no-shadow", action="store_true", help="skip the shadow scoring pass")
    args = parser.parse_args()

    base = {**environment(), "MODEL_NAME": f"bench-clf-{uuid.uuid4().hex[:6]}",
            "MODEL_SERVING_URL": f"http://127.0.0.1:{free_port()}",  # and its challenger beside it:
            "MODEL_SHADOW_URL": f"http://127.0.0.1:{free_port()}"}  # none until step 4
    settings = load_settings(base)
    print("training and serving a benchmark model …", flush=True)
    register_model(settings, seed=70)
    server = ModelServer(base, ROOT / ".local" / "bench" / "serving.json")
    server.start()
    try:
        serving = serving_throughput(settings.model_serving_url)
        print(f"throughput: {args.tweets:,} tweets, batched requests …", flush=True)
        batched = throughput(base, args.tweets)
        print(f"baseline: {args.baseline_tweets:,} tweets, one request per tweet …", flush=True)
        per_row = throughput(base, args.baseline_tweets, "--batch-size", "1", "--concurrency", "1")
        print(f"latency: {args.rate:.0f} tweets/s for {args.seconds:.0f} s …", flush=True)
        lat = latency(base, args.rate, args.seconds)
        shadowed = None
        if not args.no_shadow:
            print("shadow scoring: a challenger served beside the champion …", flush=True)
            from mlflow import MlflowClient

            challenger = register_model(settings, seed=71, epochs=1, champion=False)
            MlflowClient(settings.mlflow_uri()).set_registered_model_alias(settings.model_name, "challenger",
                                                                           challenger)
            server.wait_for("serving", challenger, shadow=True)
            print(f"throughput: {args.tweets:,} tweets, batched, scored by both versions …", flush=True)
            shadowed = throughput(base, args.tweets)
    finally:
        server.stop()
    results = {"serving_tweets_per_s_batch_1000": round(serving), "batched_tweets": batched[0],
               "batched_tweets_per_s": round(batched[1]),
               "per_row_tweets": per_row[0], "per_row_tweets_per_s": round(per_row[1]),
               "speedup": round(batched[1] / per_row[1], 1), **{f"latency_{k}": v for k, v in lat.items()}}
    if shadowed:
        results.update(shadow_tweets=shadowed[0], shadow_tweets_per_s=round(shadowed[1]),
                       shadow_vs_batched=round(shadowed[1] / batched[1], 2))
    print()
    serving_rate = results["serving_tweets_per_s_batch_1000"]
    print(f"{'model serving alone, batches of 1,000':<44}{serving_rate:>10,} tweets/s")
    print(f"{'end-to-end throughput, batched (steady)':<44}{results['batched_tweets_per_s']:>10,} tweets/s")
    print(f"{'end-to-end throughput, one request per row':<44}{results['per_row_tweets_per_s']:>10,} tweets/s")
    print(f"{'speed-up of batching':<44}{results['speedup']:>10}x")
    print(f"{'latency at ' + str(int(args.rate)) + ' tweets/s: p50 / p95':<44}"
          f"{lat['p50_s'] or float('nan'):>6.2f} s / {lat['p95_s'] or float('nan'):.2f} s "
          f"({lat['ai_rows']:,} AI rows, sent {lat['achieved_rate']:,}/s)")
    if shadowed:
        print(f"{'end-to-end, batched, with shadow scoring':<44}{results['shadow_tweets_per_s']:>10,} tweets/s "
              f"({results['shadow_vs_batched']:.2f} of the batched run without)")
    (ROOT / ".local" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / ".local" / "bench" / "classify_stream.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
