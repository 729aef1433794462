"""The preflight: every problem that would stop install or up is found before anything is
downloaded, all of them at once, each with its fix, in well under 5 seconds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localstack import preflight
from localstack.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A checkout's files the preflight reads (.env, lock files, poms), with ports nobody uses,
    and a cache with uv only: every environment and jar is still to be installed."""
    root = tmp_path / "checkout with space"
    for name in ("requirements.txt", "requirements/label-studio.txt", "requirements/superset.txt",
                 "localstack/maven/spark/pom.xml", "localstack/maven/kafka/pom.xml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    ports = {"STREAMINGDB_URL": "postgresql://streaming@127.0.0.1:{}/streamingdb",
             "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{}", "MLFLOW_TRACKING_URI": "http://127.0.0.1:{}",
             "MODEL_SERVING_URL": "http://127.0.0.1:{}", "MODEL_SHADOW_URL": "http://127.0.0.1:{}",
             "LABEL_STUDIO_URL": "http://127.0.0.1:{}",
             "AIRFLOW_URL": "http://127.0.0.1:{}", "SUPERSET_URL": "http://127.0.0.1:{}"}
    lines, taken = [], set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in ports:
            # Distinct ports: the OS may hand the same free port out twice (Kafka uses two).
            port = _free_port()
            while port in taken or port + 1 in taken or (
                    key == "KAFKA_BOOTSTRAP_SERVERS" and not preflight._bindable(port + 1)):
                port = _free_port()
            taken.update({port, port + 1} if key == "KAFKA_BOOTSTRAP_SERVERS" else {port})
            line = f"{key}={ports[key].format(port)}"
        lines.append(line.replace("=change-me", "=" + "s" * 40))
    (root / ".env").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("AI_TWEETS_CACHE", str(tmp_path / "cache"))
    # uv is there (the tests' Python, a uv-made environment, has no pip to install it with).
    uv = preflight.uv_binary_path()
    uv.mkdir(parents=True)
    (uv / ".complete").write_text("{}\n")
    for key in ports:
        monkeypatch.delenv(key, raising=False)
    return root


def _env_value(root: Path, key: str) -> str:
    return next(line.split("=", 1)[1] for line in (root / ".env").read_text().splitlines()
                if line.startswith(f"{key}="))


def _port(value: str) -> int:
    return int(value.rsplit(":", 1)[1].split("/")[0])


def test_a_ready_machine_passes_quickly(checkout):
    began = time.monotonic()
    problems = preflight.check(checkout, SERVICES)
    assert time.monotonic() - began < 5
    assert problems == [], preflight.report(problems, 0)


