"""Model serving: `mlflow models serve` of the registered champion, kept in step with the alias.

A small supervisor (`ai-tweets serve`) resolves `models:/{MODEL_NAME}@champion` to a version,
runs `mlflow models serve` of that exact version, and polls the registry: when the alias
moves, it stops the old server and starts the new one on the same port (a gap of about ten
seconds, which the classify job rides out with its retries, so no tweet is lost). The child
gets `AI_TWEETS_MODEL_VERSION`, which the pyfunc returns with every prediction, so each
classified row records the version that actually scored it. Until a champion exists the
supervisor waits and says so in its state file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from ai_tweets.settings import Settings

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_VERSION_ENV = "AI_TWEETS_MODEL_VERSION"


def champion_version(settings: Settings) -> str | None:
    """The registered version the `champion` alias points at, or None if there is none yet."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    try:
        return str(client.get_model_version_by_alias(settings.model_name, CHAMPION_ALIAS).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise


def _ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServingSupervisor:
    def __init__(self, settings: Settings, state_file: Path | None = None, poll_seconds: float = 15.0,
                 start_timeout: float = 180.0):
        self.settings = settings
        parts = urlsplit(settings.model_serving_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5001
        self.state_file = state_file
        self.poll_seconds = poll_seconds
        self.start_timeout = start_timeout
        self.child: subprocess.Popen | None = None
        self.version: str | None = None

    def _write_state(self, state: str, **extra) -> None:
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"state": state, "version": self.version,
                                                   "model": self.settings.model_name, "pid": os.getpid(),
                                                   "updated": time.time(), **extra}))

    def _start(self, version: str) -> None:
        argv = [sys.executable, "-m", "mlflow", "models", "serve",
                "-m", f"models:/{self.settings.model_name}/{version}", "--env-manager", "local",
                "-h", self.host, "-p", str(self.port), "-w", "1"]
        env = {**os.environ, MODEL_VERSION_ENV: version,
               "MLFLOW_TRACKING_URI": self.settings.mlflow_tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        log.info("serving %s version %s on %s:%d", self.settings.model_name, version, self.host, self.port)
        self.child = subprocess.Popen(argv, env=env)
        self.version = version
        self._write_state("starting")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise RuntimeError(
                    f"mlflow models serve of version {version} exited with {self.child.returncode}")
            if _ping(self.settings.model_serving_url):
                self._write_state("serving")
                log.info("version %s is serving", version)
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"mlflow models serve of version {version} not ready in {self.start_timeout:.0f} s")

    def _stop_child(self) -> None:
        if self.child and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.child = None

    def run(self, stop: threading.Event) -> None:
        failures = 0
        try:
            while not stop.is_set():
                try:
                    wanted = champion_version(self.settings)
                except Exception as exc:  # registry down: keep serving what we have
                    log.warning("cannot read the champion alias from MLflow (%s); retrying", exc)
                    wanted = self.version
                if wanted is None and self.child is None:
                    self._write_state("waiting",
                                      reason=f"no {CHAMPION_ALIAS} alias on {self.settings.model_name}")
                elif wanted != self.version or self.child is None or self.child.poll() is not None:
                    if self.version and wanted != self.version:
                        log.info("champion moved from version %s to %s: restarting", self.version, wanted)
                    self._stop_child()
                    try:
                        self._start(wanted)
                        failures = 0
                    except RuntimeError as exc:
                        failures += 1
                        self._write_state("failed", reason=str(exc))
                        log.error("%s; retrying in %d s", exc, min(2 ** failures, 60))
                        self._stop_child()
                        stop.wait(min(2 ** failures, 60))
                        continue
                stop.wait(self.poll_seconds)
        finally:
            self._stop_child()
            self._write_state("stopped")


def serve(settings: Settings, state_file: Path | None = None, poll_seconds: float = 15.0) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ServingSupervisor(settings, state_file, poll_seconds).run(stop)
