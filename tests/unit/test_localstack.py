"""The local-stack manager's pure parts: generated secrets, ports from settings, service list."""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import sys
from pathlib import Path

import pytest

from localstack import services
from localstack.runtime import PLACEHOLDER, Context, ensure_env_file
from localstack.services import SERVICES
from stackbase.processes import read_pid_file

ROOT = Path(__file__).resolve().parents[2]


def test_env_file_gets_random_secrets_and_is_private(tmp_path):
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    env_file = ensure_env_file(tmp_path)
    text = env_file.read_text()
    assert PLACEHOLDER not in text.replace(f"# `{PLACEHOLDER}`", "")
    assert env_file.stat().st_mode & 0o077 == 0
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(ROOT / ".env.example", other / ".env.example")
    assert ensure_env_file(other).read_text() != text, "secrets must be random per machine"
    env_file.write_text("KEEP=1\nPOSTGRES_PASSWORD=mine\n")
    kept = ensure_env_file(tmp_path).read_text()
    assert kept.startswith("KEEP=1\nPOSTGRES_PASSWORD=mine\n"), "an existing .env keeps its values"
    added = dict(line.split("=", 1) for line in kept.splitlines()[2:])
    assert "POSTGRES_PASSWORD" not in added and {"AIRFLOW_FERNET_KEY", "SUPERSET_SECRET_KEY"} <= set(added), \
        "secrets .env.example gained since are generated and appended"
    assert len(base64.urlsafe_b64decode(added["AIRFLOW_FERNET_KEY"])) == 32


def test_every_placeholder_in_env_example_is_a_secret_the_stack_generates():
    lines = [ln for ln in (ROOT / ".env.example").read_text().splitlines() if ln.endswith(f"={PLACEHOLDER}")]
    assert {ln.split("=")[0] for ln in lines} >= {"POSTGRES_PASSWORD", "STREAMINGDB_PASSWORD",
                                                  "LABEL_STUDIO_API_KEY", "AIRFLOW_ADMIN_PASSWORD"}


def test_services_are_unique_and_ports_do_not_collide(tmp_path):
    names = [service.name for service in SERVICES]
    assert len(names) == len(set(names))
    assert names[0] == "postgres" and SERVICES[0].blocks, "the database starts first"
    env = {key: value for key, value in
           (ln.split("=", 1) for ln in (ROOT / ".env.example").read_text().splitlines()
            if "=" in ln and not ln.startswith("#"))}
    ctx = Context(root=ROOT, local=tmp_path, env=env, settings=None)  # ports need only env
    ports = [port for service in SERVICES for port in service.ports(ctx)]
    assert len(ports) == len(set(ports)), ports


def test_pid_file_reading(tmp_path):
    assert read_pid_file(tmp_path / "missing.pid") is None
    (tmp_path / "bad.pid").write_text("garbage")
    assert read_pid_file(tmp_path / "bad.pid") is None
    (tmp_path / "ok.pid").write_text("123\n")
    assert read_pid_file(tmp_path / "ok.pid") == (123, None, None)


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user PostgreSQL's data stays in .local")
def test_as_root_postgres_data_lives_where_its_user_can_reach_and_clean_removes_it(tmp_path, monkeypatch):
    try:
        pwd.getpwnam(services.PG_USER)
    except KeyError:
        pytest.skip("no postgres system user on this machine")
    home = tmp_path / "pg-home" / "ai-tweets"
    monkeypatch.setattr(services, "pg_clusters_home", lambda: home)
    root = tmp_path / "private clone"
    root.mkdir(mode=0o700)
    ctx = Context(root=root, local=root / ".local", env={}, settings=None)
    services._pg_new_cluster_folder(ctx)
    data = services._pg_data(ctx)
    folder = data.parent
    assert folder.parent == home and folder.name.startswith("private_clone-")
    assert (root / ".local" / "postgres" / "data").resolve() == data
    assert (folder / "checkout").read_text().strip() == str(root)
    assert pwd.getpwuid(folder.stat().st_uid).pw_name == services.PG_USER
    assert services._pg_cwd(ctx) == folder, "initdb and postgres work from a folder they can enter"
    services._pg_new_cluster_folder(ctx)
    assert services._pg_data(ctx) == data, "one folder per checkout, kept across starts"
    services._pg_clean(ctx)
    assert not folder.exists()


