"""Process, install and health helpers of the local stack (standard library only)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stackbase import processes
from stackbase.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    load_settings,
    read_env_file,
    secret_problems,
    shown_secret,
)

PLACEHOLDER = "change-me"
# The installer of every environment (PyPI's `uv`, pinned): it downloads in parallel and links
# files from its cache instead of copying them. Bootstrapped with the user's own pip.
UV_VERSION = "0.13.9"
# Set while install stages run side by side: they share one heartbeat instead of one each.
parallel_stages = threading.Event()


class StackError(RuntimeError):
    """Something the user can act on: the message says what failed and what to do."""


def cache_dir() -> Path:
    """Downloads and built environments shared by every clone on this machine."""
    base = os.environ.get("AI_TWEETS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ai-tweets"
    )
    return Path(base)  # created by the first install step that writes into it


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """One builder at a time for a cached item, across clones, processes and threads."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def tree_size(path: Path) -> int:
    """Bytes on disk under `path`, hard links counted once (what `du -s` says)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                stat = os.lstat(os.path.join(folder, name))
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_blocks * 512
    return total


def human_size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def content_hash(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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


def _redacted(argv: list[str]) -> list[str]:
    """`argv` for a log line: the value of any option that names a password, secret or token is
    masked (secrets travel by the environment; this is the safety net)."""
    shown, hide = [], False
    for arg in argv:
        name, sep, _ = arg.partition("=")
        sensitive = name.startswith("-") and any(word in name.lower() for word in ("password", "secret", "token"))
        shown.append("***" if hide else f"{name}=***" if sensitive and sep else arg)
        hide = sensitive and not sep
    return shown


def run_logged(argv: list[str], label: str, log: Path, env: dict[str, str] | None = None,
               cwd: Path | None = None, user: str | None = None) -> None:
    """Run a long install or init command, its output in `log`, a heartbeat on stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{label} …", flush=True)
    began = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(_redacted(argv))}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                user=user, stdin=subprocess.DEVNULL)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(15):
                if not parallel_stages.is_set():
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


def withheld_secret(key: str) -> bool:
    """A database password: the superuser's (POSTGRES_PASSWORD) or a service role's (*_DB_PASSWORD)."""
    return key == "POSTGRES_PASSWORD" or key.endswith("_DB_PASSWORD")


def generated_secret(key: str) -> str:
    """A random secret for `key`: a Fernet key for Airflow's, 40 hex digits otherwise."""
    if key == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_hex(20)


