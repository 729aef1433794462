"""Every DAG file parses offline (no network, no database), fast, without heavy imports,
and follows the project's DAG conventions (tags, retries >= 2, doc_md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("tensorflow", "torch", "snorkel", "mlflow", "pyspark", "label_studio_sdk", "tweepy")

# Runs in a fresh interpreter so that sys.modules shows what the DAG files themselves import.
PROBE = r"""
import json, socket, sys, time
def refuse(*args, **kwargs):
    raise RuntimeError("DAG file opened a network connection at import time")
socket.socket.connect = refuse
socket.create_connection = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
report = {"files": {}, "heavy": []}
for path in sys.argv[2:]:
    began, began_cpu = time.perf_counter(), time.process_time()
    found = bag.process_file(path, only_if_updated=False, safe_mode=False)
    report["files"][path] = {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - began_cpu,
        "dags": [
            {"dag_id": d.dag_id, "tags": sorted(d.tags or []), "doc_md": bool(d.doc_md),
             "min_retries": min((t.retries for t in d.tasks), default=None),
             "catchup": d.catchup, "timetable": type(d.timetable).__name__}
            for d in found
        ],
    }
report["errors"] = {k: str(v) for k, v in bag.import_errors.items()}
report["heavy"] = [m for m in json.loads(sys.argv[1]) if m in sys.modules]
print("REPORT" + json.dumps(report))
"""


def _probe(home: Path, **extra_env: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        # An unreachable database: a DAG file that touches it fails to import.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/missing/never.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        # As in the local stack: the package comes from this checkout's include/.
        "PYTHONPATH": str(ROOT / "include"),
        **extra_env,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY_MODULES), *map(str, DAG_FILES)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("REPORT")), None)
    assert line, f"DAG probe failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(line[len("REPORT"):])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    return _probe(tmp_path_factory.mktemp("airflow_home"), AI_TWEETS_TIMED_SCHEDULES="on")


def _timetables(report: dict) -> dict[str, str]:
    return {dag["dag_id"]: dag["timetable"] for info in report["files"].values() for dag in info["dags"]}


def test_timed_schedules_run_beside_the_asset_triggers_unless_held(report, tmp_path):
    timed = _timetables(report)
    assert timed["annotate"] == timed["classify_stream"] == "AssetOrTimeSchedule"
    assert timed["service_health"] == timed["review_retweets"] == timed["spot_check_retweets"] == \
        "CronTriggerTimetable"
    held = _timetables(_probe(tmp_path, AI_TWEETS_TIMED_SCHEDULES="off"))
    assert held["annotate"] == held["classify_stream"] == "AssetTriggeredTimetable"
    assert held["service_health"] == held["review_retweets"] == held["spot_check_retweets"] == "NullTimetable"
    changing = ("annotate", "classify_stream", "service_health", "review_retweets", "spot_check_retweets")
    assert {dag: kind for dag, kind in held.items() if dag not in changing} \
        == {dag: kind for dag, kind in timed.items() if dag not in changing}


def test_there_are_dags():
    assert DAG_FILES, "no DAG files found in dags/"


def test_no_import_errors(report):
    assert report["errors"] == {}


def test_each_file_defines_a_dag_and_parses_in_under_a_second(report):
    # CPU time, not wall time: what parsing costs the DAG processor, whatever else the machine runs
    for path, info in report["files"].items():
        assert info["dags"], f"{path} defines no DAG"
        assert info["cpu_seconds"] < 1.0, \
            f"{path} took {info['cpu_seconds']:.2f} CPU-s to parse ({info['seconds']:.2f} s wall)"


def test_no_heavy_imports_at_parse_time(report):
    assert report["heavy"] == [], f"DAG files import heavy modules at parse time: {report['heavy']}"


def test_dag_conventions(report):
    for path, info in report["files"].items():
        for dag in info["dags"]:
            where = f"{dag['dag_id']} ({Path(path).name})"
            assert dag["tags"], f"{where} has no tags"
            assert dag["doc_md"], f"{where} has no doc_md"
            assert dag["min_retries"] is not None and dag["min_retries"] >= 2, f"{where}: retries < 2"
            assert dag["catchup"] is False, f"{where}: catchup must be False"
