"""Soak: the live stream at 1,000 tweets/s for 30 minutes, through a champion switch and a
kill -9 of the classifier, on the local stack; rows, latency and memory at start and end.

    make soak                      # make up && python benchmarks/soak.py --minutes 30 --rate 1000
    source .local/activate && python benchmarks/soak.py --minutes 5 --rate 500    # a shorter look

What runs, on a topic, tables, model and serving port of its own:
- a producer of generated tweets at `--rate` tweets/s;
- the continuous ingest job and the classify job, both started the way Airflow starts them
  (`ai_tweets.jobs`: detached, rotated logs), the classifier by the watchdog `ensure_classifier`;
- `ai-tweets serve` of the soak's model, following its `champion` alias.
At a third of the time a second model version becomes the champion (serving smoke-tests it,
then switches); at two thirds the classify job is killed with SIGKILL and the watchdog starts
it again. At the end the producer stops, the jobs catch up, and the soak checks:
- raw rows = distinct = produced; every message in exactly one committed classify batch;
  AI rows = distinct;
- p50/p95 of produce → AI row committed, over the whole run and per 5-minute window;
- the memory (PSS, children included) of every long-running process at start (after a
  warm-up of 5 minutes, a sixth of shorter runs: Spark's JVMs and Python workers grow to their
  working size first) and at the end: growth must stay within max(150 MB, 50 %).
Figures are printed and written to .local/bench/SOAK.md (and soak.json). Exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

from ai_tweets.capture import produce_tweets
from ai_tweets.storage import connect
from ai_tweets.tables import identifier
from ai_tweets_devkit.models import ModelServer, free_port, register_model
from stackbase.settings import environment, load_settings

ROOT = Path(__file__).resolve().parents[1]

GROWTH_MB, GROWTH_RATIO = 150, 1.5
STACK_SERVICES = ("postgres", "kafka", "mlflow", "airflow-scheduler", "airflow-apiserver")


def tree_memory_mb(pid: int) -> float | None:
    """PSS of a process and its descendants (shared pages counted once across them), MB."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 2**20


def processes(data_dir: Path, server: ModelServer) -> dict[str, int]:
    found = {"model-serving (soak)": server.process.pid}
    for name in ("ingest", "classify"):
        with_pid = (data_dir / "run" / f"{name}.pid")
        if with_pid.exists():
            found[f"{name} job"] = int(with_pid.read_text().split()[0])
    for name in STACK_SERVICES:
        pid_file = ROOT / ".local" / "run" / f"{name}.pid"
        if pid_file.exists():
            found[name] = int(pid_file.read_text().split()[0])
    return found


def query(settings, statement: str, params: tuple = (), **tables: str) -> list[tuple]:
    """Run `statement`; `{name}` placeholders become the quoted table names given as name=table."""
    from psycopg import sql

    with connect(settings) as conn:
        return conn.execute(sql.SQL(statement).format(**{k: identifier(t) for k, t in tables.items()}),
                            params).fetchall()


