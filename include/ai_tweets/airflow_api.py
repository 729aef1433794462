"""A small client of Airflow 3's REST API: log in, unpause, trigger and wait for DAG runs.

Used by `make demo` and the end-to-end tests to drive the real DAGs through Airflow.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

FINISHED = {"success", "failed"}


class AirflowError(RuntimeError):
    """The API refused a call or a run failed; the message says which and why."""


class AirflowClient:
    # A fresh stack's first calls (a trigger, on a 2-core machine at a load of 15 to 25) took
    # longer than 30 s; a call that times out is not retried, since it may have been carried out.
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 120):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = self._login(username, password)

    def _request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token or getattr(self, "_token", None):
            headers["Authorization"] = f"Bearer {token or self._token}"
        request = urllib.request.Request(f"{self.base_url}{path}", method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise AirflowError(f"Airflow {method} {path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise AirflowError(f"Airflow at {self.base_url} is not answering ({exc}); `make status`") from exc
        return json.loads(raw) if raw else None

    def _login(self, username: str, password: str) -> str:
        answer = self._request("POST", "/auth/token", {"username": username, "password": password})
        return answer["access_token"]

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self._request("GET", "/api/v2/dags?limit=1000")["dags"]}

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed every DAG in `dag_ids`."""
        deadline = time.monotonic() + timeout
        while not dag_ids <= (found := self.dag_ids()):
            if time.monotonic() > deadline:
                raise AirflowError(f"DAGs not parsed after {timeout:.0f} s: {sorted(dag_ids - found)}")
            time.sleep(3)

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                            {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_caused_by(self, dag_id: str, source_dag_id: str, source_run_id: str, timeout: float = 900) -> str:
        """The id of the run of `dag_id` that an Asset event of run `source_run_id` of
        `source_dag_id` created: the run a caller caused, never a timed run or one that another
        event started at about the same time. Waits for the event and the run to appear."""
        from urllib.parse import urlencode

        query = urlencode({"source_dag_id": source_dag_id, "source_run_id": source_run_id, "limit": 100})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self._request("GET", f"/api/v2/assets/events?{query}")["asset_events"]
            for event in events:
                for run in event.get("created_dagruns") or []:
                    if run.get("dag_id") == dag_id:
                        return run["run_id"]
            time.sleep(3)
        raise AirflowError(f"no run of {dag_id} was created by an Asset event of {source_dag_id} run "
                           f"{source_run_id} within {timeout:.0f} s (is {dag_id} paused, or did that run "
                           f"emit no event?)")

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}")["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = self._request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> dict:
        """State, try_number, start and end of one task of a run (of one mapped instance)."""
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}"
                                    f"/taskInstances/{task_id}" + ("" if map_index is None else f"/{map_index}"))

    def mark_failed(self, dag_id: str, run_id: str) -> None:
        """End a run that is still going (e.g. waiting for a person) as failed."""
        self._request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}", {"state": "failed"})

    def _hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        return (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances/{task_id}"
                f"/{map_index}/hitlDetails")

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        """A Human-in-the-loop task's request and answer (subject, body, options, chosen_options,
        responded_by_user, ...), as the Required Actions page shows it."""
        return self._request("GET", self._hitl_path(dag_id, run_id, task_id, map_index))

    def waiting_request(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, timeout: float = 300,
                        reading_seconds: float = 5) -> dict:
        """The request of a Human-in-the-loop task once it waits for a person (as the Required
        Actions page lists it), `reading_seconds` after it started waiting: an answer within a
        second of the task parking (before the scheduler took in the executor's report of that)
        fails the try on Airflow 3.3.2 ("finished with state success, but the task instance's
        state attribute is queued"), and the retry asks again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.task_instance(dag_id, run_id, task_id, map_index=map_index)["state"] == "awaiting_input":
                    time.sleep(reading_seconds)
                    return self.hitl_detail(dag_id, run_id, task_id, map_index=map_index)
                problem = "not waiting yet"
            except AirflowError as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise AirflowError(f"{dag_id} run {run_id}: no request of {task_id} within {timeout:.0f} s "
                                   f"({problem}); {self.task_states(dag_id, run_id)}")
            time.sleep(3)

    def respond(self, dag_id: str, run_id: str, task_id: str, options: list[str], map_index: int = -1) -> dict:
        """Answer a Human-in-the-loop task as the logged-in user, like the Required Actions page does."""
        return self._request("PATCH", self._hitl_path(dag_id, run_id, task_id, map_index),
                             {"chosen_options": options, "params_input": {}})

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The log of one try of a task, as text (structured log lines joined, one per line)."""
        lines = []
        for entry in self._log_entries(dag_id, run_id, task_id, try_number):
            if isinstance(entry, dict):
                extra = {k: v for k, v in entry.items() if k not in ("event", "timestamp", "level")}
                lines.append(f"{entry.get('level', '')} {entry.get('event', '')} {json.dumps(extra) if extra else ''}")
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def wait(self, dag_id: str, run_id: str, timeout: float = 1800, progress_every: float = 15,
             echo=print) -> str:
        """Wait for a run to finish, printing task states now and then; raise if it failed."""
        began = time.monotonic()
        last = 0.0
        while (state := self.run_state(dag_id, run_id)) not in FINISHED:
            now = time.monotonic()
            if now - began > timeout:
                raise AirflowError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            if now - last >= progress_every:
                tasks = ", ".join(f"{task}={s}" for task, s in self.task_states(dag_id, run_id).items())
                echo(f"  … {dag_id}: {state} ({now - began:.0f} s) {tasks}")
                last = now
            time.sleep(2)
        if state != "success":
            raise AirflowError(f"{dag_id} run {run_id} {state}: {self.task_states(dag_id, run_id)}"
                               f"{self.failure_reason(dag_id, run_id)}; see the task logs in the Airflow UI")
        return state

    def failure_reason(self, dag_id: str, run_id: str) -> str:
        """What the failed tasks of a run said last (the exception of their last try), as text
        to append to a message; empty when no task failed or the logs cannot be read."""
        reasons = []
        for task_id, state in self.task_states(dag_id, run_id).items():
            if state != "failed":
                continue
            try:
                instance = self.task_instance(dag_id, run_id, task_id)
                entries = self._log_entries(dag_id, run_id, task_id, instance["try_number"])
            except AirflowError:
                continue
            errors = [_error_text(entry) for entry in entries if _error_text(entry)]
            if errors:
                reasons.append(f"\n  {task_id}: {errors[-1]}")
        return "".join(reasons)

    def _log_entries(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list:
        answer = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}"
                                      f"/taskInstances/{task_id}/logs/{try_number}?full_content=true")
        return answer.get("content") or []


def _error_text(entry: Any) -> str:
    """The exception (type: message) or error event of one structured log entry, else ''."""
    if not isinstance(entry, dict):
        return ""
    for detail in entry.get("error_detail") or []:
        if isinstance(detail, dict) and detail.get("exc_type"):
            return f"{detail['exc_type']}: {detail.get('exc_value', '')}".strip()
    if str(entry.get("level", "")).lower() in ("error", "critical") and entry.get("event"):
        return str(entry["event"])
    return ""
