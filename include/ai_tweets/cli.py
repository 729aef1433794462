"""`ai-tweets <stage> ...`: every stage by hand, through the same functions the DAGs call."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ai_tweets.retrying import STREAM_WAIT_SECONDS
from stackbase.settings import SettingsError, environment, load_settings


def _settings_command(_: argparse.Namespace) -> int:
    import dataclasses

    settings = load_settings()
    secret = {item.name for item in dataclasses.fields(settings) if not item.repr}  # a secret stays out of repr
    for name, value in vars(settings).items():
        shown = "***" if name in secret and value else value
        print(f"{name.upper():<26}{shown}")
    return 0


def _health_command(args: argparse.Namespace) -> int:
    from ai_tweets.health import CHECKS, ServiceDown

    settings = load_settings()
    failed = 0
    for name in args.services or CHECKS:
        try:
            print(f"ok    {name:<14}{CHECKS[name](settings)}")
        except (ServiceDown, SettingsError) as exc:
            failed += 1
            print(f"DOWN  {name:<14}{exc}")
    return 1 if failed else 0


def _versioned_settings(args: argparse.Namespace):
    return load_settings(raw_table_prefix=args.raw_table_prefix, dataset_version=args.dataset_version)


def _capture_command(args: argparse.Namespace) -> int:
    from ai_tweets.capture import produce_tweets

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report = produce_tweets(args.source, count=args.count, seconds=args.seconds, file=args.file,
                            seed=args.seed, rate=args.rate, loop=args.loop, settings=load_settings(),
                            stop=stop)
    print("capture: " + ", ".join(f"{key} {value}" for key, value in report.items()))
    return 0


def _stream_options(args: argparse.Namespace):
    from ai_tweets.stream import StreamOptions

    return StreamOptions(available_now=args.available_now, trigger_seconds=args.trigger_seconds,
                         max_offsets_per_trigger=args.max_offsets, starting_offsets=args.starting_offsets,
                         checkpoint_dir=args.checkpoint_dir, on_data_loss=args.on_data_loss)


def _add_stream_arguments(parser: argparse.ArgumentParser, trigger_seconds: float, max_offsets: int,
                          checkpoint: str) -> None:
    parser.add_argument("--available-now", action="store_true",
                        help="process what the topic holds, then stop (bounded runs)")
    parser.add_argument("--trigger-seconds", type=float, default=trigger_seconds)
    parser.add_argument("--max-offsets", type=int, default=max_offsets, help="max messages per micro-batch")
    parser.add_argument("--starting-offsets", choices=["earliest", "latest"], default="earliest")
    parser.add_argument("--checkpoint-dir", type=Path, help=f"default: {checkpoint}")
    parser.add_argument("--on-data-loss", choices=["fail", "record"], default="fail",
                        help="messages that expired from Kafka before the job read them: stop naming the "
                             "lost offsets (default), or record them in stream_gaps and go on")


def _under_spark_submit() -> bool:
    """spark-submit starts the JVM and hands it to Python through the gateway variables."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _ingest_command(args: argparse.Namespace) -> int:
    from ai_tweets.ingest import start_ingest
    from ai_tweets.spark import run_until_stopped, spark_session

    settings = _versioned_settings(args)
    options = _stream_options(args)
    spark = spark_session("ai-tweets-ingest", settings, submitted=_under_spark_submit())
    run_until_stopped(spark, start_ingest(spark, settings, options))
    return 0


def _prune_command(_: argparse.Namespace) -> int:
    from ai_tweets.retention import prune

    deleted = prune()
    print("prune: " + (", ".join(f"{table} {count:,} rows" for table, count in deleted.items()) or "nothing to do"))
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from ai_tweets.airflow_api import AirflowError
    from ai_tweets.demo import run_demo

    try:
        started = os.environ.get("AI_TWEETS_MAKE_STARTED", "").strip()  # set by `make demo`
        up_file = os.environ.get("AI_TWEETS_STACK_UP_FILE", "").strip()  # set by `stack up --then`
        run_demo(args.source, str(args.file) if args.file else None, args.count,
                 make_started=float(started) if started.isdigit() else None,
                 stack_up_file=Path(up_file) if up_file else None)
    except AirflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    return 0


