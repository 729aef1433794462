"""A registered model and a model server of their own, for tests and benchmarks."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

from ai_tweets.generator import generate
from ai_tweets.model_files import record_version
from ai_tweets.schema import normalize
from ai_tweets.serving import shadow_state_file
from ai_tweets_devkit.env import python_env
from stackbase import processes
from stackbase.settings import Settings


def generated_texts(count: int, seed: int) -> tuple[list[str], list[int]]:
    items = list(generate(count, seed=seed))
    return [normalize(item.payload).text for item in items], [int(item.is_ai) for item in items]


def register_model(settings: Settings, seed: int, epochs: int = 3, champion: bool = True) -> str:
    """Train on generated tweets with their true labels, register, and (by default) make it
    the champion whatever its score; returns the version. (Seeds 31 with 3 epochs and 32 with
    1 disagree on 128 of 3,000 tweets generated with seed 43.)"""
    from mlflow import MlflowClient

    from ai_tweets import model

    texts, labels = generated_texts(4_000, seed)
    trained = model.train(texts[:3_000], labels[:3_000], texts[3_000:], labels[3_000:], epochs=epochs, seed=seed)
    metrics = model.evaluate(trained.predict(texts[3_000:]), labels[3_000:], trained.threshold)
    version = model.log_and_register(trained, metrics, tracking_uri=settings.mlflow_uri(),
                                     model_name=settings.model_name, experiment_name="integration-tests")
    record_version(settings, settings.model_name, str(version.version))  # as the train stage does
    if champion:
        MlflowClient(settings.mlflow_uri()).set_registered_model_alias(
            settings.model_name, "champion", str(version.version))
    return str(version.version)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelServer:
    """`ai-tweets serve` for a test's own model name and port."""

    def __init__(self, env: dict[str, str], state_file: Path):
        self.env, self.state_file, self.process = env, state_file, None

    def start(self, wait_for: str = "serving", timeout: float = 180) -> None:
        self.state_file.unlink(missing_ok=True)
        self.process = processes.start(
            [sys.executable, "-m", "ai_tweets.cli", "serve", "--state-file", str(self.state_file),
             "--poll-seconds", "2"], env=python_env(**self.env), detached=True)
        self.wait_for(wait_for, timeout=timeout)

    def state(self, shadow: bool = False) -> dict:
        """The champion's serving state, or with `shadow` the challenger's (MODEL_SHADOW_URL)."""
        try:
            return json.loads((shadow_state_file(self.state_file) if shadow else self.state_file).read_text())
        except (OSError, ValueError):
            return {}

    def wait_for(self, state: str, version: str | None = None, timeout: float = 180, shadow: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.state(shadow)
            if current.get("state") == state and (version is None or current.get("version") == version):
                return current
            assert self.process.poll() is None, "the model server exited"
            time.sleep(0.5)
        raise AssertionError(f"model server{' (shadow)' if shadow else ''} not {state} (version {version}) in "
                             f"{timeout} s: {self.state(shadow)}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            processes.stop(self.process.pid, signal.SIGTERM, 30, whole_group=True)
            self.process.wait()


BROKEN_MODEL = '''
import mlflow
from mlflow.pyfunc import PythonModel


class Broken(PythonModel):
    """Loads, then fails every prediction: what a bad champion looks like to model serving."""

    def predict(self, context, model_input, params=None):
        raise ValueError("this model is broken on purpose")


mlflow.models.set_model(Broken())
'''


def register_broken_model(settings: Settings, folder: Path, champion: bool = True) -> str:
    """A model version that loads but answers every request with an error; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    code = folder / "broken_model.py"
    code.write_text(BROKEN_MODEL)
    mlflow.set_tracking_uri(settings.mlflow_uri())
    mlflow.set_experiment("integration-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                       registered_model_name=settings.model_name)
    version = str(info.registered_model_version)
    record_version(settings, settings.model_name, version)  # the pipeline's own bad model, not a stranger's
    if champion:
        MlflowClient(settings.mlflow_uri()).set_registered_model_alias(settings.model_name, "champion", version)
    return version
