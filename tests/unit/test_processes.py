"""The one process helper (stackbase.processes): a detached process is recorded with its
identity, found running, and stopped with its whole group; a reused pid is not the process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from stackbase import processes

SLEEPER = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
          "print('ready', flush=True); time.sleep(60)"


def _wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_detached_process_is_recorded_logged_and_stopped_with_its_group(tmp_path):
    log, pid_file = tmp_path / "logs" / "job.log", tmp_path / "run" / "job.pid"
    child = processes.start([sys.executable, "-c", SLEEPER], log=log, shown="the sleeper", detached=True,
                            pid_file=pid_file)
    _wait_for(lambda: "ready" in log.read_text())
    assert log.read_text().splitlines()[1].endswith("$ the sleeper")
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0), "its own process group"
    assert processes.recorded(pid_file)["state"] == "running" and processes.running_pid(pid_file) == child.pid
    _wait_for(lambda: len(processes.group_members(child.pid)) == 2)
    members = processes.group_members(child.pid)

    processes.stop(child.pid, timeout=10, whole_group=True)
    child.wait(5)
    assert not any(processes.alive(pid) for pid in members)
    assert processes.recorded(pid_file)["state"] == "dead" and processes.running_pid(pid_file) is None


def test_another_process_with_the_recorded_pid_is_not_the_process(tmp_path):
    pid_file = tmp_path / "x.pid"
    processes.write_pid_file(pid_file, os.getpid())
    assert processes.running_pid(pid_file) == os.getpid()
    pid, identity, started = processes.read_pid_file(pid_file)
    boot, ticks = identity.rsplit(":", 1)
    pid_file.write_text(f"{pid} {boot}:{int(ticks) + 1} {started:.0f}\n")  # same pid, a later start
    assert processes.recorded(pid_file)["state"] == "dead"
    assert processes.recorded(tmp_path / "none.pid") == {"state": "stopped", "pid": None}


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
           "time.sleep(60)"
    child = processes.start([sys.executable, "-c", code], output=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    began = time.monotonic()
    processes.stop_child(child, timeout=1)
    assert child.returncode == -9 and time.monotonic() - began < 10
