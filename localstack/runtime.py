"""Process, install and health helpers of the local stack (standard library only)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ai_tweets.jobs import alive
from ai_tweets.settings import PROJECT_ROOT, Settings, SettingsError, load_settings, read_env_file

PLACEHOLDER = "change-me"


class StackError(RuntimeError):
    """Something the user can act on: the message says what failed and what to do."""


def cache_dir() -> Path:
    """Downloads and built environments shared by every clone on this machine."""
    base = os.environ.get("AI_TWEETS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ai-tweets"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_hash(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, expect: str | None = None, timeout: float = 2.0,
            headers: dict[str, str] | None = None) -> bool:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(65536).decode(errors="replace")
            return response.status == 200 and (expect is None or expect in body)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_json(url: str, timeout: float = 2.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


@contextlib.contextmanager
def progress(label: str, interval: float = 15) -> Iterator[Callable[[str], None]]:
    """Yield `tick(detail)`, which prints a progress line at most every `interval` seconds."""
    began = time.monotonic()
    last = began

    def tick(detail: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= interval:
            print(f"  … {label}: {detail} ({now - began:.0f} s)", flush=True)
            last = now

    yield tick


def run_logged(argv: list[str], label: str, log: Path, env: dict[str, str] | None = None,
               cwd: Path | None = None, user: str | None = None) -> None:
    """Run a long install or init command, its output in `log`, a heartbeat on stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{label} …", flush=True)
    began = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                user=user, stdin=subprocess.DEVNULL)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(15):
                print(f"  … {label} ({time.monotonic() - began:.0f} s)", flush=True)

        thread = threading.Thread(target=heartbeat, daemon=True)
        thread.start()
        try:
            code = proc.wait()
        finally:
            stop.set()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise StackError(f"{label} failed (exit {code}); full log: {log}\n{tail}")
    print(f"{label}: done in {time.monotonic() - began:.0f} s", flush=True)


def ensure_env_file(root: Path) -> Path:
    """Create `.env` from `.env.example` with every `change-me` replaced by a random secret."""
    env_file = root / ".env"
    if env_file.exists():
        return env_file
    lines = []
    for line in (root / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            line = f"{key}={secrets.token_hex(20)}"
        lines.append(line)
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    print(f"created {env_file} with generated secrets")
    return env_file


@dataclass
class Context:
    root: Path
    local: Path
    env: dict[str, str]
    settings: Settings

    @classmethod
    def load(cls) -> Context:
        root = PROJECT_ROOT
        env_file = ensure_env_file(root)
        env = read_env_file(env_file)
        env.update({key: value for key, value in os.environ.items() if key in env})
        try:
            settings = load_settings(env)
        except SettingsError as exc:
            raise StackError(f"bad setting: {exc}") from exc
        for key in ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET",
                    "LABEL_STUDIO_PASSWORD"):
            if env.get(key, PLACEHOLDER) in ("", PLACEHOLDER):
                raise StackError(f"{key} is not set in {env_file}: set a secret there.")
        local = root / ".local"
        for sub in ("logs", "run", "data"):
            (local / sub).mkdir(parents=True, exist_ok=True)
        return cls(root=root, local=local, env=env, settings=settings)

    # -- files -----------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        return self.local / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.local / "logs" / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_file(name)
        if not path.exists():
            return "(no log yet)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- addresses -------------------------------------------------------------------
    def port_of(self, variable: str) -> int:
        value = self.env[variable].split(",")[0]
        parts = urlsplit(value if "://" in value else f"tcp://{value}")
        if parts.port is None:
            raise StackError(f"{variable}={value!r} must name a port for the local stack.")
        return parts.port

    # -- processes -------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__")}
        env.update(self.env)
        env["PATH"] = os.pathsep.join([str(self.local / "bin"), str(self.pipeline_venv / "bin"),
                                       env.get("PATH", "")])
        env["PYTHONPATH"] = str(self.root / "include")
        env["AI_TWEETS_ENV_FILE"] = str(self.root / ".env")
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str], user: str | None = None) -> int:
        log = self.log_file(name)
        with log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=self.root, start_new_session=True, user=user,
                                    stdin=subprocess.DEVNULL)
        self.pid_file(name).write_text(str(proc.pid))
        print(f"started {name} (pid {proc.pid}), log {log.relative_to(self.root)}", flush=True)
        return proc.pid

    @staticmethod
    def stop_group(pid: int, sig: int, timeout: float) -> None:
        """Signal the service's whole process group; escalate to SIGKILL after `timeout`."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid) and not _group_members(pid):
                return
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)

    # -- environments ----------------------------------------------------------------
    @property
    def pipeline_venv(self) -> Path:
        return venv_path("pipeline", self.root / "requirements.txt")

    @property
    def label_studio_venv(self) -> Path:
        return venv_path("label-studio", self.root / "requirements" / "label-studio.txt")

    def login_lines(self) -> list[str]:
        return [
            "",
            f"Airflow login: admin / {self.env['AIRFLOW_ADMIN_PASSWORD']}",
            f"Label Studio login: {self.env['LABEL_STUDIO_USERNAME']} / {self.env['LABEL_STUDIO_PASSWORD']}",
            f"Python environment: {self.pipeline_venv} (`source .local/activate`)",
        ]

    def shell_env(self) -> str:
        return (f"export PATH={self.local / 'bin'}:{self.pipeline_venv / 'bin'}:$PATH "
                f"PYTHONPATH={self.root / 'include'} AI_TWEETS_ENV_FILE={self.root / '.env'}")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def venv_path(name: str, requirements: Path) -> Path:
    """A virtual environment keyed by its lock file, so a clean clone reuses it."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache_dir() / "venvs" / f"{name}-py{py}-{content_hash(requirements)}"


def ensure_venv(name: str, requirements: Path, log: Path, pre: list[list[str]] | None = None,
                no_deps: bool = False) -> Path:
    """Create the environment once per lock file; `pre` are `pip install` argument lists run first.
    `no_deps`: the file is a complete lock, installed exactly as written."""
    path = venv_path(name, requirements)
    marker = path / ".complete"
    if marker.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_logged([sys.executable, "-m", "venv", str(path)], f"creating {name} environment", log)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off"]
    for args in pre or []:
        run_logged(pip + args, f"{name} environment: pip install {' '.join(args)}", log)
    run_logged(pip + (["--no-deps"] if no_deps else []) + ["-r", str(requirements)],
               f"installing {name} environment from {requirements.name} (first time: minutes)", log)
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return path


def maven_jars(name: str, pom: Path, log: Path) -> Path:
    """Jars of `pom`'s runtime dependencies, fetched from Maven Central once per pom."""
    folder = cache_dir() / "jars" / f"{name}-{content_hash(pom)}"
    if (folder / ".complete").exists():
        return folder
    if not shutil.which("mvn"):
        raise StackError("Maven (`mvn`) is needed to fetch jars: apt-get install -y maven")
    shutil.rmtree(folder, ignore_errors=True)
    run_logged(["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={folder}", "-DincludeScope=runtime"],
               f"fetching {name} jars from Maven Central", log)
    (folder / ".complete").write_text("ok\n")
    return folder