def ensure_env_file(root: Path) -> Path:
    """Create `.env` from `.env.example` with every `change-me` replaced by a random secret. An
    existing `.env` keeps its values; a secret `.env.example` gained since (e.g. the Fernet
    key) is generated and appended."""
    env_file = root / ".env"
    example = (root / ".env.example").read_text().splitlines()
    placeholders = [line.partition("=")[0] for line in example
                    if not line.lstrip().startswith("#") and line.partition("=")[2].strip() == PLACEHOLDER]
    if env_file.exists():
        missing = [key for key in placeholders if key not in read_env_file(env_file)]
        if missing:
            text = env_file.read_text()
            with env_file.open("a") as file:
                file.write(("" if text.endswith("\n") or not text else "\n")
                           + "".join(f"{key}={generated_secret(key)}\n" for key in missing))
            print(f"added generated {', '.join(missing)} to {env_file}")
        return env_file
    lines = []
    for line in example:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            line = f"{key}={generated_secret(key)}"
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
        problems = secret_problems(env)
        if problems:
            raise StackError(f"unfit secrets in {env_file} (or the environment):\n"
                             + "".join(f"  - {problem}\n" for problem in problems)
                             + "fix: set each to a random secret (a .env without them gets generated ones)")
        local = root / ".local"
        for sub in ("logs", "run", "data", "tmp", "home"):
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

    def since_start(self, name: str) -> str:
        """The service's log since its last start (the `=== <time> $ <command>` line `spawn` writes)."""
        path = self.log_file(name)
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return text[text.rfind("\n=== ") + 1:]

    # -- addresses -------------------------------------------------------------------
    def port_of(self, variable: str) -> int:
        value = self.env[variable].split(",")[0]
        parts = urlsplit(value if "://" in value else f"tcp://{value}")
        if parts.port is None:
            raise StackError(f"{variable}={value!r} must name a port for the local stack.")
        return parts.port

    # -- processes -------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        # Bytecode is written on first import (the environments are installed without it): a
        # PYTHONDONTWRITEBYTECODE from the shell would recompile every import of every process.
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("AIRFLOW__") and key != "PYTHONDONTWRITEBYTECODE"}
        # The database passwords (the superuser's, each service's) are the stack's to hand out:
        # a service gets its own from its definition, no process all of them.
        env.update({key: value for key, value in self.env.items() if not withheld_secret(key)})
        env.setdefault("MLFLOW_TRACKING_USERNAME", self.settings.mlflow_username)  # MLflow's clients sign in
        env["PATH"] = os.pathsep.join([str(self.local / "bin"), str(self.pipeline_venv / "bin"),
                                       env.get("PATH", "")])
        env["PYTHONPATH"] = str(self.root / "include")
        env["AI_TWEETS_ENV_FILE"] = str(self.root / ".env")
        env.update(self.private_files_env())
        return env

    def private_files_env(self) -> dict[str, str]:
        """What the services' libraries would write in the user's home or /tmp (temporary files,
        Spark's scratch folders, torch's compile cache, Keras', matplotlib's and MLflow's
        settings, Label Studio's id; every JVM's temporary files and performance-data file)
        goes to .local instead, so `make clean` leaves nothing behind. The Makefile sets the same
        for the processes it runs itself."""
        home = self.local / "home"
        return {"TMPDIR": str(self.local / "tmp"), "SPARK_LOCAL_DIRS": str(self.local / "tmp"),
                "JDK_JAVA_OPTIONS": java_private_files_options(self.local / "tmp"),
                "XDG_CONFIG_HOME": str(home / "config"),
                "MPLCONFIGDIR": str(home / "matplotlib"), "KERAS_HOME": str(home / "keras"),
                "MLFLOW_DISABLE_TELEMETRY": "true"}

    def spawn(self, name: str, argv: list[str], env: dict[str, str], user: str | None = None,
              cwd: Path | None = None) -> int:
        log = self.log_file(name)
        proc = processes.start(argv, env=env, cwd=cwd or self.root, log=log, shown=" ".join(_redacted(argv)),
                               detached=True, user=user, pid_file=self.pid_file(name))
        print(f"started {name} (pid {proc.pid}), log {log.relative_to(self.root)}", flush=True)
        return proc.pid

    def running_pid(self, name: str) -> int | None:
        """The pid of service `name` if it runs (recorded with its start time: never a reused pid)."""
        return processes.running_pid(self.pid_file(name))

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
            f"Airflow login: admin / {shown_secret(self.env, 'AIRFLOW_ADMIN_PASSWORD')}",
            f"Label Studio login: {self.env['LABEL_STUDIO_USERNAME']} / "
            f"{shown_secret(self.env, 'LABEL_STUDIO_PASSWORD')}",
            f"Superset login: admin / {shown_secret(self.env, 'SUPERSET_ADMIN_PASSWORD')}",
            f"Python environment: {self.pipeline_venv} (`source .local/activate`)",
        ]

    def shell_env(self) -> str:
        quote = shlex.quote
        return (f"export PATH={quote(str(self.local / 'bin'))}:{quote(str(self.pipeline_venv / 'bin'))}:\"$PATH\" "
                f"PYTHONPATH={quote(str(self.root / 'include'))} AI_TWEETS_ENV_FILE={quote(str(self.root / '.env'))}")


