"""Offline checks that docker-compose.yaml and its Dockerfiles hang together.

No Docker engine is needed: the file is parsed with PyYAML (anchors and merge keys
resolved) and checked against the repository. Only the last test calls
`docker compose config`, and only where the compose plugin is installed.
"""

from __future__ import annotations

import re
import runpy
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}, $VAR
INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>:?[-?+])?[^}]*\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
# Services that the pipeline reaches by URL: the host in each must be a compose service.
SERVICE_URL_VARIABLES = (
    "STREAMINGDB_URL",
    "MLFLOW_TRACKING_URI",
    "MODEL_SERVING_URL",
    "MODEL_SHADOW_URL",
    "LABEL_STUDIO_URL",
    "AIRFLOW_URL",
    "SUPERSET_URL",
)
# One-off jobs that run last: nothing waits for them, so they are named here.
FINAL_JOBS = {"superset-provision", "mlflow-accounts"}  # one-shot jobs nothing waits for
PROJECT_SUPERSET_CONFIG = "./superset/superset_config.py"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def depends_on(service: dict) -> dict[str, str]:
    """{target: condition}; the list form means `service_started`."""
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def one_shot_services(services: dict[str, dict]) -> set[str]:
    """Services that something waits for with service_completed_successfully, and the final jobs."""
    return {
        target
        for service in services.values()
        for target, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    } | (FINAL_JOBS & services.keys())


def environment(service: dict) -> dict[str, str]:
    value = service.get("environment") or {}
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {key: "" if item is None else str(item) for key, item in value.items()}


