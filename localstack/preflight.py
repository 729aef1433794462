"""Preflight: everything that would stop `make install` or `make up` half-way, found before
anything is downloaded or started, and reported at once, each problem with its fix.

Standard library only, like the rest of the stack manager, and quick (well under 5 s): it reads
versions, folders, free disk and listening sockets, and changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from localstack.runtime import (
    PLACEHOLDER,
    Context,
    cache_dir,
    human_size,
    is_installed,
    port_open,
    uv_binary_path,
)
from localstack.services import BUILDS, PG_USER, Service, postgres_installed
from stackbase.settings import SettingsError, load_settings, read_env_file

PYTHON = (3, 11)  # the version the lock files were resolved for
RUNNING_PYTHON = tuple(sys.version_info[:3])
JAVA = 17  # Kafka 4 and Spark 4 need at least this
# Room for the stack's own data under .local (PostgreSQL, Kafka, MLflow, checkpoints) in a demo.
DATA_ROOM = 2e9


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


def check(root: Path, services: list[Service], ports: bool = True) -> list[Problem]:
    """Every problem found for installing and (with `ports`) starting `services` from `root`."""
    names = {service.name for service in services}
    steps = {step for service in services for step in service.installs}
    pending = [build for step, build in BUILDS.items() if step in steps and not is_installed(build.path(root))]
    ctx, problems = _context(root)
    problems += check_python(needs_pip=bool(pending) and not is_installed(uv_binary_path()))
    if names & {"kafka", "mlflow", "airflow-apiserver", "airflow-scheduler"}:
        problems += check_java()
    if any(build.kind == "jars" for build in pending):
        problems += check_maven()
    if "postgres" in names:
        problems += check_postgres()
    problems += check_folders(root)
    problems += check_disk(root, {build.label: build.size for build in pending})
    if ports and ctx is not None:
        problems += check_ports(ctx, services)
    return problems


def report(problems: list[Problem], seconds: float) -> str:
    if not problems:
        return f"preflight: ok ({seconds:.1f} s)"
    lines = [f"preflight found {len(problems)} problem{'s' if len(problems) > 1 else ''} "
             f"({seconds:.1f} s; nothing was downloaded or started):"]
    for number, problem in enumerate(problems, start=1):
        lines += [f"  {number}. {problem.what}", f"     fix: {problem.fix}"]
    return "\n".join(lines)


def run(root: Path, services: list[Service], ports: bool = True) -> list[Problem]:
    began = time.monotonic()
    problems = check(root, services, ports)
    print(report(problems, time.monotonic() - began), file=sys.stderr if problems else sys.stdout, flush=True)
    return problems


# --- the checks -------------------------------------------------------------------------------


def _context(root: Path) -> tuple[Context | None, list[Problem]]:
    """The settings the stack will use: .env, or .env.example before the first run created .env."""
    env_file = root / ".env" if (root / ".env").exists() else root / ".env.example"
    env = read_env_file(env_file)
    if env_file.name == ".env.example":  # the stack replaces each placeholder with a secret
        env = {key: "x" * 40 if value == PLACEHOLDER else value for key, value in env.items()}
    env.update({key: value for key, value in os.environ.items() if key in env})
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        return None, [Problem(f"bad setting in {env_file.name}: {exc}", f"correct it in {env_file} "
                              "(.env.example says what each variable takes)")]
    return Context(root=root, local=root / ".local", env=env, settings=settings), []


def check_python(needs_pip: bool, version: tuple[int, ...] | None = None) -> list[Problem]:
    version, executable = version or RUNNING_PYTHON, sys.executable
    problems = []
    if tuple(version[:2]) != PYTHON:
        want = ".".join(map(str, PYTHON))
        problems.append(Problem(
            f"Python {'.'.join(map(str, version))} runs the stack ({executable}), but the environments' lock "
            f"files are for Python {want}",
            f"install Python {want} (Debian/Ubuntu: `sudo apt-get install -y python{want}`) and pass it to make, "
            f"e.g. `make demo PYTHON=python{want}`"))
    if needs_pip and importlib.util.find_spec("pip") is None:
        problems.append(Problem(
            f"{executable} has no pip, which installs uv (the installer of the environments) on first run",
            "`sudo apt-get install -y python3-pip`, or `python3 -m ensurepip --user`"))
    return problems


def java_major(version_output: str) -> int | None:
    """17 from `openjdk version "17.0.15"`, 8 from `java version "1.8.0_392"`."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> list[Problem]:
    fix = f"`sudo apt-get install -y openjdk-{JAVA}-jre-headless` (any Java {JAVA} or newer on PATH will do)"
    java = shutil.which("java")
    if not java:
        return [Problem(f"Java is not installed (Kafka and Spark need Java {JAVA} or newer)", fix)]
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=4)
    except (OSError, subprocess.TimeoutExpired):
        return [Problem(f"`{java} -version` did not answer", fix)]
    major = java_major(out.stderr + out.stdout)
    if major is None or major < JAVA:
        return [Problem(f"{java} is Java {major or 'of unknown version'}; Kafka and Spark need Java {JAVA} or newer",
                        fix)]
    return []


def check_maven() -> list[Problem]:
    if shutil.which("mvn"):
        return []
    return [Problem("Maven (`mvn`) is not installed; it fetches the Kafka and Spark jars from Maven Central",
                    "`sudo apt-get install -y maven`")]


