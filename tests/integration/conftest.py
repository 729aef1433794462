"""Every test in this folder needs the local stack (fixture `local_stack` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stack_control import ROOT, STACK, stack  # noqa: F401  (imported by the test modules)


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def human_in_the_loop_dag(settings):
    """`open(dag_id)`: an Airflow client (as admin) with the DAG unpaused. Runs still waiting
    for a person afterwards (a failed test) are ended, since they would hold the next run (one
    run at a time)."""
    from ai_tweets.airflow_api import AirflowClient
    from stackbase.settings import environment

    client = AirflowClient(settings.airflow_url, "admin", environment().get("AIRFLOW_ADMIN_PASSWORD", ""))
    opened: list[str] = []

    def open_dag(dag_id: str) -> AirflowClient:
        client.wait_for_dags({dag_id})
        client.unpause(dag_id)
        opened.append(dag_id)
        return client

    yield open_dag
    for dag_id in opened:
        for run in client._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=running&state=queued")["dag_runs"]:
            client.mark_failed(dag_id, run["dag_run_id"])
