#!/usr/bin/env python3
"""The local stack: the pipeline's real services, run without Docker.

    make preflight   # what would stop install or up, all at once, with fixes
    make install     # virtual environments, jars, Debian packages
    make up          # install what is missing, start, wait until healthy
    make status
    make down
    make logs SERVICES=kafka
    make clean       # down, then delete the stack's data (.local and the like)

(each is `PYTHONPATH=include python3 -m localstack.stack <command> [SERVICE …]` in the checkout)

Standard library only: it runs before any virtual environment exists. Ports and
passwords come from `.env` (created from `.env.example` on first run, with random
secrets), so the URLs the pipeline uses are the ones the services listen on.
Every service is one entry in `localstack/services.py`; adding one is adding an entry.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from localstack import preflight
from localstack.runtime import (
    Context,
    Installed,
    StackError,
    human_size,
    parallel_stages,
    port_open,
    progress,
)
from localstack.services import SERVICES, Service, Step, install_browser, install_uv
from stackbase import processes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

def _selected(names: list[str]) -> list[Service]:
    if not names:
        return SERVICES
    known = {service.name: service for service in SERVICES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StackError(f"unknown service {unknown[0]!r}; known: {', '.join(known)}")
    return [service for service in SERVICES if service.name in names]


def _stage_name(step: Step) -> str:
    return step.__name__.removeprefix("install_").replace("_", " ")


def install(ctx: Context, services: list[Service]) -> None:
    """Every install step of `services`, side by side (uv first: the environments need it); prints
    and records in .local/timings.json the time of each stage, the total, and what each left."""
    steps: list[Step] = []
    for service in services:
        steps += [step for step in service.installs if step not in steps]
    names = [_stage_name(step) for step in steps]
    began = time.monotonic()
    results: dict[str, tuple[float, Installed]] = {}
    failures: list[str] = []

    if install_uv in steps:
        _run_stage(ctx, install_uv, results, failures)
        steps.remove(install_uv)
    if not failures and steps:
        parallel_stages.set()
        try:
            with ThreadPoolExecutor(max_workers=len(steps)) as pool, \
                    progress("installing", interval=15) as tick:
                pending = {pool.submit(_run_stage, ctx, step, results, failures): step for step in steps}
                while pending:
                    done, _ = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                        del pending[future]
                    tick("still running: " + ", ".join(_stage_name(step) for step in pending.values()))
        finally:
            parallel_stages.clear()
    total = time.monotonic() - began
    if failures:
        raise StackError("install failed:\n" + "\n".join(failures))
    results = {name: results[name] for name in names}
    lines = [_describe_stage(name, seconds, installed) for name, (seconds, installed) in results.items()]
    fresh = any(installed.fresh for _, installed in results.values())
    if fresh:
        print("\ninstall, stage by stage (uv first, then the others side by side):")
        print("\n".join(f"  {line}" for line in lines))
        print(f"install: {total:.0f} s in all\n", flush=True)
    if fresh or "install" not in _timings(ctx):
        _record(ctx, "install", {
            "seconds": round(total, 1),
            "lines": lines,
            "stages": [{"stage": name, "seconds": round(seconds, 1), "fresh": installed.fresh, "bytes": installed.size,
                        "built_seconds": installed.built_seconds, "path": str(installed.path)}
                       for name, (seconds, installed) in results.items()],
        })


def _run_stage(ctx: Context, step: Step, results: dict[str, tuple[float, Installed]], failures: list[str]) -> None:
    began = time.monotonic()
    try:
        installed = step(ctx)
    except StackError as exc:
        failures.append(f"{_stage_name(step)}: {exc}")
        return
    results[_stage_name(step)] = (time.monotonic() - began, installed)


def _describe_stage(name: str, seconds: float, installed: Installed) -> str:
    if installed.fresh:
        state = "installed now"
    elif installed.built_seconds is not None:
        state = f"cached (built in {installed.built_seconds:.0f} s)"
    else:
        state = "present"
    size = human_size(installed.size) if installed.size else ""
    return f"{name:<18}{seconds:>6.0f} s  {state:<26}{size}"


def _timings(ctx: Context) -> dict:
    try:
        return json.loads((ctx.local / "timings.json").read_text())
    except (OSError, ValueError):
        return {}


def _record(ctx: Context, key: str, value: dict) -> None:
    """Timings of this checkout's last install and start, which `make demo` prints at its end."""
    timings = _timings(ctx)
    timings[key] = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **value}
    (ctx.local / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")


def _running(ctx: Context, service: Service) -> bool:
    return ctx.running_pid(service.name) is not None


def start(ctx: Context, batch: list[Service], niceness: Callable[[Service], int] = lambda service: 0) -> list[str]:
    """Start the services of `batch` that are not running. Their prepare steps (migrations,
    formatting) run side by side; each service is spawned, in list order, once its own prepare
    and those of the services before it are done, as when they ran one after another. A service
    starts at `niceness(service)` (its whole process group)."""
    services = [service for service in batch if not _running(ctx, service)]
    for service in services:
        for port in service.ports(ctx):
            if port_open(port):
                raise StackError(
                    f"{service.name}: port {port} is already taken by a process the stack did not "
                    f"start. Stop it, or change the port in .env ({service.port_setting})."
                )
    with ThreadPoolExecutor(max_workers=max(len(services), 1)) as pool:
        prepared = [pool.submit(service.prepare, ctx) for service in services if service.prepare]
        waits = {service.name: prepared[:sum(1 for s in services[:i + 1] if s.prepare)]
                 for i, service in enumerate(services)}
        for service in services:
            for future in waits[service.name]:
                future.result()
            pid = ctx.spawn(service.name, service.argv(ctx), service.env(ctx), user=service.user, cwd=service.cwd(ctx))
            if niceness(service):
                os.setpriority(os.PRIO_PGRP, pid, niceness(service))
    return [service.name for service in services]


def _restore_priority(ctx: Context, service: Service) -> None:
    """Back to normal priority once healthy; lowering a niceness needs root (CAP_SYS_NICE), so as
    another user the service keeps the lower priority it started with."""
    pid = ctx.running_pid(service.name)
    if pid is not None:
        try:
            os.setpriority(os.PRIO_PGRP, pid, 0)
        except PermissionError:
            print(f"  {service.name} keeps niceness {LATE_NICENESS}: only root may raise it back", flush=True)


def wait_healthy(ctx: Context, services: list[Service], on_healthy: Callable[[Service], None],
                 spawning: Future | None = None) -> None:
    """Waits until each of `services` answers its health check; `on_healthy` runs for each one as
    soon as it does (its `after_start`, and what waits for it), not when the last one does. While
    `spawning` (their `start`) runs, a service not spawned yet is not waited for, and the time
    limit (the largest `start_timeout`) counts from when every one was spawned."""
    pending = {service.name: service for service in services}
    started = time.monotonic()
    deadline = None
    with progress("waiting for services", interval=5) as tick:
        while pending:
            if deadline is None and (spawning is None or spawning.done()):
                if spawning is not None:
                    spawning.result()  # a failed prepare or spawn is raised here
                deadline = time.monotonic() + max(service.start_timeout for service in services)
            for name, service in list(pending.items()):
                if ctx.running_pid(name) is None:
                    if deadline is None:
                        continue  # its prepare step still runs
                    raise StackError(
                        f"{name} exited during start-up. Last lines of {ctx.log_file(name)}:\n"
                        + ctx.tail(name)
                    )
                if service.healthy(ctx):
                    print(f"  {name} healthy after {time.monotonic() - started:.0f} s", flush=True)
                    del pending[name]
                    on_healthy(service)
            if not pending:
                break
            if deadline is not None and time.monotonic() > deadline:
                names = ", ".join(pending)
                raise StackError(f"not healthy in time: {names}. See `make logs SERVICE=...`.")
            tick(f"still starting: {', '.join(pending)}")
            time.sleep(1)
    if spawning is not None:
        spawning.result()


# With `up --then`, the services the command does not need first start at this niceness (back
# to 0 once healthy), so that the first ones, and then the command, get the CPU: on 2 cores the
# start is CPU-bound.
LATE_NICENESS = 10


class Then:
    """`up --then COMMAND` (how `make demo` runs): COMMAND starts as soon as every `first` service
    is healthy, while the others finish starting. It finds in AI_TWEETS_STACK_UP_FILE the file
    that appears once the whole stack is up, and waits for it before it needs the rest."""

    def __init__(self, ctx: Context, argv: list[str], services: list[Service]) -> None:
        self.argv = argv
        self.waiting = {service.name for service in services if service.first}
        self.up_file = up_file(ctx)
        self.process: subprocess.Popen | None = None
        self.began_after: float | None = None

    def healthy(self, service: Service, since: float) -> None:
        self.waiting.discard(service.name)
        if not self.waiting:
            self.start(since)

    def start(self, since: float) -> None:
        if self.process is not None:
            return
        self.began_after = time.monotonic() - since
        print(f"\nthe first services answer after {self.began_after:.0f} s: starting `{shlex.join(self.argv[1:])}` "
              "while the others finish starting\n", flush=True)
        self.process = subprocess.Popen(self.argv, env={**os.environ, "AI_TWEETS_STACK_UP_FILE": str(self.up_file)})

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def up_file(ctx: Context) -> Path:
    """Written when `up` has started every service and run their `after_start`; removed when it begins."""
    return ctx.local / "run" / "stack-up"


def up(ctx: Context, services: list[Service], then: list[str] | None = None) -> subprocess.Popen | None:
    """Installs what is missing, starts `services` and waits until they are healthy; with `then`,
    returns the process of that command (started early, see `Then`) for the caller to wait on."""
    began = time.monotonic()
    install(ctx, services)
    starting = time.monotonic()
    up_file(ctx).unlink(missing_ok=True)
    follower = Then(ctx, then, services) if then else None
    # The first services' after_start runs at once (the command may need it); the others' in the
    # background, and with `then` only once the command has started.
    hooks = ThreadPoolExecutor(max_workers=2)
    after_starts: list = []
    deferred: list[Service] = []

    def late(service: Service) -> bool:
        return follower is not None and not service.first

    def on_healthy(service: Service) -> None:
        if late(service):
            _restore_priority(ctx, service)
        if service.after_start and service.first:
            service.after_start(ctx)
        elif service.after_start:
            deferred.append(service)
        if follower:
            follower.healthy(service, starting)
        if follower is None or follower.process is not None:
            after_starts.extend(hooks.submit(ready.after_start, ctx) for ready in deferred)
            deferred.clear()

    # Services start in list order; a service whose `blocks` is set (the database) must be
    # healthy before later ones start, the others boot in parallel.
    batch: list[Service] = []
    started: list[str] = []
    try:
        for service in services:
            batch.append(service)
            if service.blocks or service is services[-1]:
                # Spawning waits for the prepare steps (a first start's migrations): the services
                # already spawned are waited for meanwhile, so the first ones need not wait for those.
                with ThreadPoolExecutor(max_workers=1) as starter:
                    spawning = starter.submit(start, ctx, batch,
                                              lambda service: LATE_NICENESS if late(service) else 0)
                    wait_healthy(ctx, batch, on_healthy, spawning)
                    started += spawning.result()
                batch = []
        if follower:
            follower.start(starting)  # no `first` service among `services`: it starts now
        after_starts.extend(hooks.submit(ready.after_start, ctx) for ready in deferred)
        for future in after_starts:
            future.result()
    except BaseException:
        if follower:
            follower.stop()
        raise
    finally:
        hooks.shutdown(wait=True, cancel_futures=True)
    now = time.monotonic()
    print(f"\nstack up in {now - began:.0f} s (install {starting - began:.0f} s, start {now - starting:.0f} s)\n",
          flush=True)
    if started:
        record = {"seconds": round(now - starting, 1), "started": started}
        if follower and follower.began_after is not None:
            record["then_began_after"] = round(follower.began_after, 1)
        _record(ctx, "up", record)
    up_file(ctx).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    if not follower:
        status(ctx, services)
        return None
    return follower.process


def stop_jobs(ctx: Context) -> None:
    """Long-running jobs that Airflow tasks started detached (the classify stream, a live
    producer; see ai_tweets.jobs) stop with the stack."""
    for pid_file in sorted(ctx.settings.job_run_dir.glob("*.pid")):
        job = processes.recorded(pid_file)  # pid and start time: never a reused pid
        if job["state"] == "running":
            print(f"stopping job {pid_file.stem} (pid {job['pid']}) …", flush=True)
            began = time.monotonic()
            processes.stop(job["pid"], signal.SIGTERM, 30, whole_group=True)  # as ai_tweets.jobs.stop_job
            print(f"stopping job {pid_file.stem}: done in {time.monotonic() - began:.0f} s", flush=True)
        pid_file.unlink(missing_ok=True)


def down(ctx: Context, services: list[Service]) -> None:
    if services == SERVICES:
        stop_jobs(ctx)
    for service in reversed(services):
        pid_file = ctx.pid_file(service.name)
        if not pid_file.exists():
            continue
        if pid := ctx.running_pid(service.name):
            print(f"stopping {service.name} (pid {pid}) …", flush=True)
            began = time.monotonic()
            processes.stop(pid, service.stop_signal, service.stop_timeout)
            print(f"stopping {service.name}: done in {time.monotonic() - began:.0f} s", flush=True)
        pid_file.unlink(missing_ok=True)
    print("stack down")


def clean(ctx: Context) -> None:
    """Stop everything and delete the checkout's stack data: .local, and what services keep
    outside it (PostgreSQL's cluster when run as root). The cached downloads stay."""
    down(ctx, SERVICES)
    for service in SERVICES:
        if service.clean:
            service.clean(ctx)
    shutil.rmtree(ctx.local)
    print(f"removed {ctx.local}")


def status(ctx: Context, services: list[Service]) -> bool:
    all_ok = True
    print(f"{'service':<22}{'pid':>8}  {'state':<10}url")
    for service in services:
        pid = ctx.running_pid(service.name)
        running = pid is not None
        state = "healthy" if running and service.healthy(ctx) else ("starting" if running else "stopped")
        all_ok &= state == "healthy"
        print(f"{service.name:<22}{pid or '-':>8}  {state:<10}{service.url(ctx)}")
    for line in ctx.login_lines():
        print(line)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["preflight", "install", "install-browser", "up", "down", "status", "logs",
                                            "env", "clean"])
    parser.add_argument("services", nargs="*", help="limit to these services (default: all)")
    parser.add_argument("--then", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="with up: run COMMAND as soon as the services it needs first are healthy "
                             "(see `Then`); exits with its status")
    args = parser.parse_args(argv)
    try:
        services = _selected(args.services)
        if args.command in ("preflight", "install", "up"):
            # Before anything is downloaded or started; `install` alone needs no free ports.
            if preflight.run(ROOT, services, ports=args.command != "install"):
                return 1
            if args.command == "preflight":
                return 0
        ctx = Context.load()
        if args.command in ("install", "up", "down", "clean"):
            # One changer at a time: concurrent up/down (two terminals, a test) would race on pid files.
            lock = (ctx.local / "run" / "stack.lock").open("w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if args.then and args.command != "up":
            raise StackError("--then goes with `up` only")
        if args.command == "install":
            install(ctx, services)
        elif args.command == "install-browser":
            install_browser(ctx)
        elif args.command == "up":
            follower = up(ctx, services, args.then)
            if follower is not None:
                lock.close()  # the stack is up: what follows may stop or start services itself
                return follower.wait()
        elif args.command == "down":
            down(ctx, services)
        elif args.command == "clean":
            clean(ctx)
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