def wait(condition, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"soak: {what} not reached in {timeout:.0f} s")
        time.sleep(2)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000)
    args = parser.parse_args()
    seconds = args.minutes * 60
    tag = uuid.uuid4().hex[:8]
    data_dir = ROOT / ".local" / "soak" / tag
    env = {**environment(ROOT / ".env"), "TWEETS_TOPIC": f"soak-{tag}", "RAW_TABLE_PREFIX": f"soak_{tag}",
           "DATA_DIR": str(data_dir), "MODEL_NAME": f"soak-{tag}",
           "MODEL_SERVING_URL": f"http://127.0.0.1:{free_port()}",
           "MODEL_SHADOW_URL": ""}  # no shadow scoring: the stack's challenger is another model
    os.environ.update(env)  # the jobs module reads the settings from the environment, as in Airflow
    os.environ["PYTHONPATH"] = str(ROOT / "include")
    settings = load_settings(env)
    from ai_tweets.classify import query_name
    from ai_tweets.jobs import ensure_classifier, ensure_job, job_status, stop_job
    from ai_tweets.tables import raw_table_name

    raw = raw_table_name(settings)
    first = register_model(settings, seed=91)
    server = ModelServer(env, data_dir / "serving.json")
    server.start()
    stop = threading.Event()
    report: dict = {}
    producer = threading.Thread(target=lambda: report.update(produce_tweets(
        "generate", count=int(args.rate * seconds), seed=int(tag, 16) % 60_000, rate=args.rate, settings=settings,
        stop=stop)))
    began = time.time()
    producer.start()
    ensure_job("ingest", [sys.executable, str(ROOT / "spark_jobs" / "ingest.py"), "--trigger-seconds", "2"],
               settings)
    ensure_classifier()
    events, samples = [], []
    switch_at, kill_at, done = seconds / 3, 2 * seconds / 3, {"switch": False, "kill": False}
    print(f"soak {tag}: {args.rate:,.0f} tweets/s for {args.minutes:g} min (model version {first})", flush=True)
    try:
        while producer.is_alive():
            elapsed = time.time() - began
            sample = {name: tree_memory_mb(pid) for name, pid in processes(data_dir, server).items()}
            samples.append((elapsed, sample))
            if elapsed >= switch_at and not done["switch"]:
                done["switch"] = True
                second = register_model(settings, seed=92, epochs=1)
                switched = time.monotonic()
                server.wait_for("serving", version=second, timeout=300)
                events.append(f"{elapsed:.0f} s: champion {first} → {second}, serving switched after "
                              f"{time.monotonic() - switched:.0f} s (smoke test included)")
            if elapsed >= kill_at and not done["kill"]:
                done["kill"] = True
                pid = job_status("classify", settings)["pid"]
                os.killpg(pid, signal.SIGKILL)
                killed = time.monotonic()
                time.sleep(1)
                restarted = ensure_classifier()
                events.append(f"{elapsed:.0f} s: classify job (pid {pid}) killed -9; the watchdog "
                              f"{restarted['state']} it in {time.monotonic() - killed:.0f} s")
            print(f"  {elapsed / 60:5.1f} min: " + ", ".join(f"{k} {v:,.0f} MB" for k, v in sample.items() if v),
                  flush=True)
            stop.wait(30)
    except BaseException:
        stop.set()
        raise
    finally:
        producer.join()
    produced = report.get("delivered", 0)
    name = query_name(settings)
    try:
        catch_up = wait(lambda: query(settings, "SELECT count(*) FROM {raw}", raw=raw)[0][0] >= produced
                        and query(settings, "SELECT coalesce(sum(rows_in), 0) FROM classify_batches "
                                  "WHERE query_name = %s", (name,))[0][0] >= produced, 900, "catch-up")
        end_sample = {n: tree_memory_mb(pid) for n, pid in processes(data_dir, server).items()}
    finally:
        stop_job("classify", settings)
        stop_job("ingest", settings)
        server.stop()
    rows, distinct = query(settings, "SELECT count(*), count(DISTINCT tweet_id) FROM {raw}", raw=raw)[0]
    in_batches = query(settings, "SELECT sum(rows_in), count(*) FROM classify_batches WHERE query_name = %s",
                       (name,))[0]
    ai, ai_distinct, p50, p95 = query(settings, """
        SELECT count(*), count(DISTINCT tweet_id),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM classified_at - produced_at)),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM classified_at - produced_at))
        FROM ai_tweets WHERE model_name = %s""", (settings.model_name,))[0]
    windows = query(settings, """
        SELECT floor(extract(epoch FROM produced_at - %s::timestamptz) / 300)::int AS window,
               count(*), percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM classified_at - produced_at))
        FROM ai_tweets WHERE model_name = %s GROUP BY 1 ORDER BY 1""",
                    (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)), settings.model_name))
    warm_up = min(300.0, seconds / 6)
    start_sample = next((s for t, s in samples if t >= warm_up), samples[-1][1])
    memory, failures = [], []
    for process, end_mb in end_sample.items():
        start_mb = start_sample.get(process)
        if not start_mb or not end_mb:
            continue
        bound = max(start_mb + GROWTH_MB, start_mb * GROWTH_RATIO)
        memory.append((process, start_mb, end_mb, bound))
        if end_mb > bound:
            failures.append(f"{process} grew from {start_mb:,.0f} MB to {end_mb:,.0f} MB (bound {bound:,.0f} MB)")
    if not (rows == distinct == produced):
        failures.append(f"raw rows {rows:,}, distinct {distinct:,}, produced {produced:,}")
    if in_batches[0] != produced:
        failures.append(f"classify batches counted {in_batches[0]:,} messages, produced {produced:,}")
    if ai != ai_distinct:
        failures.append(f"{ai - ai_distinct} duplicate AI rows")
    load = os.getloadavg()
    lines = [
        f"## soak {tag}, {time.strftime('%Y-%m-%d %H:%M')} UTC: {args.rate:,.0f} tweets/s for {args.minutes:g} min",
        "",
        f"- produced {produced:,} tweets in {report.get('seconds', 0):,.0f} s ({report.get('tweets_per_second')} /s); "
        f"raw rows {rows:,} = distinct {distinct:,}; {in_batches[0]:,} messages in {in_batches[1]:,} committed "
        f"classify batches; {ai:,} AI rows = {ai_distinct:,} distinct; caught up {catch_up:.0f} s after the "
        f"producer stopped",
        f"- produce → AI row committed: p50 {p50:.2f} s, p95 {p95:.2f} s over the run; p95 per 5-min window: "
        + ", ".join(f"{w * 5}–{w * 5 + 5} min {p:.2f} s" for w, _, p in windows if w is not None),
        *[f"- {event}" for event in events],
        f"- memory (PSS with children), after {warm_up / 60:.0f} min warm-up → end (bound max(+150 MB, ×1.5)): "
        + "; ".join(f"{p} {s:,.0f} → {e:,.0f} MB" for p, s, e, _ in memory),
        f"- load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (2 cores, shared)",
        f"- result: {'FAILED: ' + '; '.join(failures) if failures else 'every check passed'}",
    ]
    print("\n".join(lines), flush=True)
    out = ROOT / ".local" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "SOAK.md").open("a") as file:
        file.write("\n".join(lines) + "\n\n")
    (out / "soak.json").write_text(json.dumps({"tag": tag, "produced": produced, "rows": rows, "ai": ai,
                                               "p50": p50, "p95": p95, "events": events, "memory": memory,
                                               "samples": samples, "failures": failures}, indent=2, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