def check_postgres(is_root: bool | None = None) -> list[Problem]:
    is_root = os.geteuid() == 0 if is_root is None else is_root
    installed = postgres_installed()
    if not installed and not is_root:
        return [Problem("PostgreSQL's server is not installed (the stack runs it as you, on its own port)",
                        "`sudo apt-get install -y postgresql` (the stack does not need the system's cluster: "
                        "`sudo systemctl disable --now postgresql` if you do not use it)")]
    if not installed and not shutil.which("apt-get"):
        return [Problem("PostgreSQL's server is not installed, and there is no apt-get to install it",
                        "install PostgreSQL 15 or newer with your system's package manager")]
    if installed and is_root:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return [Problem(f"as root the stack runs PostgreSQL as the `{PG_USER}` system user, which does not exist",
                            f"`useradd --system --create-home --home-dir /var/lib/postgresql {PG_USER}` "
                            "(Debian's postgresql package creates it)")]
    return []


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"user {os.geteuid()}"


def _writable(path: Path) -> bool:
    """Whether `path` can be written, or created: its first existing ancestor is writable."""
    while not path.exists():
        path = path.parent
    return os.access(path, os.W_OK | os.X_OK)


def check_folders(root: Path, cache: Path | None = None) -> list[Problem]:
    cache = cache or cache_dir()
    user = _user()
    problems = []
    for folder, holds in ((root, "the checkout (its .env, and .local: data, logs)"),
                          (root / ".local", "the stack's data and logs")):
        if not _writable(folder):
            problems.append(Problem(f"{folder} is not writable by {user}; it holds {holds}",
                                    f"clone the project into a folder you own (`git clone … ~/ai-tweets`), or "
                                    f"`sudo chown -R {user} {root}`"))
            break
    if not _writable(cache):
        problems.append(Problem(f"the cache {cache} is not writable by {user}; it holds the environments",
                                "set AI_TWEETS_CACHE to a folder you can write, or fix that folder's owner"))
    for folder, what in ((root, "the checkout's path"), (cache, "the cache's path")):
        if ":" in str(folder):
            problems.append(Problem(f"{what} {folder} contains ':', which separates entries in PATH and PYTHONPATH",
                                    "clone into (or point AI_TWEETS_CACHE at) a path without ':'"))
    return problems


def _free(path: Path) -> tuple[int, int]:
    """(free bytes, device) of the filesystem that holds, or will hold, `path`."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free, path.stat().st_dev


def check_disk(root: Path, pending: dict[str, float], cache: Path | None = None) -> list[Problem]:
    """The builds still to install (label → bytes once built) must fit in the cache's filesystem,
    with room for the stack's data in the checkout's."""
    cache = cache or cache_dir()
    need: dict[int, float] = {}
    free: dict[int, int] = {}
    for path, size in ((cache, sum(pending.values())), (root, DATA_ROOM)):
        space, device = _free(path)
        free[device] = space
        need[device] = need.get(device, 0) + size
    problems = []
    for device, bytes_needed in need.items():
        if free[device] < bytes_needed:
            parts = ", ".join(f"{label} {human_size(int(size))}" for label, size in pending.items())
            problems.append(Problem(
                f"{human_size(free[device])} free where the cache ({cache}) or the checkout live; the install "
                f"needs about {human_size(int(bytes_needed))} ({parts + ', ' if parts else ''}"
                f"the stack's data {human_size(int(DATA_ROOM))})",
                "free some space, or set AI_TWEETS_CACHE to a folder on a disk with room (it holds the environments)"))
    return problems


def check_ports(ctx: Context, services: list[Service]) -> list[Problem]:
    """Each port a service not running yet will listen on must be free, and no two services may share one."""
    problems = []
    owners: dict[int, str] = {}
    for service in services:
        for port in service.ports(ctx):
            if port in owners:
                problems.append(Problem(
                    f"{service.name} and {owners[port]} would both listen on port {port}",
                    f"give {service.name} its own port in .env ({_setting_of(ctx, service, port)})"))
            owners[port] = service.name
    for service in services:
        if ctx.running_pid(service.name):
            continue  # this checkout's own service, already up
        for port in service.ports(ctx):
            if port_open(port):
                problems.append(Problem(
                    f"port {port} is in use{_holder(port)}; {service.name} needs it "
                    f"({_setting_of(ctx, service, port)} in .env)",
                    f"stop that program, or give {service.name} a free port in .env: "
                    f"{_suggest(ctx, service, owners, _setting_of(ctx, service, port))}"))
                break
    return problems


def _setting_of(ctx: Context, service: Service, port: int) -> str:
    """The setting that names `port` of the service (its main setting, unless another one does)."""
    return next((setting for setting in service.own_port_settings
                 if ctx.env.get(setting) and ctx.port_of(setting) == port), service.port_setting)


def _suggest(ctx: Context, service: Service, taken: dict[int, str], setting: str | None = None) -> str:
    """The setting with the first port from which all of the ports it sets are free."""
    setting = setting or service.port_setting
    base = ctx.port_of(setting)
    others = {ctx.port_of(other) for other in service.own_port_settings if ctx.env.get(other)}
    offsets = [0] if setting in service.own_port_settings else \
        [port - base for port in service.ports(ctx) if port not in others]
    for candidate in range(base + 100, min(base + 2000, 65000), 100):
        ports = [candidate + offset for offset in offsets]
        if not any(port in taken or port_open(port) or not _bindable(port) for port in ports):
            return f"{setting}={ctx.env[setting].replace(f':{base}', f':{candidate}', 1)}"
    return f"{setting}=<a free port>"


def _bindable(port: int) -> bool:
    with socket.socket() as sock, contextlib.suppress(OSError):
        sock.bind(("127.0.0.1", port))
        return True
    return False


def _holder(port: int) -> str:
    """' by pid N (command)' for the process listening on `port`, when this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    argv = (proc / "cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
                    command = " ".join([Path(argv[0]).name, *argv[1:]])  # the program's name, not its path
                    return f" by pid {proc.name} ({command[:100]})"
    return " by a process of another user"
