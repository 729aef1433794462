#!/usr/bin/env python3
"""The local stack: the pipeline's real services, run without Docker.

    python3 localstack/stack.py install   # virtual environments, jars, Debian packages
    python3 localstack/stack.py up        # install what is missing, start, wait until healthy
    python3 localstack/stack.py status
    python3 localstack/stack.py down
    python3 localstack/stack.py logs SERVICE

Standard library only: it runs before any virtual environment exists. Ports and
passwords come from `.env` (created from `.env.example` on first run, with random
secrets), so the URLs the pipeline uses are the ones the services listen on.
Every service is one entry in `localstack/services.py`; adding one is adding an entry.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "include"))
sys.path.insert(0, str(HERE.parent))

from ai_tweets.jobs import job_status  # noqa: E402
from localstack.runtime import (  # noqa: E402
    Context,
    StackError,
    alive,
    port_open,
    progress,
    read_pid,
)
from localstack.services import SERVICES, Service, install_browser  # noqa: E402


def _selected(names: list[str]) -> list[Service]:
    if not names:
        return SERVICES
    known = {service.name: service for service in SERVICES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StackError(f"unknown service {unknown[0]!r}; known: {', '.join(known)}")
    return [service for service in SERVICES if service.name in names]


def install(ctx: Context, services: list[Service]) -> None:
    done: set[str] = set()
    for service in services:
        for step in service.installs:
            if step.__name__ not in done:
                step(ctx)
                done.add(step.__name__)


def start(ctx: Context, service: Service) -> None:
    pid = read_pid(ctx.pid_file(service.name))
    if pid and alive(pid):
        return
    for port in service.ports(ctx):
        if port_open(port):
            raise StackError(
                f"{service.name}: port {port} is already taken by a process the stack did not "
                f"start. Stop it, or change the port in .env ({service.port_setting})."
            )
    if service.prepare:
        service.prepare(ctx)
    ctx.spawn(service.name, service.argv(ctx), service.env(ctx), user=service.user)


def wait_healthy(ctx: Context, services: list[Service]) -> None:
    pending = {service.name: service for service in services}
    started = time.monotonic()
    deadline = started + max(service.start_timeout for service in services)
    with progress("waiting for services", interval=5) as tick:
        while pending:
            for name, service in list(pending.items()):
                pid = read_pid(ctx.pid_file(name))
                if not (pid and alive(pid)):
                    raise StackError(
                        f"{name} exited during start-up. Last lines of {ctx.log_file(name)}:\n"
                        + ctx.tail(name)
                    )
                if service.healthy(ctx):
                    print(f"  {name} healthy after {time.monotonic() - started:.0f} s", flush=True)
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                names = ", ".join(pending)
                raise StackError(f"not healthy in time: {names}. See `make logs SERVICE=...`.")
            tick(f"still starting: {', '.join(pending)}")
            time.sleep(1)


def up(ctx: Context, services: list[Service]) -> None:
    began = time.monotonic()
    install(ctx, services)
    # Services start in list order; a service whose `blocks` is set (the database) must be
    # healthy before later ones start, the others boot in parallel.
    batch: list[Service] = []
    for service in services:
        start(ctx, service)
        batch.append(service)
        if service.blocks or service is services[-1]:
            wait_healthy(ctx, batch)
            for ready in batch:
                if ready.after_start:
                    ready.after_start(ctx)
            batch = []
    print(f"\nstack up in {time.monotonic() - began:.0f} s\n")
    status(ctx, services)


def stop_jobs(ctx: Context) -> None:
    """Long-running jobs that Airflow tasks started detached (the classify stream, a live
    producer; see ai_tweets.jobs) stop with the stack."""
    for pid_file in sorted((ctx.settings.data_dir / "run").glob("*.pid")):
        job = job_status(pid_file.stem, ctx.settings)  # pid and start time: never a reused pid
        if job["state"] == "running":
            print(f"stopping job {pid_file.stem} (pid {job['pid']})", flush=True)
            ctx.stop_group(job["pid"], signal.SIGTERM, 30)
        pid_file.unlink(missing_ok=True)


def down(ctx: Context, services: list[Service]) -> None:
    if services == SERVICES:
        stop_jobs(ctx)
    for service in reversed(services):
        pid_file = ctx.pid_file(service.name)
        pid = read_pid(pid_file)
        if not pid:
            continue
        if alive(pid):
            print(f"stopping {service.name} (pid {pid})", flush=True)
            ctx.stop_group(pid, service.stop_signal, service.stop_timeout)
        pid_file.unlink(missing_ok=True)
    print("stack down")


def status(ctx: Context, services: list[Service]) -> bool:
    all_ok = True
    print(f"{'service':<22}{'pid':>8}  {'state':<10}url")
    for service in services:
        pid = read_pid(ctx.pid_file(service.name))
        running = bool(pid and alive(pid))
        state = "healthy" if running and service.healthy(ctx) else ("starting" if running else "stopped")
        all_ok &= state == "healthy"
        print(f"{service.name:<22}{pid or '-':>8}  {state:<10}{service.url(ctx)}")
    for line in ctx.login_lines():
        print(line)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["install", "install-browser", "up", "down", "status", "logs", "env"])
    parser.add_argument("services", nargs="*", help="limit to these services (default: all)")
    args = parser.parse_args(argv)
    try:
        ctx = Context.load()
        services = _selected(args.services)
        if args.command in ("install", "up", "down"):
            # One changer at a time: concurrent up/down (two terminals, a test) would race on pid files.
            lock = (ctx.local / "run" / "stack.lock").open("w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if args.command == "install":
            install(ctx, services)
        elif args.command == "install-browser":
            install_browser(ctx)
        elif args.command == "up":
            up(ctx, services)
        elif args.command == "down":
            down(ctx, services)
        elif args.command == "status":
            return 0 if status(ctx, services) else 3
        elif args.command == "env":
            print(ctx.shell_env())
        else:
            for service in services:
                print(f"==> {ctx.log_file(service.name)}")
                print(ctx.tail(service.name, lines=200))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.umask(0o022)
    sys.exit(main())