def strings(node: object) -> Iterator[str]:
    """Every string value in the parsed file (keys and comments are not interpolated)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def interpolated_variables(text: str) -> Iterator[tuple[str, str | None]]:
    """(name, modifier) of each interpolation; `$$` is a literal dollar sign."""
    for match in INTERPOLATION.finditer(text.replace("$$", "")):
        if match["braced"]:
            yield match["braced"], match["modifier"]
        else:
            yield match["bare"], None


def env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].removeprefix("export ").strip())
    return names


def builds(services: dict[str, dict]) -> Iterator[tuple[str, Path, Path]]:
    """(service, context directory, Dockerfile) of each service that builds an image."""
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = REPO / build.get("context", ".")
        yield name, context, context / build.get("dockerfile", "Dockerfile")


def dockerfiles() -> list[Path]:
    return sorted(
        path
        for path in (REPO / "docker").rglob("*")
        if path.is_file() and (path.name == "Dockerfile" or path.name.endswith(".Dockerfile"))
    )


def instructions(dockerfile: Path) -> Iterator[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        words = shlex.split(logical, posix=True)
        logical = ""
        if words:
            yield words[0].upper(), words[1:]


def image_is_pinned(reference: str) -> bool:
    """A version tag other than `latest`, or a digest."""
    if "@sha256:" in reference:
        return True
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a colon may belong to a registry port)
        return False
    return tag != "latest" and any(char.isdigit() for char in tag)


def published_host_ports(service: dict) -> Iterator[tuple[int, str]]:
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                yield int(port["published"]), port.get("protocol", "tcp")
            continue
        spec, _, protocol = str(port).partition("/")
        parts = spec.split(":")
        if len(parts) >= 2:  # [ip:]host:container; a lone container port publishes nothing fixed
            yield int(parts[-2]), protocol or "tcp"


def test_compose_file_is_a_mapping_of_services(compose: dict) -> None:
    assert isinstance(compose.get("services"), dict) and compose["services"]


def test_every_service_has_a_pinned_image_or_a_build(services: dict[str, dict]) -> None:
    unpinned = [
        f"{name}: {service.get('image')!r}"
        for name, service in services.items()
        if "build" not in service and not image_is_pinned(str(service.get("image", "")))
    ]
    assert not unpinned, f"services without a version-pinned image (and no build:): {unpinned}"


def test_dockerfile_base_images_are_pinned(services: dict[str, dict]) -> None:
    referenced = {dockerfile for _, _, dockerfile in builds(services) if dockerfile.is_file()}
    paths = sorted(referenced | set(dockerfiles()))
    assert paths, "no Dockerfiles found"
    problems = []
    for path in paths:
        stages: set[str] = set()
        for instruction, args in instructions(path):
            if instruction != "FROM":
                continue
            args = [arg for arg in args if not arg.startswith("--")]
            image = args[0]
            from_earlier_stage = image.lower() in stages
            if len(args) >= 3 and args[1].upper() == "AS":
                stages.add(args[2].lower())
            if not from_earlier_stage and ("$" in image or not image_is_pinned(image)):
                problems.append(f"{path.relative_to(REPO)}: FROM {image}")
    assert not problems, f"unpinned base images: {problems}"


def test_long_running_services_have_healthchecks(services: dict[str, dict]) -> None:
    one_shot = one_shot_services(services)
    missing = [
        name
        for name, service in services.items()
        if name not in one_shot and (not service.get("healthcheck") or service["healthcheck"].get("disable"))
    ]
    assert not missing, f"long-running services without a healthcheck: {missing}"


def test_one_shot_services_are_not_restarted(services: dict[str, dict]) -> None:
    restarted = [
        name
        for name in one_shot_services(services)
        if services.get(name, {}).get("restart", "no") in {"always", "unless-stopped"}
    ]
    assert not restarted, f"init services that would never complete (restart always): {restarted}"


def test_init_services_are_waited_for_until_completed(services: dict[str, dict]) -> None:
    one_shot = one_shot_services(services)
    unwaited = [name for name in services if name.endswith("-init") and name not in one_shot]
    assert not unwaited, f"init services nothing waits for with service_completed_successfully: {unwaited}"


def test_long_running_services_have_a_restart_policy(services: dict[str, dict]) -> None:
    one_shot = one_shot_services(services)
    missing = [
        name
        for name, service in services.items()
        if name not in one_shot and service.get("restart", "no") == "no"
    ]
    assert not missing, f"long-running services without a restart policy: {missing}"


def test_published_host_ports_do_not_collide(services: dict[str, dict]) -> None:
    owners: dict[tuple[int, str], list[str]] = {}
    for name, service in services.items():
        for port in published_host_ports(service):
            owners.setdefault(port, []).append(name)
    collisions = {f"{port}/{protocol}": names for (port, protocol), names in owners.items() if len(names) > 1}
    assert not collisions, f"host ports published twice: {collisions}"


def test_interpolated_variables_are_documented_in_env_example(compose: dict) -> None:
    documented = env_example_names()
    undocumented = sorted(
        {
            name
            for text in strings(compose)
            for name, modifier in interpolated_variables(text)
            if modifier not in {"-", ":-"} and name not in documented
        }
    )
    assert not undocumented, (
        f"variables used in docker-compose.yaml but missing from .env.example: {undocumented}"
    )


def test_named_volumes_are_declared_and_used(compose: dict, services: dict[str, dict]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for service in services.values():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type", "volume") == "volume" and volume.get("source"):
                    used.add(volume["source"])
                continue
            source = str(volume).split(":", 1)[0]
            if ":" in str(volume) and not source.startswith((".", "/", "~", "$")):
                used.add(source)
    assert not used - declared, f"named volumes used but not declared: {sorted(used - declared)}"
    assert not declared - used, f"named volumes declared but never mounted: {sorted(declared - used)}"


def test_bind_mount_sources_exist(services: dict[str, dict]) -> None:
    missing = []
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith("."):
                if not (REPO / source).exists():
                    missing.append(f"{name}: {source}")
    assert not missing, f"bind-mount sources missing from the repository: {missing}"


def test_depends_on_targets_exist_with_valid_conditions(services: dict[str, dict]) -> None:
    problems = []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"{name} -> {target}: no such service")
            elif condition not in DEPENDS_ON_CONDITIONS:
                problems.append(f"{name} -> {target}: unknown condition {condition!r}")
            elif condition == "service_healthy" and not services[target].get("healthcheck"):
                problems.append(f"{name} -> {target}: service_healthy, but {target} has no healthcheck")
            if target == name:
                problems.append(f"{name} depends on itself")
    assert not problems, problems


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict]) -> None:
    missing = []
    for name, context, dockerfile in builds(services):
        if not context.is_dir():
            missing.append(f"{name}: context {context.relative_to(REPO)}")
        elif not dockerfile.is_file():
            missing.append(f"{name}: dockerfile {dockerfile.relative_to(REPO)}")
    assert not missing, f"build paths missing from the repository: {missing}"


def test_dockerfile_copy_sources_exist(services: dict[str, dict]) -> None:
    missing = set()
    for _, context, dockerfile in builds(services):
        if not dockerfile.is_file():
            continue
        for instruction, args in instructions(dockerfile):
            if instruction not in {"COPY", "ADD"} or any(arg.startswith("--from") for arg in args):
                continue
            sources = [arg for arg in args if not arg.startswith("--")][:-1]
            for source in sources:
                if not list(context.glob(source.rstrip("/"))):
                    missing.add(f"{dockerfile.relative_to(REPO)} copies {source}")
    assert not missing, f"files the image builds copy are missing from the repository: {sorted(missing)}"


def test_service_urls_name_compose_services(services: dict[str, dict]) -> None:
    problems = []
    for name, service in services.items():
        env = environment(service)
        for variable in SERVICE_URL_VARIABLES:
            if variable in env:
                host = urlsplit(env[variable]).hostname
                if host not in services:
                    problems.append(f"{name}: {variable}={env[variable]} (host {host!r} is not a service)")
        for server in filter(None, env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")):
            if server.rsplit(":", 1)[0] not in services:
                problems.append(f"{name}: KAFKA_BOOTSTRAP_SERVERS has {server}, not a service")
    assert not problems, problems


def test_no_runtime_pip_installs(services: dict[str, dict]) -> None:
    offenders = [
        name for name, service in services.items() if "_PIP_ADDITIONAL_REQUIREMENTS" in environment(service)
    ]
    assert not offenders, f"install packages in the image, not with _PIP_ADDITIONAL_REQUIREMENTS: {offenders}"


def test_superset_services_use_the_project_config(
    services: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """superset/superset_config.py, mounted read-only, as the local stack uses it; with each
    service's environment it keeps its metadata in the `superset` database of the postgres
    service, which the postgres init script creates, as its own role `superset`."""
    assert "CREATE DATABASE superset OWNER superset;" in (REPO / "docker/postgres/init-databases.sh").read_text()
    for name in ("superset-init", "superset"):
        env = environment(services[name])
        read_only_mounts = {
            source: target
            for source, target, *options in (str(volume).split(":") for volume in services[name].get("volumes") or [])
            if options == ["ro"]
        }
        assert read_only_mounts.get(PROJECT_SUPERSET_CONFIG) == env.get("SUPERSET_CONFIG_PATH"), (
            f"{name}: SUPERSET_CONFIG_PATH must name {PROJECT_SUPERSET_CONFIG}, mounted read-only"
        )
        with monkeypatch.context() as patch:
            for variable in ("SUPERSET_METADATA_HOST", "SUPERSET_METADATA_PORT"):
                patch.delenv(variable, raising=False)
            for variable, value in env.items():  # interpolated secrets: any value
                patch.setenv(variable, "secret" if "${" in value else value)
            config = runpy.run_path(str(REPO / PROJECT_SUPERSET_CONFIG))
        metadata = make_url(config["SQLALCHEMY_DATABASE_URI"])
        assert (metadata.host, metadata.port, metadata.database, metadata.username) == (
            "postgres", 5432, "superset", "superset"), name
        assert metadata.host in services


def test_superset_provision_runs_the_dashboard_module_after_superset_is_healthy(
    services: dict[str, dict],
) -> None:
    provision = services["superset-provision"]
    assert provision["build"]["dockerfile"] == "docker/pipeline.Dockerfile"
    assert provision["command"][-3:] == ["python", "-m", "ai_tweets.dashboard"]
    assert depends_on(provision)["superset"] == "service_healthy"
    assert provision.get("restart") == "no"
    env = environment(provision)
    assert urlsplit(env["SUPERSET_URL"]).netloc == "superset:8088"
    assert {"SUPERSET_ADMIN_PASSWORD", "STREAMINGDB_URL", "STREAMINGDB_PASSWORD"} <= env.keys()
    # The bundle it imports is baked into the pipeline image (settings.PROJECT_ROOT/superset).
    copies = [args for instruction, args in instructions(REPO / "docker/pipeline.Dockerfile") if instruction == "COPY"]
    assert any("superset/dashboard/" in args for args in copies)
    assert "!superset/dashboard/" in (REPO / "docker/pipeline.Dockerfile.dockerignore").read_text().splitlines()


def _compose_plugin_available() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return result.returncode == 0


@pytest.mark.skipif(
    not _compose_plugin_available(), reason="docker compose is not installed (no compose plugin)"
)
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_resources_are_bounded(services: dict[str, dict]) -> None:
    """Kafka keeps a partition by time and by size, the producer has a default rate, container
    logs rotate, and PostgreSQL commits synchronously."""
    kafka = services["kafka"]["environment"]
    assert int(kafka["KAFKA_LOG_RETENTION_HOURS"]) > 0 and int(kafka["KAFKA_LOG_RETENTION_BYTES"]) > 0
    init = " ".join(services["kafka-init"]["command"])
    assert "--config=retention.ms=" in init and "--config=retention.bytes=" in init
    producer = services["tweet-producer"]
    assert "--rate" in " ".join(producer["command"])
    assert producer["environment"]["PRODUCER_RATE"] == "${PRODUCER_RATE:-50}"
    for name, service in services.items():
        if service.get("restart") in ("unless-stopped", "always"):
            assert service.get("logging", {}).get("options", {}).get("max-size"), f"{name}: logs are not rotated"
    assert "synchronous_commit=on" in services["postgres"]["command"]


def test_spark_rpc_is_authenticated_and_encrypted_everywhere_spark_runs(services: dict[str, dict]) -> None:
    """The master, the workers and the drivers (Airflow's scheduler) read one spark-defaults.conf
    with spark.authenticate and AES RPC encryption; its secret never goes on a command line."""
    script = "\n".join(services["spark-conf-init"]["command"])
    assert "spark.authenticate true" in script and "spark.network.crypto.enabled true" in script
    assert "umask 077" in script
    for name in ("spark-master", "spark-worker", "airflow-scheduler", "airflow-triggerer"):
        mounts = services[name].get("volumes") or []
        assert "spark-conf:/opt/spark-conf:ro" in mounts, name
        assert services[name]["environment"]["SPARK_CONF_DIR"] == "/opt/spark-conf", name
        assert "SPARK_AUTH_SECRET" not in " ".join(map(str, services[name].get("command") or [])), name


def test_nothing_starts_before_the_secrets_are_checked(services: dict[str, dict]) -> None:
    """Every service waits, directly or through what it waits for, for secrets-init."""
    def waits_for_check(name: str, seen: frozenset = frozenset()) -> bool:
        targets = depends_on(services[name])
        return "secrets-init" in targets or any(waits_for_check(t, seen | {name}) for t in targets if t not in seen)

    unchecked = [name for name in services if name != "secrets-init" and not waits_for_check(name)]
    assert not unchecked, f"services that may start with placeholder secrets: {unchecked}"
    assert services["secrets-init"]["command"] == ["ai-tweets", "check-secrets"]


def test_each_service_connects_to_postgres_as_a_role_of_its_own(services: dict[str, dict]) -> None:
    """The superuser's password reaches the postgres service (and the secrets check) only; each
    service's database URL names the role the init script makes it the owner of."""
    init = (REPO / "docker/postgres/init-databases.sh").read_text()
    holders = sorted(name for name, service in services.items()
                     if any("POSTGRES_PASSWORD" in value for value in environment(service).values()))
    assert holders == ["postgres", "secrets-init"], holders
    urls = {"airflow-scheduler": environment(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
            "mlflow": environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"]}
    for name, url in urls.items():
        parts = urlsplit(re.sub(r"\$\{[^}]*\}", "secret", url))
        role, database = parts.username, parts.path.lstrip("/")
        assert role == database and f"CREATE DATABASE {database} OWNER {role};" in init, (name, url)
        assert f"${{{role.upper()}_DB_PASSWORD:?" in url, (name, url)
    label_studio = environment(services["label-studio"])
    assert label_studio["POSTGRE_USER"] == "labelstudio"
    assert "LABEL_STUDIO_DB_PASSWORD" in label_studio["POSTGRE_PASSWORD"]
    assert "CREATE DATABASE labelstudio OWNER labelstudio;" in init
    assert "REVOKE ALL ON DATABASE airflow, mlflow, labelstudio, superset FROM PUBLIC;" in init


def test_only_the_classify_job_and_mlflow_share_a_network_with_model_serving(services: dict[str, dict]) -> None:
    """Model serving has no login of its own: the network is its fence. It runs the same
    supervisor as the local stack (`ai-tweets serve`), listening on every interface of a network
    that only MLflow (where it loads from), PostgreSQL (the record of the versions' files) and
    the containers the classify job runs in share."""
    def networks(service: dict) -> set[str]:
        return set(service.get("networks") or ["default"])

    serving = services["model-serving"]
    assert serving["command"][:2] == ["ai-tweets", "serve"] and "0.0.0.0" in serving["command"]
    reach = {name for name, service in services.items()
             if name != "model-serving" and networks(service) & networks(serving)}
    assert reach == {"mlflow", "postgres", "airflow-scheduler", "spark-worker"}, reach
    assert services["airflow-scheduler"]["command"] == "scheduler"  # where the classify job's driver runs


def test_the_retweet_policy_and_the_account_reach_the_pipeline(services: dict[str, dict]) -> None:
    """Review mode, the precision rule and live mode are set in `.env`: every variable the retweet
    settings read reaches the containers that classify and review (empty: settings.py's default)."""
    from stackbase.settings import RETWEET_VARIABLES, X_USER_CREDENTIALS

    for name in ("airflow-scheduler", "spark-worker"):
        env = environment(services[name])
        for variable in (*RETWEET_VARIABLES, *X_USER_CREDENTIALS):
            assert env.get(variable) == f"${{{variable}:-}}", (name, variable)
