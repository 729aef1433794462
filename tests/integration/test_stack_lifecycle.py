"""`make up` twice is harmless; `make down` leaves no process and no open port behind;
a warm `make up` brings everything back."""

from __future__ import annotations

import time

import pytest
from conftest import ROOT, stack

from localstack.runtime import port_open
from localstack.services import SERVICES
from stackbase.processes import alive, group_members, running_pid


def _pids() -> dict[str, int]:
    return {s.name: running_pid(ROOT / ".local" / "run" / f"{s.name}.pid") for s in SERVICES}


def _group_members(pgids: set[int]) -> set[int]:
    return {pid for pgid in pgids for pid in group_members(pgid)}


def test_up_twice_down_and_warm_up(local_stack, settings):
    if local_stack:
        pytest.skip("the stack was running before this session (someone may be using it); this test stops "
                    "and restarts it, so it runs on a stack the session starts itself, as in CI")
    before = _pids()
    assert all(before.values()), before

    second = stack("up")
    assert "started " not in second.stdout, second.stdout
    assert _pids() == before, "a second `up` must not restart running services"

    processes = _group_members(set(before.values()))
    assert len(processes) >= len(SERVICES)
    ports = [int(settings.airflow_url.rsplit(":", 1)[1]), int(settings.mlflow_tracking_uri.rsplit(":", 1)[1]),
             int(settings.label_studio_url.rsplit(":", 1)[1]),
             int(settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])]

    stack("down")
    left = [pid for pid in processes if alive(pid)]
    assert left == [], f"processes left after down: {left}"
    assert not any(port_open(port) for port in ports)
    assert not any((ROOT / ".local" / "run" / f"{s.name}.pid").exists() for s in SERVICES)
    assert stack("down").returncode == 0, "down on a stopped stack is harmless"

    began = time.monotonic()
    stack("up")
    print(f"warm `make up`: {time.monotonic() - began:.0f} s")
    assert stack("status", check=False).returncode == 0, "every service healthy again"
    assert set(_pids().values()).isdisjoint(before.values()), "fresh processes after the restart"
