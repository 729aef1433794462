"""Processes: start one, know whether it still runs (across pid reuse and reboots), stop it.

The one process helper of the local stack's services (`localstack`), the pipeline's
long-running jobs (`ai_tweets.jobs`) and model serving (`ai_tweets.serving`).

A pid file holds `<pid> <identity> <started epoch>`; the identity is the boot id and the
process's start time, so another process that got the same pid after a crash or a reboot
never looks like the one recorded. A pid-only file (older checkouts) is still read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie still answers kill(0), and counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def process_identity(pid: int) -> str | None:
    """`<boot id>:<start time in clock ticks since boot>` of a running process, or None: a pid
    and this identify one process, even across pid reuse and reboots."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{boot}:{fields[19]}"  # field 22 of stat; fields[0] is field 3


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


# --- pid files ----------------------------------------------------------------------------


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {process_identity(pid) or '-'} {time.time():.0f}\n")


def read_pid_file(path: Path) -> tuple[int, str | None, float | None] | None:
    """(pid, identity, started epoch) of a pid file; identity None for the pid-only form."""
    try:
        parts = path.read_text().split()
        identity = parts[1] if len(parts) > 1 and parts[1] != "-" else None
        return int(parts[0]), identity, (float(parts[2]) if len(parts) > 2 else None)
    except (OSError, ValueError, IndexError):
        return None


def recorded(path: Path) -> dict:
    """What a pid file says of its process: `state` running, dead (recorded, gone or its pid
    reused) or stopped (no pid file); `pid` and `started` when recorded."""
    found = read_pid_file(path)
    if found is None:
        return {"state": "stopped", "pid": None}
    pid, identity, started = found
    running = alive(pid) and (identity is None or process_identity(pid) == identity)
    return {"state": "running" if running else "dead", "pid": pid, "started": started}


def running_pid(path: Path) -> int | None:
    """The pid of the pid file's process if it still runs, else None."""
    found = recorded(path)
    return found["pid"] if found["state"] == "running" else None


# --- start and stop -------------------------------------------------------------------------


def start(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          log: Path | None = None, shown: str | None = None, output: int | None = None, detached: bool = False,
          user: str | None = None, pid_file: Path | None = None) -> subprocess.Popen:
    """Start `argv`.

    - `log`: a line `=== <time> $ <shown, else the command>` is appended to it, then the
      process's output. `output=subprocess.PIPE` instead: its output (stderr with stdout) to
      read from `.stdout`. Neither: it shares this process's output.
    - `detached`: its own session and process group: it outlives this process, and `stop` can
      end its whole group. Its stdin is closed either way.
    - `pid_file`: records the pid and its identity (`recorded`, `running_pid`).
    """
    out: int | object | None = output
    handle = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shown or ' '.join(argv)}\n".encode())
        handle.flush()
        out = handle
    try:
        process = subprocess.Popen(list(argv), env=None if env is None else dict(env), cwd=cwd, user=user,
                                   stdout=out, stderr=subprocess.STDOUT if out is not None else None,
                                   stdin=subprocess.DEVNULL, start_new_session=detached)
    finally:
        if handle is not None:
            handle.close()
    if pid_file is not None:
        write_pid_file(pid_file, process.pid)
    return process


def stop(pid: int, sig: int = signal.SIGTERM, timeout: float = 30, whole_group: bool = False) -> None:
    """Signal `pid` (a leader that stops its own children), or with `whole_group` every process
    of its group (and SIGCONT, so that a stopped process acts on it); when the process and its
    group are not gone after `timeout` seconds, SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(pid, sig)
            os.killpg(pid, signal.SIGCONT)
        else:
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid) and not group_members(pid):
            return
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)


def stop_child(child: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a child process of this one (SIGTERM, SIGKILL after `timeout`) and reap it."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