def venv_path(name: str, requirements: Path) -> Path:
    """A virtual environment keyed by its lock file, so a clean clone reuses it."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache_dir() / "venvs" / f"{name}-py{py}-{content_hash(requirements)}"


@dataclass(frozen=True)
class Installed:
    """What an install step left: where, whether this run made it, its size on disk."""

    path: Path
    fresh: bool
    size: int | None = None
    built_seconds: float | None = None


def _read_marker(marker: Path) -> dict:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def _cached(folder: Path) -> Installed | None:
    marker = folder / ".complete"
    if not marker.exists():
        return None
    info = _read_marker(marker)  # markers before this format held a date only
    return Installed(folder, fresh=False, size=info.get("bytes") or tree_size(folder),
                     built_seconds=info.get("seconds"))


def _complete(folder: Path, began: float, **extra: str) -> Installed:
    seconds = round(time.monotonic() - began, 1)
    size = tree_size(folder)
    (folder / ".complete").write_text(json.dumps({
        "built": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": seconds, "bytes": size, **extra}) + "\n")
    return Installed(folder, fresh=True, size=size, built_seconds=seconds)


def is_installed(folder: Path) -> bool:
    return (folder / ".complete").exists()


def uv_binary_path() -> Path:
    return cache_dir() / "tools" / f"uv-{UV_VERSION}"


def uv_binary(log: Path) -> Installed:
    """The pinned uv, installed once into the cache with this Python's pip (`--target`: no
    environment needed, and allowed where the system Python is externally managed)."""
    folder = uv_binary_path()
    with cache_lock(folder.name):
        if cached := _cached(folder):
            return cached
        began = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)
        run_logged([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-cache-dir", "--no-deps", "--target", str(folder), f"uv=={UV_VERSION}"],
                   f"installing uv {UV_VERSION} from PyPI", log)
        return _complete(folder, began, installer="pip")


def java_private_files_options(tmp: Path) -> str:
    """JDK_JAVA_OPTIONS for every JVM (Kafka, the Spark jobs): Java ignores TMPDIR and would
    leave native libraries (lz4, snappy) and Spark's artifact folders in /tmp, and each JVM
    its /tmp/hsperfdata_<user> file. The path is quoted: a checkout's path may hold a space."""
    return f'-Djava.io.tmpdir="{tmp}" -XX:-UsePerfData'


def uv_env() -> dict[str, str]:
    env = dict(os.environ)
    # The cache on the environments' filesystem: uv hard-links files into them instead of copying.
    env.setdefault("UV_CACHE_DIR", str(cache_dir() / "uv"))
    # Trust the system's certificates, as pip and Maven do (a network whose proxy has its own
    # authority works without SSL_CERT_FILE), not only uv's built-in list.
    env.setdefault("UV_SYSTEM_CERTS", "1")
    # uv's build locks and source builds: in the cache, not /tmp.
    env["TMPDIR"] = str(cache_dir() / "tmp")
    Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    env.update({"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1", "UV_NO_PROGRESS": "1"})
    return env


# Wheels built from source are stored, not deflated: pyspark's are 450 MB of jars, already
# compressed, and deflating them took three times as long as the rest of its build. (uv keys
# built wheels by these settings, so every install of those packages passes them.)
_STORED = ["--config-setting=--build-option=--compression=stored"]


def _pinned_name(line: str) -> str:
    return line.split("==")[0].strip().lower().replace("_", "-")