def _prepare_command(args: argparse.Namespace) -> int:
    from ai_tweets.dataset import SplitSizes
    from ai_tweets.prepare import prepare_all

    sizes = SplitSizes(test=args.test_size, dev=args.dev_size, snorkel_train=args.snorkel_train_size)
    report = prepare_all(args.raw_table_prefix, args.dataset_version, sizes, seed=args.seed)
    dedup, splits = report["dedup"], report["splits"]
    print(f"dedup: {dedup['raw_rows']:,} raw → {dedup['kept']:,} ({dedup['removed']:,} duplicates removed)")
    print("splits: " + ", ".join(f"{name} {count:,}" for name, count in splits.items()))
    for name, metrics in report["weak_labels"]["splits"].items():
        print(f"weak labels {name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in metrics.items()))
    return 0


def _weak_label_command(args: argparse.Namespace) -> int:
    from ai_tweets.prepare import score_file

    count = score_file(args.input, args.output)
    print(f"weak-label: {count:,} texts → {args.output}")
    return 0


def _serve_command(args: argparse.Namespace) -> int:
    from ai_tweets.serving import serve

    serve(load_settings(), state_file=args.state_file, poll_seconds=args.poll_seconds, bind=args.bind)
    return 0


def _classify_command(args: argparse.Namespace) -> int:
    from ai_tweets.classify import ClassifyOptions, start_classify
    from ai_tweets.spark import run_until_stopped, spark_session

    options = ClassifyOptions(
        stream=_stream_options(args), request_batch_size=args.batch_size, concurrency=args.concurrency,
        timeout_seconds=args.timeout, max_wait_seconds=args.max_wait, retweet=args.retweet)
    settings = load_settings()
    spark = spark_session("ai-tweets-classify", settings, submitted=_under_spark_submit())
    run_until_stopped(spark, start_classify(spark, settings, options))
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from ai_tweets.train import train_model

    report = train_model(args.dataset_version, epochs=args.epochs, min_gold=args.min_gold, seed=args.seed)
    decision = report["decision"]
    print(f"model {report['decision']['model_name']} version {report['model_version']}: "
          f"test F1 {report['metrics']['f1']:.3f} on {report['evaluated_on']} labels → "
          f"{decision['alias']} (champion score before: {decision['champion_score']})")
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    from ai_tweets.train import predict_file

    count = predict_file(args.input, args.output, args.model_uri)
    print(f"predict: {count:,} texts → {args.output}")
    return 0


def _annotate_command(args: argparse.Namespace) -> int:
    from ai_tweets import annotation

    if args.action == "bootstrap":
        print(f"annotate: Label Studio project id {annotation.bootstrap(args.dataset_version)}")
        return 0
    if args.action == "push":
        report = annotation.push(args.dataset_version, args.batch_size, args.strategy, args.max_pending)
    else:
        report = annotation.pull(args.dataset_version)
    print(f"annotate {args.action}: " + ", ".join(f"{key} {value}" for key, value in report.items()))
    return 0


def _spot_check_command(args: argparse.Namespace) -> int:
    from ai_tweets import spot_check

    report = spot_check.push(args.size, args.model_version) if args.action == "push" else spot_check.pull()
    print(f"spot-check {args.action}: " + ", ".join(f"{key} {value}" for key, value in report.items()))
    return 0


def _mlflow_accounts_command(_: argparse.Namespace) -> int:
    from ai_tweets.tracking import claim_pipeline_names, ensure_viewer

    password = environment().get("MLFLOW_VIEWER_PASSWORD", "").strip()
    if not password:
        raise SettingsError("MLFLOW_VIEWER_PASSWORD is not set: the read-only account needs a password.")
    settings = load_settings()
    for line in [*claim_pipeline_names(settings), ensure_viewer(settings, password)]:
        print(line)
    return 0


def _kafka_accounts_command(_: argparse.Namespace) -> int:
    from ai_tweets.kafka import provision_accounts

    for line in provision_accounts(load_settings()):
        print(line)
    return 0


def _check_secrets_command(args: argparse.Namespace) -> int:
    from stackbase.settings import STACK_SECRETS, environment, secret_problems

    problems = secret_problems(environment(), args.names or STACK_SECRETS)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print("fix: set each in .env to a random secret of 16+ characters (the local stack generates them)",
              file=sys.stderr)
        return 2
    print(f"{len(args.names or STACK_SECRETS)} secrets set, none a placeholder, a default or short")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ai_tweets.annotation import STRATEGIES  # main imports the module anyway

    parser = argparse.ArgumentParser(prog="ai-tweets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("settings", help="print the validated settings (secrets masked)").set_defaults(
        handler=_settings_command)
    secrets = commands.add_parser("check-secrets", help="refuse missing, placeholder, default or short secrets "
                                                        "(Compose runs it before any service starts)")
    secrets.add_argument("names", nargs="*", metavar="NAME", help="the variables to check (default: the stack's)")
    secrets.set_defaults(handler=_check_secrets_command)
    commands.add_parser("kafka-accounts", help="create or update the pipeline's Kafka accounts and ACLs "
                        "(as the broker's admin; run by the stack)").set_defaults(handler=_kafka_accounts_command)
    commands.add_parser("mlflow-accounts", help="create the pipeline's registered model and experiments, and "
                        "MLflow's read-only account `viewer` (as the pipeline's admin account; run by the "
                        "stack)").set_defaults(handler=_mlflow_accounts_command)
    health = commands.add_parser("health", help="check that every service answers")
    health.add_argument("services", nargs="*", metavar="SERVICE",
                        help="postgres, kafka, mlflow, label_studio, airflow (default: all)")
    health.set_defaults(handler=_health_command)

    capture = commands.add_parser("capture", help="tweets from a source → Kafka topic (bounded or not)")
    capture.add_argument("--source", choices=["x", "replay", "generate"], default="generate")
    capture.add_argument("--file", type=Path, help="JSONL file for --source replay")
    capture.add_argument("--count", type=int, default=0, help="stop after N tweets (0: no limit)")
    capture.add_argument("--seconds", type=float, help="stop after T seconds")
    capture.add_argument("--rate", type=float, help="tweets per second (default: as fast as possible)")
    capture.add_argument("--loop", action="store_true", help="replay the file again and again")
    capture.add_argument("--seed", type=int, default=0, help="generator seed (reproducible stream)")
    capture.set_defaults(handler=_capture_command)

    ingest = commands.add_parser("ingest", help="Spark streaming: Kafka topic → raw table in streamingdb")
    _add_stream_arguments(ingest, 2.0, 200_000, "DATA_DIR/checkpoints/ingest/TABLE")
    prepare = commands.add_parser("prepare", help="dedup, split and weak-label a dataset version")
    prepare.add_argument("--raw-table-prefix", help="override RAW_TABLE_PREFIX")
    prepare.add_argument("--dataset-version", help="override DATASET_VERSION")
    prepare.add_argument("--test-size", type=int, default=1_000)
    prepare.add_argument("--dev-size", type=int, default=500)
    prepare.add_argument("--snorkel-train-size", type=int, default=10_000)
    prepare.add_argument("--seed", type=int, default=0)
    prepare.set_defaults(handler=_prepare_command)

    weak = commands.add_parser("weak-label",
                               help="score a JSONL file of {\"text\": ...} with the label model the "
                                    "pipeline recorded for DATASET_VERSION")
    weak.add_argument("--input", type=Path, required=True)
    weak.add_argument("--output", type=Path, required=True, help="CSV: text,weak_label,weak_prob")
    weak.set_defaults(handler=_weak_label_command)

    train = commands.add_parser("train", help="train, evaluate, register and maybe promote the classifier")
    train.add_argument("--dataset-version", help="override DATASET_VERSION")
    train.add_argument("--epochs", type=int, default=30, help="at most; early stopping on the dev loss")
    train.add_argument("--min-gold", type=int, default=50,
                       help="gold labels in the test split needed to judge models on gold (else weak)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=_train_command)

    predict = commands.add_parser("predict", help="score a JSONL file of {\"text\": ...} with a registered model")
    predict.add_argument("--input", type=Path, required=True)
    predict.add_argument("--output", type=Path, required=True, help="CSV: text,ai_probability,label")
    predict.add_argument("--model-uri", help="default: models:/MODEL_NAME@champion")
    predict.set_defaults(handler=_predict_command)

    serve = commands.add_parser("serve", help="serve the champion model (mlflow models serve), "
                                              "following the alias")
    serve.add_argument("--state-file", type=Path, help="JSON file with the serving state (for health checks)")
    serve.add_argument("--poll-seconds", type=float, default=15.0, help="how often to check the alias")
    serve.add_argument("--bind", help="address to listen on (default: MODEL_SERVING_URL's host; "
                                      "0.0.0.0 in a container, whose network decides who reaches it)")
    serve.set_defaults(handler=_serve_command)

    classify = commands.add_parser("classify", help="Spark streaming: topic → model serving → ai_tweets")
    _add_stream_arguments(classify, 1.0, 50_000, "DATA_DIR/checkpoints/classify/TOPIC")
    classify.add_argument("--batch-size", type=int, default=1_000, help="texts per model-serving request")
    classify.add_argument("--concurrency", type=int, default=2, help="parallel requests per partition")
    classify.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    classify.add_argument("--max-wait", type=float, default=STREAM_WAIT_SECONDS,
                          help="seconds a batch waits for a model server that is down")
    classify.add_argument("--retweet", action="store_true",
                          help="retweet AI tweets with links (dry run unless X_RETWEET_DRY_RUN=false)")
    classify.set_defaults(handler=_classify_command)

    annotate = commands.add_parser("annotate", help="Label Studio: bootstrap the project, push the most "
                                                    "uncertain tweets, pull gold labels")
    annotate.add_argument("action", choices=["bootstrap", "push", "pull"])
    annotate.add_argument("--dataset-version", help="override DATASET_VERSION")
    annotate.add_argument("--batch-size", type=int, default=100, help="push: tasks to add at most")
    annotate.add_argument("--strategy", choices=STRATEGIES, default="model",
                          help="push: rank by the champion's uncertainty (weak labels' until there is one), "
                               "the weak labels', at random, or by where champion and challenger (or the "
                               "weak labels) disagree")
    annotate.add_argument("--max-pending", type=int, help="push: top the queue up to N unlabeled tasks")
    annotate.set_defaults(handler=_annotate_command)

    spot = commands.add_parser("spot-check", help="Label Studio: push a random sample of the accepted retweets "
                                                  "for people to label, pull their labels and the precision")
    spot.add_argument("action", choices=["push", "pull"])
    spot.add_argument("--size", type=int, help="push: retweets to sample (default SPOT_CHECK_SIZE)")
    spot.add_argument("--model-version", help="push: only the retweets this version called AI")
    spot.set_defaults(handler=_spot_check_command)

    commands.add_parser("prune", help="delete quarantined messages, batch logs and recorded gaps past their "
                                      "retention").set_defaults(handler=_prune_command)

    demo = commands.add_parser("demo", help="drive the DAGs through Airflow on the running stack")
    demo.add_argument("--source", choices=["generate", "replay", "x"], default="generate")
    demo.add_argument("--file", type=Path, help="JSONL file for --source replay")
    demo.add_argument("--count", type=int, default=20_000, help="tweets to generate")
    demo.set_defaults(handler=_demo_command)

    ingest.add_argument("--raw-table-prefix", help="override RAW_TABLE_PREFIX")
    ingest.add_argument("--dataset-version", help="override DATASET_VERSION")
    ingest.set_defaults(handler=_ingest_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from ai_tweets.annotation import LabelStudioUnavailable
    from ai_tweets.dataset import DatasetTooSmall
    from ai_tweets.kafka import KafkaUnavailable
    from ai_tweets.sources import InputFileError
    from ai_tweets.spark import StreamStopped
    from ai_tweets.storage import DatabaseUnavailable
    from ai_tweets.stream import DataLoss

    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"error: bad setting: {exc}", file=sys.stderr)
        return 2
    except (KafkaUnavailable, DatabaseUnavailable, DatasetTooSmall, LabelStudioUnavailable,
            LookupError, InputFileError, DataLoss, StreamStopped) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
