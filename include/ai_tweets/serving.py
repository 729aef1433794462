"""Model serving: `mlflow models serve` of the registered champion, kept in step with the alias.

A small supervisor (`ai-tweets serve`) resolves `models:/{MODEL_NAME}@champion` to a version,
runs `mlflow models serve` of that exact version, and polls the registry. When the alias
moves, the new version is first loaded on a spare port and smoke-tested (it must answer
/invocations with a valid score for each of a few texts); only then is the old server
stopped and the new one started on the serving port (a gap of about ten seconds, which the
classify job rides out with its retries, so no tweet is lost). A version that fails to load
or to answer keeps the previous one serving; it is reported in the state file, in the log,
and as the tag `serving_rejected` on that model version, which `ai-tweets health champion`,
the service_health DAG and the classify_stream DAG turn into a failure that says what to do.
It is not tried again until the alias moves. The child gets `AI_TWEETS_MODEL_VERSION`, which
the pyfunc returns with every prediction, so each classified row records the version that
actually scored it. Until a champion exists the supervisor waits and says so.

Shadow scoring (MODEL_SHADOW_URL set): a second supervisor, in the same process, serves the
`challenger` alias the same way on MODEL_SHADOW_URL, while it is not also the champion; the
classify job scores each batch with it too and records where the two disagree
(`ai_tweets.shadow`). Its state file is the champion's with `-shadow` added to its name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ai_tweets.model_files import UntrustedModel, verified_copy
from ai_tweets.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS
from stackbase import processes
from stackbase.settings import MODEL_VERSION_ENV, Settings, process_environment

log = logging.getLogger(__name__)

REJECTED_TAG = "serving_rejected"
# While nothing is served, the registry is asked this often for a first champion (a new stack's
# first training is waited for by the demo and by the classify stream); then every poll_seconds.
WAITING_POLL_SECONDS = 2.0
SMOKE_TEXTS = ("New paper: a transformer model for protein folding https://arxiv.org/abs/2401.00001",
               "Great game last night, what a finish!", "", "😀 ‏עברית‏ emoji and right-to-left text")


def alias_version(settings: Settings, alias: str) -> str | None:
    """The registered version `alias` points at, or None if it points nowhere yet."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_uri())
    try:
        return str(client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise


def champion_version(settings: Settings) -> str | None:
    """The registered version the `champion` alias points at, or None if there is none yet."""
    return alias_version(settings, CHAMPION_ALIAS)


def shadow_version(settings: Settings) -> str | None:
    """The `challenger` to score in the shadow of the champion; None if there is none, or if it
    is the champion too (an approved challenger keeps its alias)."""
    challenger = alias_version(settings, CHALLENGER_ALIAS)
    return None if challenger is None or challenger == champion_version(settings) else challenger


def shadow_state_file(state_file: Path | None) -> Path | None:
    """The shadow supervisor's state file, beside the champion's."""
    return state_file.with_name(f"{state_file.stem}-shadow{state_file.suffix}") if state_file else None


@dataclass(frozen=True)
class Score:
    ai_probability: float
    label: int
    model_version: str | None


class BadAnswer(RuntimeError):
    """The model server answered, but not with one valid score per text."""


def parse_scores(answer: object, expected: int) -> list[Score]:
    """The scores of an /invocations answer (records or column orientation), or BadAnswer."""
    predictions = answer.get("predictions", answer) if isinstance(answer, dict) else answer
    try:
        if isinstance(predictions, dict):  # column orientation
            keys = list(predictions)
            predictions = [dict(zip(keys, values, strict=True)) for values in zip(*predictions.values(), strict=True)]
        if not isinstance(predictions, list) or len(predictions) != expected:
            raise ValueError(f"{expected} scores expected")
        scores = [Score(float(p["ai_probability"]), int(p.get("label", p["ai_probability"] >= 0.5)),
                        None if p.get("model_version") is None else str(p["model_version"])) for p in predictions]
    except (ValueError, TypeError, KeyError) as exc:
        raise BadAnswer(f"model server answered {str(answer)[:200]!r} for {expected} texts ({exc})") from exc
    if not all(0.0 <= s.ai_probability <= 1.0 and s.label in (0, 1) for s in scores):
        raise BadAnswer(f"model server answered probabilities outside [0, 1] or labels other than 0/1: "
                        f"{str(answer)[:200]!r}")
    return scores


def invoke(url: str, texts: Sequence[str], timeout: float) -> list[Score]:
    """One POST of `texts` to {url}/invocations; urllib's errors (HTTPError for an answer that
    is not 2xx, URLError/OSError when nothing answers) and BadAnswer go to the caller."""
    payload = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise BadAnswer(f"model server answered something that is not JSON: {body[:200]!r}") from exc
    return parse_scores(answer, len(texts))


def rejected_reason(settings: Settings, version: str) -> str | None:
    """Why model serving rejected this version (the `serving_rejected` tag), or None."""
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow_uri()).get_model_version(
        settings.model_name, version).tags.get(REJECTED_TAG)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServingSupervisor:
    """Serves the version an alias points at: the champion on MODEL_SERVING_URL or, with
    `shadow`, the challenger (`shadow_version`) on MODEL_SHADOW_URL."""

    def __init__(self, settings: Settings, state_file: Path | None = None, poll_seconds: float = 15.0,
                 start_timeout: float = 180.0, bind: str | None = None, shadow: bool = False):
        self.settings = settings
        self.shadow = shadow
        self.role = "challenger (shadow)" if shadow else CHAMPION_ALIAS
        url = settings.model_shadow_url if shadow else settings.model_serving_url
        if url is None:
            raise ValueError("shadow serving needs MODEL_SHADOW_URL")
        parts = urlsplit(url)
        # Listens on `bind` (default: MODEL_SERVING_URL's host); checks itself on the loopback
        # when bound to every interface (a container: its network decides who reaches it).
        self.host, self.port = bind or parts.hostname or "127.0.0.1", parts.port or 5001
        self.local_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.state_file = state_file
        self.poll_seconds = poll_seconds
        self.start_timeout = start_timeout
        self.child: subprocess.Popen | None = None
        self.version: str | None = None
        self.rejected: str | None = None  # the champion that failed its smoke test, not tried again
        self.models = Path(tempfile.mkdtemp(prefix="ai-tweets-serving-"))  # checked copies of the versions

    def wanted(self) -> str | None:
        """The version this supervisor should serve now (None: nothing)."""
        return shadow_version(self.settings) if self.shadow else champion_version(self.settings)

    def _write_state(self, state: str, **extra) -> None:
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"state": state, "version": self.version, "role": self.role,
                                                   "model": self.settings.model_name, "pid": os.getpid(),
                                                   "updated": time.time(), **extra}))

    def _spawn(self, version: str, port: int) -> subprocess.Popen:
        """`mlflow models serve` of a copy of `version` checked against the pipeline's record
        (`model_files`); UntrustedModel, a RuntimeError, if the files are not the recorded ones."""
        folder = self.models / f"{version}-{port}"
        shutil.rmtree(folder, ignore_errors=True)
        local = verified_copy(self.settings, self.settings.model_name, version, folder)
        argv = [sys.executable, "-m", "mlflow", "models", "serve",
                "-m", str(local), "--env-manager", "local",
                "-h", self.host, "-p", str(port), "-w", "1"]
        env = process_environment(**{MODEL_VERSION_ENV: version}, MLFLOW_TRACKING_URI=self.settings.mlflow_uri(),
                                  MLFLOW_DISABLE_TELEMETRY="true")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return processes.start(argv, env=env)

    def _ready(self, child: subprocess.Popen, version: str, port: int) -> None:
        """Wait until `child` answers /ping, then smoke-test /invocations; RuntimeError if not."""
        url = f"http://{self.local_host}:{port}"
        deadline = time.monotonic() + self.start_timeout
        while not _ping(url):
            if child.poll() is not None:
                raise RuntimeError(f"mlflow models serve of version {version} exited with {child.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow models serve of version {version} not ready in {self.start_timeout:.0f} s")
            time.sleep(0.5)
        try:
            invoke(url, SMOKE_TEXTS, timeout=60)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"version {version} answered HTTP {exc.code} to the smoke test: "
                               f"{exc.read()[:300]!r}") from exc
        except (BadAnswer, urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"version {version} failed the smoke test: {exc}") from exc

    def _start(self, version: str) -> None:
        log.info("serving %s version %s (%s) on %s:%d", self.settings.model_name, version, self.role, self.host,
                 self.port)
        self.child = self._spawn(version, self.port)
        self.version = version
        self._write_state("starting")
        self._ready(self.child, version, self.port)
        self._write_state("serving")
        log.info("version %s is serving", version)

    def _try(self, version: str) -> None:
        """Load and smoke-test `version` on a spare port, then stop it; RuntimeError if it fails."""
        port = _free_port()
        log.info("trying %s version %s on port %d before switching", self.settings.model_name, version, port)
        candidate = self._spawn(version, port)
        try:
            self._ready(candidate, version, port)
        finally:
            processes.stop_child(candidate)

    def _reject(self, version: str, reason: str) -> None:
        """Keep the current version serving; report the rejected one (state file, log, model tag)."""
        self.rejected = version
        serving = self.child is not None and self.child.poll() is None
        log.error("%s version %s rejected, %s: %s", self.role, version,
                  f"version {self.version} keeps serving" if serving else "nothing to serve", reason)
        self._write_state("serving" if serving else "waiting", rejected={"version": version, "reason": reason})
        try:
            from mlflow import MlflowClient

            MlflowClient(self.settings.mlflow_uri()).set_model_version_tag(
                self.settings.model_name, version, REJECTED_TAG, reason[:1000])
        except Exception as exc:  # the registry down must not stop serving
            log.warning("could not tag version %s as rejected in MLflow: %s", version, exc)

    def _stop_child(self) -> None:
        if self.child:
            processes.stop_child(self.child)
        self.child = None

    def run(self, stop: threading.Event) -> None:
        failures = 0
        try:
            while not stop.is_set():
                try:
                    wanted = self.wanted()
                except Exception as exc:  # registry down: keep serving what we have
                    log.warning("cannot read the %s alias from MLflow (%s); retrying", self.role, exc)
                    wanted = self.version
                running = self.child is not None and self.child.poll() is None
                if wanted is None and (self.child is None or self.shadow):
                    if self.child is not None:  # a challenger promoted or gone: nothing to compare
                        log.info("no %s to serve any more: stopping version %s", self.role, self.version)
                        self._stop_child()
                        self.version = None
                    self._write_state("waiting", reason=f"no {self.role} of {self.settings.model_name} to serve")
                elif running and wanted not in (self.version, self.rejected):
                    log.info("%s moved from version %s to %s", self.role, self.version, wanted)
                    try:
                        self._try(wanted)
                    except RuntimeError as exc:
                        self._reject(wanted, str(exc))
                    else:
                        self._stop_child()
                        self._start_or_fail(wanted, stop)
                elif not running and wanted is not None and wanted == self.rejected and not self.version:
                    pass  # the champion was refused and nothing else was ever served: wait for the next
                elif not running and wanted is not None:
                    version = self.version if wanted == self.rejected and self.version else wanted
                    self._stop_child()
                    failures = 0 if self._start_or_fail(version, stop, failures) else failures + 1
                    continue
                stop.wait(self.poll_seconds if self.child is not None else min(self.poll_seconds, WAITING_POLL_SECONDS))
        finally:
            self._stop_child()
            self._write_state("stopped")
            shutil.rmtree(self.models, ignore_errors=True)

    def _start_or_fail(self, version: str, stop: threading.Event, failures: int = 0) -> bool:
        try:
            self._start(version)
            return True
        except UntrustedModel as exc:  # deterministic: no retry until the alias moves
            self._stop_child()
            if self.version == version:  # its files changed since it was last served
                self.version = None
            self._reject(version, str(exc))
            stop.wait(self.poll_seconds)
            return True
        except RuntimeError as exc:
            self._write_state("failed", reason=str(exc))
            log.error("%s; retrying in %d s", exc, min(2 ** (failures + 1), 60))
            self._stop_child()
            stop.wait(min(2 ** (failures + 1), 60))
            return False


def serve(settings: Settings, state_file: Path | None = None, poll_seconds: float = 15.0,
          bind: str | None = None) -> None:
    """The champion until SIGTERM or SIGINT; and the challenger beside it with MODEL_SHADOW_URL."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    shadow = None
    if settings.model_shadow_url:
        supervisor = ServingSupervisor(settings, shadow_state_file(state_file), poll_seconds, bind=bind, shadow=True)
        shadow = threading.Thread(target=supervisor.run, args=(stop,), name="shadow-serving", daemon=True)
        shadow.start()
    try:
        ServingSupervisor(settings, state_file, poll_seconds, bind=bind).run(stop)
    finally:
        stop.set()
        if shadow is not None:
            shadow.join(timeout=60)