def test_a_logged_command_line_never_shows_a_secret():
    from localstack.runtime import _redacted

    assert _redacted(["superset", "fab", "reset-password", "--username", "admin", "--password", "hunter2hunter2",
                      "--api-token=abc123", "--secret-key", "k3y", "plain"]) == [
        "superset", "fab", "reset-password", "--username", "admin", "--password", "***",
        "--api-token=***", "--secret-key", "***", "plain"]


def test_the_superset_admin_password_is_hashed_the_way_flask_appbuilder_checks_it():
    """The stack sets Superset's admin password by SQL with a hash made by the standard library;
    Werkzeug (what Flask-AppBuilder checks a login with) must accept it, and only it."""
    from werkzeug.security import check_password_hash

    stored = services.superset_password_hash("pa$$ wörd'\\")
    assert stored.startswith("pbkdf2:sha256:") and "wörd" not in stored
    assert check_password_hash(stored, "pa$$ wörd'\\")
    assert not check_password_hash(stored, "pa$$ word'\\")
    assert services.superset_password_hash("x") != services.superset_password_hash("x"), "salted"


def test_the_demo_starts_once_the_first_services_answer_and_learns_where_the_stack_says_it_is_up(tmp_path):
    from localstack.stack import Then, up_file

    first = {service.name for service in SERVICES if service.first}
    assert {"postgres", "kafka", "airflow-apiserver", "airflow-scheduler"} <= first
    assert not first & {"mlflow", "label-studio", "superset"}, "the demo's first DAG runs need none of these"
    flags = [service.first for service in SERVICES]
    assert flags == sorted(flags, reverse=True), "the first services start first (none waits on a late one's prepare)"
    ctx = Context(root=ROOT, local=tmp_path, env={}, settings=None)
    (tmp_path / "run").mkdir()
    seen = tmp_path / "seen"
    follower = Then(ctx, [sys.executable, "-c", "import os, sys; "
                          f"open({str(seen)!r}, 'w').write(os.environ['AI_TWEETS_STACK_UP_FILE'])"], SERVICES)
    for service in SERVICES:
        if service.name != "airflow-triggerer":
            follower.healthy(service, since=0)
    assert follower.process is None, "it waits for every first service"
    follower.healthy(next(s for s in SERVICES if s.name == "airflow-triggerer"), since=0)
    assert follower.process is not None and follower.process.wait(timeout=30) == 0
    assert seen.read_text() == str(up_file(ctx))
    follower.start(since=0)
    assert follower.process.returncode == 0, "started once"


def test_a_spawned_service_is_waited_for_while_a_later_ones_prepare_step_still_runs():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from localstack.services import Service
    from localstack.stack import wait_healthy

    prepared = threading.Event()

    class Spawned:  # the part of Context that wait_healthy reads
        def running_pid(self, name):
            return 1 if name == "airflow" or prepared.is_set() else None

    def spawn_after_a_slow_prepare():
        time.sleep(1.5)  # a migration
        prepared.set()
        return ["airflow", "label-studio"]

    seen = []
    services = [Service(name="airflow", argv=list, healthy=lambda ctx: True),
                Service(name="label-studio", argv=list, healthy=lambda ctx: prepared.is_set())]
    with ThreadPoolExecutor(max_workers=1) as pool:
        spawning = pool.submit(spawn_after_a_slow_prepare)
        wait_healthy(Spawned(), services, lambda service: seen.append((service.name, prepared.is_set())), spawning)
    assert seen == [("airflow", False), ("label-studio", True)]

    def failing_prepare():
        raise RuntimeError("migration failed")

    prepared.clear()
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(RuntimeError, match="migration failed"):
        wait_healthy(Spawned(), services[1:], lambda service: None, pool.submit(failing_prepare))