def ensure_venv(name: str, requirements: Path, log: Path, build_first: tuple[str, ...] = (),
                compile_bytecode: bool = False) -> Installed:
    """Create the environment once per lock file, exactly as the lock says (`--no-deps`: each lock
    is complete). `build_first`: packages PyPI has only as source, slow to build (pyspark: 450 MB
    of jars); a second uv builds them into uv's cache while the first installs the rest, and they
    join the environment from there at the end.

    `compile_bytecode`: compile every module at install, for environments that finish while the
    pipeline's is still downloading. The pipeline's own 24,000 files are not (that took longer
    than its downloads): its modules are compiled when first imported and kept (base_env lets
    Python write bytecode)."""
    path = venv_path(name, requirements)
    with cache_lock(path.name):
        if cached := _cached(path):
            return cached
        uv = str(uv_binary(log).path / "bin" / "uv")
        began = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        pins = [line.strip() for line in requirements.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        first = [pin for pin in pins if _pinned_name(pin) in build_first]
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=path.parent))
        try:
            rest = scratch / "requirements.txt"
            rest.write_text("\n".join(pin for pin in pins if pin not in first) + "\n")
            with ThreadPoolExecutor(max_workers=1) as pool:
                builder = pool.submit(run_logged, [uv, "pip", "install", "--no-deps", "--python", sys.executable,
                                                   *_STORED, "--target", str(scratch / "target"), *first],
                                      f"building {', '.join(build_first)} from source for the {name} environment",
                                      log.with_name(f"{log.stem}-build.log"), env=uv_env()) if first else None
                run_logged([uv, "venv", "--quiet", "--python", sys.executable, str(path)],
                           f"creating the {name} environment", log, env=uv_env())
                run_logged([uv, "pip", "install", "--no-deps", "--python", str(path / "bin" / "python"),
                            *(["--compile-bytecode"] if compile_bytecode else []), "-r", str(rest)],
                           f"installing the {name} environment from {requirements.name}", log, env=uv_env())
                if builder:
                    builder.result()
                    run_logged([uv, "pip", "install", "--no-deps", "--python", str(path / "bin" / "python"), *_STORED,
                                *first],
                               f"adding {', '.join(build_first)} to the {name} environment", log, env=uv_env())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return _complete(path, began, installer=f"uv {UV_VERSION}")


# One Maven at a time: its local repository is not safe for concurrent writers.
_maven = threading.Lock()


def jars_path(name: str, pom: Path) -> Path:
    return cache_dir() / "jars" / f"{name}-{content_hash(pom)}"


def maven_jars(name: str, pom: Path, log: Path) -> Installed:
    """Jars of `pom`'s runtime dependencies, fetched from Maven Central once per pom. Maven's
    local repository lives in the cache too, so the project leaves nothing in ~/.m2."""
    folder = jars_path(name, pom)
    with cache_lock(folder.name):
        if cached := _cached(folder):
            return cached
        if not shutil.which("mvn"):
            raise StackError("Maven (`mvn`) is needed to fetch jars: apt-get install -y maven")
        began = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)
        with _maven:
            run_logged(["mvn", "-B", "-q", f"-Dmaven.repo.local={cache_dir() / 'maven'}", "-f", str(pom),
                        "dependency:copy-dependencies", f"-DoutputDirectory={folder}", "-DincludeScope=runtime"],
                       f"fetching {name} jars from Maven Central", log)
        return _complete(folder, began, installer="maven")


@dataclass(frozen=True)
class Build:
    """What an install step builds once into the cache: a virtual environment from its lock file
    (`kind` "venv") or the jars of a Maven pom ("jars"). `size` is about what it takes on disk
    once built, as measured (README, "Install"): the preflight's disk estimate."""

    kind: str
    name: str
    source: str  # the lock file or pom, from the checkout's root
    size: float
    build_first: tuple[str, ...] = ()  # see ensure_venv
    compile_bytecode: bool = False  # see ensure_venv

    @property
    def label(self) -> str:
        return f"{self.name} {'environment' if self.kind == 'venv' else 'jars'}"

    def path(self, root: Path) -> Path:
        source = root / self.source
        return venv_path(self.name, source) if self.kind == "venv" else jars_path(self.name, source)

    def ensure(self, root: Path, log: Path) -> Installed:
        source = root / self.source
        if self.kind == "venv":
            return ensure_venv(self.name, source, log, self.build_first, self.compile_bytecode)
        return maven_jars(self.name, source, log)