def test_every_problem_at_once_each_with_its_fix(checkout, monkeypatch):
    monkeypatch.setattr(preflight, "RUNNING_PYTHON", (3, 12, 1))
    real_which = shutil.which
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None if name in ("java", "mvn") else real_which(name))
    monkeypatch.setattr(preflight, "postgres_installed", lambda: False)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(preflight, "_writable", lambda path: not str(path).startswith(str(checkout)))
    monkeypatch.setattr(preflight, "DATA_ROOM", 1e15)  # more disk than any machine has
    shutil.rmtree(preflight.uv_binary_path())  # uv still to install, and no pip to install it with
    real_find_spec = preflight.importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec",
                        lambda name, *args: None if name == "pip" else real_find_spec(name, *args))
    airflow = _port(_env_value(checkout, "AIRFLOW_URL"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", airflow))
        busy.listen()
        began = time.monotonic()
        problems = preflight.check(checkout, SERVICES)
        seconds = time.monotonic() - began
    assert seconds < 5
    text = preflight.report(problems, seconds)
    expected = {  # a word of each problem → a word of its fix
        "Python 3.12.1": "PYTHON=python3.11",
        "has no pip": "apt-get install -y python3-pip",
        "Java is not installed": "openjdk-17-jre-headless",
        "Maven": "apt-get install -y maven",
        "PostgreSQL's server is not installed": "apt-get install -y postgresql",
        "is not writable": "git clone",
        "free where the cache": "AI_TWEETS_CACHE",
        f"port {airflow} is in use by pid {os.getpid()}": "AIRFLOW_URL=http://127.0.0.1:",
    }
    assert len(problems) == len(expected), text
    for what, fix in expected.items():
        matching = [problem for problem in problems if what in problem.what]
        assert len(matching) == 1, f"{what!r} not reported once:\n{text}"
        assert fix in matching[0].fix, f"{what!r}: fix {matching[0].fix!r} lacks {fix!r}"
    assert text.count("fix: ") == len(expected) and "nothing was downloaded" in text


def test_a_busy_port_names_its_setting_its_holder_and_a_free_replacement(checkout):
    mlflow = _port(_env_value(checkout, "MLFLOW_TRACKING_URI"))
    holder = subprocess.Popen([sys.executable, "-m", "http.server", str(mlflow), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not preflight.port_open(mlflow) and time.monotonic() < deadline:
            time.sleep(0.1)
        problems = preflight.check(checkout, SERVICES)
    finally:
        holder.terminate()
        holder.wait()
    assert len(problems) == 1, preflight.report(problems, 0)
    problem = problems[0]
    assert f"port {mlflow} is in use by pid {holder.pid}" in problem.what and "http.server" in problem.what
    assert "mlflow needs it (MLFLOW_TRACKING_URI in .env)" in problem.what
    suggested = _port(problem.fix.rsplit("MLFLOW_TRACKING_URI=", 1)[1])
    assert suggested != mlflow and not preflight.port_open(suggested)


def test_a_busy_shadow_port_names_the_shadow_setting(checkout):
    shadow = _port(_env_value(checkout, "MODEL_SHADOW_URL"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", shadow))
        other.listen()
        problems = preflight.check(checkout, SERVICES)
    assert len(problems) == 1, preflight.report(problems, 0)
    assert f"port {shadow} is in use" in problems[0].what
    assert "model-serving needs it (MODEL_SHADOW_URL in .env)" in problems[0].what
    suggested = _port(problems[0].fix.rsplit("MODEL_SHADOW_URL=", 1)[1])
    assert suggested == shadow + 100, problems[0].fix


def test_ports_of_this_checkouts_running_services_are_not_problems(checkout):
    kafka = _port(_env_value(checkout, "KAFKA_BOOTSTRAP_SERVERS"))
    (checkout / ".local" / "run").mkdir(parents=True)
    (checkout / ".local" / "run" / "kafka.pid").write_text(f"{os.getpid()}\n")  # "kafka" is up: this process
    with socket.socket() as own:
        own.bind(("127.0.0.1", kafka))
        own.listen()
        assert preflight.check(checkout, SERVICES) == []


def test_two_services_on_one_port_and_a_bad_setting_are_reported(checkout):
    env = checkout / ".env"
    airflow = _env_value(checkout, "AIRFLOW_URL")
    env.write_text(env.read_text().replace(f"SUPERSET_URL={_env_value(checkout, 'SUPERSET_URL')}",
                                           f"SUPERSET_URL={airflow}"))
    problems = preflight.check(checkout, SERVICES)
    assert [p.what for p in problems] == [f"superset and airflow-apiserver would both listen on port {_port(airflow)}"]
    assert "SUPERSET_URL" in problems[0].fix
    env.write_text(env.read_text().replace("DATASET_VERSION=0", "DATASET_VERSION=zero"))
    problems = preflight.check(checkout, SERVICES)
    assert "DATASET_VERSION" in problems[0].what and ".env" in problems[0].fix


def test_install_alone_does_not_need_free_ports(checkout):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", _port(_env_value(checkout, "LABEL_STUDIO_URL"))))
        busy.listen()
        assert preflight.check(checkout, SERVICES, ports=False) == []
        assert len(preflight.check(checkout, SERVICES)) == 1


def test_a_path_with_a_colon_is_refused(tmp_path):
    folder = tmp_path / "a:b"
    folder.mkdir()
    problems = preflight.check_folders(folder, cache=tmp_path / "cache")
    assert len(problems) == 1 and "':'" in problems[0].what


@pytest.mark.parametrize(("output", "major"), [('openjdk version "17.0.15" 2025-04-15', 17),
                                               ('java version "1.8.0_392"', 8),
                                               ('openjdk version "21" 2023-09-19', 21), ("garbage", None)])
def test_java_version_parsing(output, major):
    assert preflight.java_major(output) == major


def test_the_stack_stops_before_installing_when_preflight_fails(monkeypatch, capsys):
    from localstack import stack

    monkeypatch.setattr(preflight, "check", lambda root, services, ports=True: [preflight.Problem("broken", "mend")])
    monkeypatch.setattr(stack, "install", lambda *args: pytest.fail("install ran despite the preflight"))
    assert stack.main(["up"]) == 1
    assert "1. broken" in capsys.readouterr().err
