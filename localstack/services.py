"""The services of the local stack, one entry each, in start order.

A service is a foreground process the stack spawns in its own process group, with a
health check. Adding one (model serving, Superset, ...) is one more `Service(...)` below
plus, if it needs them, an install step and a prepare step.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from localstack.runtime import (
    PLACEHOLDER,
    Build,
    Context,
    Installed,
    StackError,
    cache_dir,
    cache_lock,
    content_hash,
    http_json,
    http_ok,
    port_open,
    run_logged,
    uv_binary,
)
from stackbase.settings import STREAMINGDB_READER

Step = Callable[[Context], Installed]


@dataclass(frozen=True)
class Service:
    name: str
    argv: Callable[[Context], list[str]]
    healthy: Callable[[Context], bool]
    url: Callable[[Context], str] = lambda ctx: ""
    ports: Callable[[Context], list[int]] = lambda ctx: []
    port_setting: str = ""
    own_port_settings: tuple[str, ...] = ()  # further settings that each name one port of the service
    env: Callable[[Context], dict[str, str]] = lambda ctx: ctx.base_env()
    installs: tuple[Step, ...] = ()
    prepare: Callable[[Context], None] | None = None
    after_start: Callable[[Context], None] | None = None
    # Data the service keeps outside .local, removed by `make clean`.
    clean: Callable[[Context], None] | None = None
    user: str | None = None
    cwd: Callable[[Context], Path | None] = lambda ctx: None
    blocks: bool = False
    # `make demo` (`up --then`) begins once every `first` service is healthy: its first DAG runs
    # need only these; the others finish starting beside it (the demo waits for them before annotate).
    first: bool = False
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20
    start_timeout: float = 180


# --- install steps (idempotent; cached under ~/.cache/ai-tweets) ----------------------


def install_uv(ctx: Context) -> Installed:
    return uv_binary(ctx.log_file("install-uv"))


# What the install steps build into the cache, with about the disk each takes once built
# (measured: README, "Install"; the pipeline's includes what uv keeps of pyspark's source build).
PIPELINE_ENV = Build("venv", "pipeline", "requirements.txt", 9.0e9, build_first=("pyspark", "pyspark-client"))
LABEL_STUDIO_ENV = Build("venv", "label-studio", "requirements/label-studio.txt", 1.0e9, compile_bytecode=True)
SUPERSET_ENV = Build("venv", "superset", "requirements/superset.txt", 0.9e9, compile_bytecode=True)
SPARK_JARS = Build("jars", "spark", "localstack/maven/spark/pom.xml", 0.1e9)
KAFKA_JARS = Build("jars", "kafka", "localstack/maven/kafka/pom.xml", 0.1e9)


def install_pipeline_env(ctx: Context) -> Installed:
    installed = PIPELINE_ENV.ensure(ctx.root, ctx.log_file("install-pipeline"))
    # The environment is shared by every clone, so the project is never installed into it:
    # each clone puts its own include/ first on PYTHONPATH (base_env, .local/activate).
    venv = installed.path
    bin_dir = ctx.local / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    cli = bin_dir / "ai-tweets"
    cli.write_text(f'#!/bin/sh\nPYTHONPATH={shlex.quote(str(ctx.root / "include"))}"${{PYTHONPATH:+:$PYTHONPATH}}" '
                   f'exec {shlex.quote(str(venv / "bin" / "python"))} -m ai_tweets.cli "$@"\n')
    cli.chmod(0o755)
    (ctx.local / "activate").write_text(
        f"# source this file for the pipeline environment and the `ai-tweets` command\n{ctx.shell_env()}\n")
    return installed


def install_label_studio_env(ctx: Context) -> Installed:
    return LABEL_STUDIO_ENV.ensure(ctx.root, ctx.log_file("install-label-studio"))


def install_superset_env(ctx: Context) -> Installed:
    return SUPERSET_ENV.ensure(ctx.root, ctx.log_file("install-superset"))


def install_spark_jars(ctx: Context) -> Installed:
    installed = SPARK_JARS.ensure(ctx.root, ctx.log_file("install-jars"))
    _link(ctx.local / "jars" / "spark", installed.path)
    return installed


def install_kafka_jars(ctx: Context) -> Installed:
    installed = KAFKA_JARS.ensure(ctx.root, ctx.log_file("install-jars"))
    _link(ctx.local / "jars" / "kafka", installed.path)
    return installed


# Install steps that build into the cache, and what each builds (the preflight's disk check).
BUILDS: dict[Step, Build] = {install_pipeline_env: PIPELINE_ENV, install_label_studio_env: LABEL_STUDIO_ENV,
                             install_superset_env: SUPERSET_ENV, install_spark_jars: SPARK_JARS,
                             install_kafka_jars: KAFKA_JARS}


def install_postgres_server(ctx: Context) -> Installed:
    if found := _pg_bin("postgres", required=False):
        return Installed(Path(found), fresh=False)
    if os.geteuid() != 0:
        raise StackError("PostgreSQL server binaries not found: run `sudo apt-get install -y postgresql`.")
    run_logged(["apt-get", "update", "-q"], "apt-get update", ctx.log_file("install-postgres"))
    run_logged(["apt-get", "install", "-y", "-q", "postgresql", "postgresql-client"],
               "installing PostgreSQL from Debian's packages", ctx.log_file("install-postgres"),
               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return Installed(Path(_pg_bin("postgres")), fresh=True)


def install_browser(ctx: Context) -> None:
    """Headless Chromium and its driver (Debian's packages), for the UI screenshot tests."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() != 0:
        raise StackError("Chromium is needed for the screenshot tests: "
                         "`sudo apt-get install -y chromium chromium-driver fonts-noto-color-emoji`.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update", "-q"], "apt-get update", ctx.log_file("install"), env=env)
    run_logged(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver", "fonts-noto-color-emoji"],
               "installing headless Chromium from Debian's packages", ctx.log_file("install"), env=env)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return
        link.unlink()
    link.symlink_to(target)


# --- PostgreSQL -----------------------------------------------------------------------

PG_USER = "postgres"  # the superuser: the stack's own setup only, no service connects as it
LABEL_STUDIO_DB = "labelstudio"
MLFLOW_AUTH_DB = "mlflow_auth"  # MLflow's accounts and permissions (its basic-auth app)
# Each service connects as a role of its own (password from .env) that owns its databases and
# may connect to no other; `streamingdb` is owned by the pipeline's role (the user of STREAMINGDB_URL).
SERVICE_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "airflow": ("AIRFLOW_DB_PASSWORD", ("airflow",)),
    "mlflow": ("MLFLOW_DB_PASSWORD", ("mlflow", MLFLOW_AUTH_DB)),
    "labelstudio": ("LABEL_STUDIO_DB_PASSWORD", (LABEL_STUDIO_DB,)),
    "superset": ("SUPERSET_DB_PASSWORD", ("superset",)),
}
SERVICE_DATABASES = tuple(database for _, databases in SERVICE_ROLES.values() for database in databases)


def role_of(database: str) -> str:
    """The role that owns a service database."""
    return next(role for role, (_, databases) in SERVICE_ROLES.items() if database in databases)


def role_password(ctx: Context, role: str) -> str:
    return ctx.env[SERVICE_ROLES[role][0]]


def _pg_bin(name: str, required: bool = True) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found and required:
        raise StackError(f"PostgreSQL binary {name!r} not found: run `make install`.")
    return found


def postgres_installed() -> bool:
    return _pg_bin("postgres", required=False) is not None


def _run_as_postgres() -> str | None:
    """Postgres refuses to run as root: run it as the `postgres` system user then."""
    return PG_USER if os.geteuid() == 0 else None


def pg_clusters_home() -> Path:
    """Where the clusters run by the `postgres` user live: that user's own home (Debian:
    /var/lib/postgresql), which it can always reach, unlike a checkout in a mode-700 folder."""
    return Path(pwd.getpwnam(PG_USER).pw_dir) / "ai-tweets"


def _pg_link(ctx: Context) -> Path:
    return ctx.local / "postgres" / "data"


def _pg_data(ctx: Context) -> Path:
    """The cluster's data folder: `.local/postgres/data`, or, when the stack runs as root, the
    folder in the `postgres` user's home that it links to (one per checkout; `make clean` removes it)."""
    link = _pg_link(ctx)
    return Path(os.readlink(link)) if link.is_symlink() else link


def _pg_port(ctx: Context) -> int:
    return ctx.port_of("STREAMINGDB_URL")


def _pg_cwd(ctx: Context) -> Path | None:
    """As the `postgres` user, work from a folder it can enter (the checkout may be closed to it)."""
    return _pg_data(ctx).parent if _run_as_postgres() else None


def _pg_new_cluster_folder(ctx: Context) -> None:
    """Run as root: a folder for this checkout's cluster in the `postgres` user's home, named
    after the checkout (plus a random part) and holding the checkout's path, linked from .local."""
    link = _pg_link(ctx)
    if link.is_symlink() or (link / "PG_VERSION").exists():
        return  # made before, or a cluster from when the data lived in the checkout: kept
    shutil.rmtree(link, ignore_errors=True)  # an initdb that failed half-way
    home = pg_clusters_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.chown(home, PG_USER, PG_USER)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in ctx.root.name)[:40]
    folder = home / f"{name}-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    (folder / "checkout").write_text(f"{ctx.root}\n")
    shutil.chown(folder, PG_USER, PG_USER)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder / "data")


def _pg_clean(ctx: Context) -> None:
    """`make clean`: the cluster folder outside the checkout goes with .local."""
    link = _pg_link(ctx)
    if link.is_symlink():
        folder = _pg_data(ctx).parent
        if folder.parent == pg_clusters_home():
            shutil.rmtree(folder, ignore_errors=True)
            print(f"removed the PostgreSQL cluster {folder}")


def _pg_prepare(ctx: Context) -> None:
    user = _run_as_postgres()
    if user:
        _pg_new_cluster_folder(ctx)
    data = _pg_data(ctx)
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    pwfile = data.parent / "pwfile"
    pwfile.write_text(ctx.env["POSTGRES_PASSWORD"] + "\n")
    if user:
        shutil.chown(data.parent, user)
        shutil.chown(data, user)
        shutil.chown(pwfile, user)
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(data)], cwd="/")
        if probe.returncode != 0:
            raise StackError(
                f"the `postgres` system user cannot write {data}: a parent folder is not traversable "
                f"by other users. `make clean` and `make up` again put the cluster in {pg_clusters_home()}."
            )
    try:
        run_logged([_pg_bin("initdb"), "-D", str(data), "-U", PG_USER, "--auth-local=trust",
                    "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                    "--locale=C.UTF-8"],
                   "initializing the PostgreSQL cluster", ctx.log_file("postgres"), user=user, cwd=_pg_cwd(ctx))
    finally:
        pwfile.unlink(missing_ok=True)


def _pg_argv(ctx: Context) -> list[str]:
    # synchronous_commit and fsync stay on (PostgreSQL's defaults): a commit is on disk before the
    # stream jobs commit its Kafka offsets, so a crash of the server loses no acknowledged row.
    return [_pg_bin("postgres"), "-D", str(_pg_data(ctx)), "-p", str(_pg_port(ctx)),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=200", "-c", "shared_buffers=256MB",
            "-c", "synchronous_commit=on", "-c", "log_min_messages=warning"]


def _pg_healthy(ctx: Context) -> bool:
    result = subprocess.run([_pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(_pg_port(ctx))])
    return result.returncode == 0


def psql(ctx: Context, sql: str, database: str = "postgres", variables: dict[str, str] | None = None) -> str:
    """Run SQL as the superuser over TCP; `:'name'` in `sql` is a safely quoted variable."""
    argv = [_pg_bin("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(_pg_port(ctx)), "-U", PG_USER, "-d", database, "-f", "-"]
    # Variables go in on stdin (`\set`), not as `-v name=value`: a password on the command line
    # shows in `ps` to every user of the machine.
    settings = "".join(f"\\set {key} '{_psql_quoted(value)}'\n" for key, value in (variables or {}).items())
    result = subprocess.run(argv, input=settings + sql, capture_output=True, text=True,
                            env={**os.environ, "PGPASSWORD": ctx.env["POSTGRES_PASSWORD"]})
    if result.returncode != 0:
        raise StackError(f"psql on {database} failed: {result.stderr.strip()}")
    return result.stdout


def _psql_quoted(value: str) -> str:
    """`value` inside single quotes of a psql meta-command: quotes doubled, backslashes escaped."""
    return value.replace("\\", "\\\\").replace("'", "''")


def _pg_bootstrap(ctx: Context) -> None:
    """Roles and databases, created if missing; passwords kept in sync with .env."""
    owner = urlsplit(ctx.settings.streamingdb_url).username or "streaming"
    psql(ctx, """
        SELECT format('CREATE ROLE %I LOGIN', :'owner')
         WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \\gexec
        SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'password') \\gexec
        SELECT format('CREATE DATABASE streamingdb OWNER %I', :'owner')
         WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'streamingdb') \\gexec
        SELECT format('CREATE ROLE %I LOGIN', :'reader')
         WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \\gexec
        SELECT format('ALTER ROLE %I PASSWORD %L', :'reader', :'reader_password') \\gexec
        REVOKE ALL ON DATABASE streamingdb FROM PUBLIC;
        SELECT format('GRANT CONNECT ON DATABASE streamingdb TO %I', :'reader') \\gexec
    """, variables={"owner": owner, "password": ctx.settings.streamingdb_password or "",
                    "reader": STREAMINGDB_READER, "reader_password": ctx.settings.streamingdb_reader_password or ""})
    # Read-only for Superset (and people): SELECT on every table the pipeline's role has made or
    # will make; nothing else (the database refuses DML whatever a UI flag says).
    psql(ctx, """
        SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'reader') \\gexec
        SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'reader') \\gexec
        SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON TABLES TO %I',
                      :'owner', :'reader') \\gexec
    """, database="streamingdb", variables={"owner": owner, "reader": STREAMINGDB_READER})
    for role, (_, databases) in SERVICE_ROLES.items():
        psql(ctx, """
            SELECT format('CREATE ROLE %I LOGIN', :'role')
             WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
            SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \\gexec
        """, variables={"role": role, "password": role_password(ctx, role)})
        for database in databases:
            psql(ctx, """
                SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
                 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec
                SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role') \\gexec
                SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \\gexec
            """, variables={"db": database, "role": role})
            psql(ctx, _HAND_OVER, database=database, variables={"role": role})


# What a database made before the services had roles of their own holds, owned by the superuser,
# handed to the service's role: tables, views, free sequences (a column's go with its table),
# types and routines in `public`, except an extension's members.
_HAND_OVER = """
    SELECT format('ALTER %s %I.%I OWNER TO %I',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                                 WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname, :'role')
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND c.relowner <> :'role'::regrole
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))) \\gexec
    SELECT format('ALTER %s %I.%I OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  n.nspname, t.typname, :'role')
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') AND t.typowner <> :'role'::regrole
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                        AND d.deptype = 'e') \\gexec
    SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'role')
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p') AND p.proowner <> :'role'::regrole
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                        AND d.deptype = 'e') \\gexec
"""


def _database_is_empty(ctx: Context, database: str) -> bool:
    return psql(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=database).strip() == "0"


def _pg_tool(ctx: Context, tool: str, *args: str) -> list[str]:
    return [_pg_bin(tool), "-h", "127.0.0.1", "-p", str(_pg_port(ctx)), "-U", PG_USER, *args]


def migrate_from_template(ctx: Context, database: str, key: str, migrate: Callable[[], None],
                          role: str | None = None) -> bool:
    """Bring a service's metadata database to its schema. An empty database is restored from
    the cache's copy of what the same migrations made (`key`: the service's lock file and
    configuration), in a second or two where the migrations take 20-60 s; otherwise `migrate`
    runs, and when it ran on an empty database its result becomes that copy. The copy is taken
    right after the migrations, before any password from .env or token is stored (a service may
    put in a user with a random password nobody knows, which it replaces). What is restored
    belongs to `role` (default: the service's, `role_of`). Returns whether the database was
    restored."""
    template = cache_dir() / "db-templates" / f"{database}-{key}.dump"
    empty = _database_is_empty(ctx, database)
    env = {**os.environ, "PGPASSWORD": ctx.env["POSTGRES_PASSWORD"]}
    log = ctx.log_file("postgres")
    if empty and template.exists():
        run_logged(_pg_tool(ctx, "pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
                            f"--role={role or role_of(database)}", "-d", database, str(template)),
                   f"restoring the {database} database as migrated before", log, env=env)
        return True
    migrate()
    if empty:
        template.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(f"db-template-{database}"):
            partial = template.with_suffix(f".{os.getpid()}.partial")
            run_logged(_pg_tool(ctx, "pg_dump", "--format=custom", "-d", database, "-f", str(partial)),
                       f"keeping the migrated {database} database for the next fresh start", log, env=env)
            partial.replace(template)
    return False


def service_url(ctx: Context, database: str, with_password: bool = True) -> str:
    """SQLAlchemy URL of a service database, as the service's own role; without the password,
    libpq takes PGPASSWORD."""
    role = role_of(database)
    password = f":{quote(role_password(ctx, role), safe='')}" if with_password else ""
    return f"postgresql+psycopg2://{role}{password}@127.0.0.1:{_pg_port(ctx)}/{database}"


# --- Kafka (KRaft, single node, from Maven Central jars) --------------------------------

KAFKA_CONF = Path(__file__).resolve().parent / "conf" / "kafka"


def _kafka_ports(ctx: Context) -> list[int]:
    port = ctx.port_of("KAFKA_BOOTSTRAP_SERVERS")
    return [port, port + 1]


def _kafka_properties(ctx: Context) -> Path:
    port, controller = _kafka_ports(ctx)
    data = ctx.local / "kafka"
    text = (KAFKA_CONF / "server.properties.template").read_text().format(
        port=port, controller_port=controller, log_dirs=data / "logs",
        admin_password=_jaas_quoted(ctx.env["KAFKA_ADMIN_PASSWORD"]))
    path = data / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # it holds the admin's password
    path.write_text(text)
    return path


def _jaas_quoted(value: str) -> str:
    """`value` inside a JAAS option's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _kafka_accounts(ctx: Context) -> None:
    """The pipeline's Kafka accounts and what each may do, created or updated by the broker's
    admin (passwords from .env, by the environment, never the command line)."""
    run_logged([str(ctx.pipeline_venv / "bin" / "python"), "-m", "ai_tweets.cli", "kafka-accounts"],
               "creating Kafka's accounts and ACLs", ctx.log_file("kafka"), env=ctx.base_env())


def _kafka_java(ctx: Context, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
    return ["java", heap, f"-Dlog4j2.configurationFile={KAFKA_CONF / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={ctx.local / 'kafka'}", "-cp", f"{ctx.local / 'jars' / 'kafka'}/*",
            main, *args]


def _kafka_prepare(ctx: Context) -> None:
    properties = _kafka_properties(ctx)
    if (ctx.local / "kafka" / "logs" / "meta.properties").exists():
        return
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # `--cluster-id=…` in one argument: a random id may begin with "-", which would read as an option.
    run_logged(_kafka_java(ctx, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster}",
                           "-c", str(properties), "--standalone"),
               "formatting Kafka storage", ctx.log_file("kafka"))


def _kafka_argv(ctx: Context) -> list[str]:
    return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            *_kafka_java(ctx, "kafka.Kafka", str(_kafka_properties(ctx)))[2:]]


def _kafka_healthy(ctx: Context) -> bool:
    # Since its start, not in the last lines: a busy broker logs thousands after it.
    return port_open(_kafka_ports(ctx)[0]) and "Kafka Server started" in ctx.since_start("kafka")


# --- MLflow tracking server -------------------------------------------------------------


def _mlflow_argv(ctx: Context) -> list[str]:
    port = ctx.port_of("MLFLOW_TRACKING_URI")
    return [str(ctx.pipeline_venv / "bin" / "mlflow"), "server", "--app-name", "basic-auth",
            "--backend-store-uri", service_url(ctx, "mlflow", with_password=False),
            "--artifacts-destination", str(ctx.local / "mlflow" / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def _mlflow_auth_config(ctx: Context) -> Path:
    return ctx.local / "mlflow" / "basic_auth.ini"


def _mlflow_prepare(ctx: Context) -> None:
    """The basic-auth app's configuration: accounts in their own database; any signed-in user
    may read (the `viewer` account, `_mlflow_accounts`); the pipeline's account is the admin.
    A checked login is cached for 5 minutes: the password hash costs ~0.3 s of CPU per request."""
    path = _mlflow_auth_config(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([
        "[mlflow]", "default_permission = READ",
        f"database_uri = {service_url(ctx, MLFLOW_AUTH_DB, with_password=False)}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access = false", "auth_cache_ttl_seconds = 300", ""]))


def _mlflow_env(ctx: Context) -> dict[str, str]:
    # libpq reads the password from PGPASSWORD, so it never shows in `ps`. The admin account is
    # created at the first start from MLFLOW_AUTH_ADMIN_*; MLFLOW_FLASK_SERVER_SECRET_KEY is in .env.
    return {**ctx.base_env(), "PGPASSWORD": role_password(ctx, "mlflow"),
            "MLFLOW_AUTH_CONFIG_PATH": str(_mlflow_auth_config(ctx)),
            "MLFLOW_AUTH_ADMIN_USERNAME": ctx.settings.mlflow_username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ctx.env["MLFLOW_TRACKING_PASSWORD"],
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def _mlflow_accounts(ctx: Context) -> None:
    """The read-only account for people, created or updated by the pipeline's admin account."""
    run_logged([str(ctx.pipeline_venv / "bin" / "python"), "-m", "ai_tweets.cli", "mlflow-accounts"],
               "creating MLflow's read-only account", ctx.log_file("mlflow"), env=ctx.base_env())


# --- Label Studio (own virtual environment) ---------------------------------------------


def _ls_argv(ctx: Context) -> list[str]:
    # User, password and token come from the environment (_ls_env), never the command line.
    return [str(ctx.label_studio_venv / "bin" / "label-studio"), "start", "--no-browser",
            "--internal-host", "127.0.0.1", "--port", str(ctx.port_of("LABEL_STUDIO_URL"))]


def _ls_env(ctx: Context) -> dict[str, str]:
    env = {key: value for key, value in ctx.base_env().items() if not key.startswith("PG")}
    env.update({
        "DJANGO_DB": "default",  # without it Label Studio silently uses SQLite
        "POSTGRE_NAME": LABEL_STUDIO_DB,
        "POSTGRE_USER": role_of(LABEL_STUDIO_DB),
        "POSTGRE_PASSWORD": role_password(ctx, role_of(LABEL_STUDIO_DB)),
        "POSTGRE_HOST": "127.0.0.1",
        "POSTGRE_PORT": str(_pg_port(ctx)),
        "LABEL_STUDIO_BASE_DATA_DIR": str(ctx.local / "label-studio"),
        "LABEL_STUDIO_USERNAME": ctx.env["LABEL_STUDIO_USERNAME"],
        "LABEL_STUDIO_PASSWORD": ctx.env["LABEL_STUDIO_PASSWORD"],
        "LABEL_STUDIO_USER_TOKEN": ctx.env["LABEL_STUDIO_API_KEY"],
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # Nobody signs up without the organization's invite link (a person the owner invited).
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # Nothing phones home (no network here, and none wanted).
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "PATH": f"{ctx.label_studio_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def _ls_prepare(ctx: Context) -> None:
    """A fresh database is migrated here (or restored: migrate_from_template), not by `label-studio
    start`, which then finds it in step and only creates the user."""
    if _database_is_empty(ctx, LABEL_STUDIO_DB):
        migrate_from_template(ctx, LABEL_STUDIO_DB, content_hash(ctx.root / "requirements" / "label-studio.txt"),
                              lambda: run_logged([str(ctx.label_studio_venv / "bin" / "python"), _ls_manage(ctx),
                                                  "migrate", "--no-color"],
                                                 "migrating the Label Studio database",
                                                 ctx.log_file("label-studio"), env=_ls_env(ctx)))


def _ls_manage(ctx: Context) -> str:
    """Label Studio's Django manage.py, inside its environment."""
    return glob.glob(str(ctx.label_studio_venv / "lib" / "python*" / "site-packages" / "label_studio"
                         / "manage.py"))[0]


def _ls_healthy(ctx: Context) -> bool:
    return http_ok(f"{ctx.settings.label_studio_url}/health", "UP")


def _ls_sync_token(ctx: Context) -> None:
    """Label Studio keeps the token of its first start; make it match .env if that changed."""
    if http_ok(f"{ctx.settings.label_studio_url}/api/version",
               headers={"Authorization": f"Token {ctx.env['LABEL_STUDIO_API_KEY']}"}):
        return
    manage = _ls_manage(ctx)
    code = ("import os; from rest_framework.authtoken.models import Token; from users.models import User; "
            "user = User.objects.get(email=os.environ['LABEL_STUDIO_USERNAME']); "
            "Token.objects.filter(user=user).update(key=os.environ['LABEL_STUDIO_USER_TOKEN'])")
    run_logged([str(ctx.label_studio_venv / "bin" / "python"), manage, "shell", "-c", code],
               "updating the Label Studio API token from .env", ctx.log_file("label-studio"),
               env=_ls_env(ctx))


# --- Superset (own virtual environment; the dashboard is provisioned from the repo) ------


SUPERSET_ADMIN_SCRIPT = Path(__file__).resolve().parents[1] / "superset" / "admin_user.py"
# Werkzeug's PBKDF2 format, which Flask-AppBuilder checks logins against (`check_password_hash`).
_PBKDF2_ITERATIONS = 600_000


def _superset_venv(ctx: Context) -> Path:
    return SUPERSET_ENV.path(ctx.root)


def _superset_port(ctx: Context) -> int:
    # A .env from before Superset joined the stack has no SUPERSET_URL: the settings' default.
    return ctx.port_of("SUPERSET_URL") if "SUPERSET_URL" in ctx.env else urlsplit(ctx.settings.superset_url).port


def _superset_env(ctx: Context) -> dict[str, str]:
    for key in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD"):
        if ctx.env.get(key, PLACEHOLDER) in ("", PLACEHOLDER):
            raise StackError(f"{key} is not set in {ctx.root / '.env'}: set a secret there (see .env.example).")
    env = {key: value for key, value in ctx.base_env().items() if key != "PYTHONPATH"}
    env.update({
        "SUPERSET_CONFIG_PATH": str(ctx.root / "superset" / "superset_config.py"),
        "SUPERSET_HOME": str(ctx.local / "superset"),
        "SUPERSET_METADATA_HOST": "127.0.0.1",
        "SUPERSET_METADATA_PORT": str(_pg_port(ctx)),
        "SUPERSET_DB_USER": role_of("superset"),
        "SUPERSET_DB_PASSWORD": role_password(ctx, role_of("superset")),
        "PATH": f"{_superset_venv(ctx) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def _superset_prepare(ctx: Context) -> None:
    """Migrate the metadata database, create the admin and the roles: once per lock file
    (the marker names its hash) and again if the `superset` database was emptied. The admin's
    password is set from .env by SQL (`_superset_set_admin_password`), in a second: Superset's
    own way loads the whole app, 30 s on 2 cores, on the path of every fresh start."""
    home = ctx.local / "superset"
    home.mkdir(parents=True, exist_ok=True)
    marker = home / f".initialized-{content_hash(ctx.root / 'requirements' / 'superset.txt')}"
    migrated = psql(ctx, "SELECT to_regclass('public.ab_user') IS NOT NULL", database="superset").strip() == "t"
    if marker.exists() and migrated:
        return
    superset, env, log = str(_superset_venv(ctx) / "bin" / "superset"), _superset_env(ctx), ctx.log_file("superset")

    def migrate() -> None:
        run_logged([superset, "db", "upgrade"], "migrating the Superset database", log, env=env)
        run_logged([superset, "init"], "initializing Superset roles and permissions", log, env=env)
        # The copy of the migrated database keeps the admin with a password nobody knows; the one
        # from .env replaces it below, on this start and on every start restored from the copy.
        _superset_admin(ctx, "creating the Superset admin", password=secrets.token_urlsafe(32))

    key = content_hash(ctx.root / "requirements" / "superset.txt", ctx.root / "superset" / "superset_config.py",
                       SUPERSET_ADMIN_SCRIPT)
    migrate_from_template(ctx, "superset", key, migrate)
    if not _superset_set_admin_password(ctx):  # a database migrated without its admin
        _superset_admin(ctx, "creating the Superset admin")
    for stale in home.glob(".initialized-*"):
        stale.unlink()
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def _superset_argv(ctx: Context) -> list[str]:
    # One gthread worker: enough for a local dashboard, and one process to stop.
    # No control socket: gunicorn would put it in ~/.gunicorn.
    return [str(_superset_venv(ctx) / "bin" / "gunicorn"), "--no-control-socket", "--workers", "1",
            "--worker-class", "gthread",
            "--threads", "8", "--timeout", "120", "--bind", f"127.0.0.1:{_superset_port(ctx)}",
            "--limit-request-line", "0", "--limit-request-field_size", "0", "superset.app:create_app()"]


def _superset_sync_admin(ctx: Context) -> None:
    """Superset keeps the admin password of its first start; make it match .env if that changed."""
    body = json.dumps({"username": "admin", "password": ctx.env["SUPERSET_ADMIN_PASSWORD"], "provider": "db"})
    request = urllib.request.Request(f"{ctx.settings.superset_url}/api/v1/security/login", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30).close()
        return
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return  # not a password problem: provisioning reports it
    _superset_set_admin_password(ctx)


def superset_password_hash(password: str) -> str:
    """`password` as Werkzeug stores it (`pbkdf2:sha256:<iterations>$<salt>$<hex>`), made with
    the standard library: the stack sets Superset's admin password without loading Superset."""
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), _PBKDF2_ITERATIONS).hex()
    return f"pbkdf2:sha256:{_PBKDF2_ITERATIONS}${salt}${digest}"


def _superset_set_admin_password(ctx: Context) -> bool:
    """Set the admin's password to SUPERSET_ADMIN_PASSWORD by SQL (the hash goes in on stdin);
    False if there is no admin to set it for."""
    updated = psql(ctx, "UPDATE ab_user SET password = :'hash', changed_on = now() WHERE username = 'admin' "
                        "RETURNING id", database="superset",
                   variables={"hash": superset_password_hash(ctx.env["SUPERSET_ADMIN_PASSWORD"])})
    return bool(updated.strip())


def _superset_admin(ctx: Context, label: str, password: str | None = None) -> None:
    """Create the admin (or set its password) with Superset's own code; the password goes by the
    environment, never argv: SUPERSET_ADMIN_PASSWORD from .env unless `password` is given."""
    env = _superset_env(ctx)
    if password is not None:
        env["SUPERSET_ADMIN_PASSWORD"] = password
    run_logged([str(_superset_venv(ctx) / "bin" / "python"), str(SUPERSET_ADMIN_SCRIPT)],
               label, ctx.log_file("superset"), env=env)


def _superset_provision(ctx: Context) -> None:
    """The streamingdb connection and the "AI tweets" dashboard, from superset/ (idempotent)."""
    _superset_sync_admin(ctx)
    run_logged([str(ctx.pipeline_venv / "bin" / "python"), "-m", "ai_tweets.dashboard"],
               "provisioning the Superset dashboard", ctx.log_file("superset"), env=ctx.base_env())


# --- Airflow 3 (api-server, scheduler, dag-processor, triggerer) -------------------------


def _airflow_home(ctx: Context) -> Path:
    return ctx.local / "airflow"


def _airflow_env(ctx: Context) -> dict[str, str]:
    home = _airflow_home(ctx)
    api = ctx.settings.airflow_url
    return {
        **ctx.base_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ctx.root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ctx.root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The default starts 32 LocalExecutor workers; 2 cores want few.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": service_url(ctx, "airflow"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API_AUTH__JWT_SECRET": ctx.env["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__API__SECRET_KEY": ctx.env["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__CORE__FERNET_KEY": ctx.env["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        # A DAG file is parsed again when it changes (seen at the next refresh, by its mtime) and
        # otherwise every 10 min, not every 30 s: each parse imports the pipeline's DAG modules, which
        # cost the idle stack more CPU than any other process.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # Spark jobs run in local mode (SPARK_MASTER's default) next to the worker; workers use
        # the pipeline's python.
        "PYSPARK_PYTHON": str(ctx.pipeline_venv / "bin" / "python"),
        "SPARK_JARS_DIR": str(ctx.local / "jars" / "spark"),
    }


def _airflow_prepare(ctx: Context) -> None:
    home = _airflow_home(ctx)
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": ctx.env["AIRFLOW_ADMIN_PASSWORD"]}))
    passwords.chmod(0o600)
    migrate_from_template(ctx, "airflow", content_hash(ctx.root / "requirements.txt"), lambda: run_logged(
        [str(ctx.pipeline_venv / "bin" / "airflow"), "db", "migrate"], "migrating the Airflow database",
        ctx.log_file("airflow-apiserver"), env=_airflow_env(ctx)))


def _airflow_health(ctx: Context) -> dict:
    return http_json(f"{ctx.settings.airflow_url}/api/v2/monitor/health") or {}


def _airflow_component(key: str) -> Callable[[Context], bool]:
    def healthy(ctx: Context) -> bool:
        return _airflow_health(ctx).get(key, {}).get("status") == "healthy"

    return healthy


def _airflow(command: str, *args: str) -> Callable[[Context], list[str]]:
    return lambda ctx: [str(ctx.pipeline_venv / "bin" / "airflow"), command, *args]


# --- Model serving (the champion, following the alias; the challenger beside it) ----------


def _serving_state(ctx: Context) -> Path:
    return ctx.local / "run" / "model-serving.json"


def _serving_healthy(ctx: Context) -> bool:
    """Waiting for a first champion counts as healthy; serving must answer /ping."""
    try:
        state = json.loads(_serving_state(ctx).read_text())
    except (OSError, ValueError):
        return False
    if state.get("state") == "waiting":
        return True
    return state.get("state") == "serving" and http_ok(f"{ctx.settings.model_serving_url}/ping")


PIPELINE_INSTALLS: tuple[Step, ...] = (install_uv, install_pipeline_env, install_spark_jars)

# In start order: each is spawned once its own prepare step and those of the services before
# it are done, so the `first` ones (what `make demo` needs first) come first: on a first start
# Airflow would otherwise wait for Label Studio's migration (90 s, against Airflow's 40 s).
SERVICES: list[Service] = [
    Service(
        name="postgres",
        installs=(install_postgres_server,),
        prepare=_pg_prepare,
        argv=_pg_argv,
        healthy=_pg_healthy,
        after_start=_pg_bootstrap,
        clean=_pg_clean,
        cwd=_pg_cwd,
        url=lambda ctx: f"postgresql://127.0.0.1:{_pg_port(ctx)}/streamingdb",
        ports=lambda ctx: [_pg_port(ctx)],
        port_setting="STREAMINGDB_URL",
        user=_run_as_postgres(),
        blocks=True,
        first=True,
        stop_signal=signal.SIGINT,  # "fast" shutdown: does not wait for clients
        start_timeout=60,
    ),
    Service(
        name="kafka",
        installs=(install_kafka_jars, *PIPELINE_INSTALLS),  # the pipeline's Python creates the accounts
        prepare=_kafka_prepare,
        argv=_kafka_argv,
        healthy=_kafka_healthy,
        after_start=_kafka_accounts,
        first=True,
        url=lambda ctx: ctx.settings.kafka_bootstrap_servers,
        ports=_kafka_ports,
        port_setting="KAFKA_BOOTSTRAP_SERVERS",
    ),
    Service(
        name="airflow-apiserver",
        installs=PIPELINE_INSTALLS,
        prepare=_airflow_prepare,
        argv=lambda ctx: [*_airflow("api-server")(ctx), "--host", "127.0.0.1",
                          "--port", str(ctx.port_of("AIRFLOW_URL")), "--workers", "1"],
        env=_airflow_env,
        healthy=_airflow_component("metadatabase"),
        url=lambda ctx: ctx.settings.airflow_url,
        ports=lambda ctx: [ctx.port_of("AIRFLOW_URL")],
        port_setting="AIRFLOW_URL",
        first=True,
    ),
    Service(name="airflow-scheduler", installs=PIPELINE_INSTALLS, argv=_airflow("scheduler"),
            env=_airflow_env, healthy=_airflow_component("scheduler"), first=True),
    Service(name="airflow-dag-processor", installs=PIPELINE_INSTALLS, argv=_airflow("dag-processor"),
            env=_airflow_env, healthy=_airflow_component("dag_processor"), first=True),
    Service(name="airflow-triggerer", installs=PIPELINE_INSTALLS, argv=_airflow("triggerer"),
            env=_airflow_env, healthy=_airflow_component("triggerer"), first=True),
    Service(
        name="mlflow",
        installs=PIPELINE_INSTALLS,
        prepare=_mlflow_prepare,
        argv=_mlflow_argv,
        env=_mlflow_env,
        healthy=lambda ctx: http_ok(f"{ctx.settings.mlflow_tracking_uri}/health", "OK"),
        after_start=_mlflow_accounts,
        url=lambda ctx: ctx.settings.mlflow_tracking_uri,
        ports=lambda ctx: [ctx.port_of("MLFLOW_TRACKING_URI")],
        port_setting="MLFLOW_TRACKING_URI",
    ),
    Service(
        name="model-serving",
        installs=PIPELINE_INSTALLS,
        prepare=lambda ctx: _serving_state(ctx).unlink(missing_ok=True),
        argv=lambda ctx: [str(ctx.pipeline_venv / "bin" / "python"), "-m", "ai_tweets.cli", "serve",
                          "--state-file", str(_serving_state(ctx))],
        healthy=_serving_healthy,
        url=lambda ctx: ctx.settings.model_serving_url,
        ports=lambda ctx: [ctx.port_of(setting) for setting in ("MODEL_SERVING_URL", "MODEL_SHADOW_URL")
                           if ctx.env.get(setting, "").strip()],  # the challenger's too, with shadow scoring
        port_setting="MODEL_SERVING_URL",
        own_port_settings=("MODEL_SHADOW_URL",),
    ),
    Service(
        name="label-studio",
        installs=(install_uv, install_label_studio_env),
        prepare=_ls_prepare,
        argv=_ls_argv,
        env=_ls_env,
        healthy=_ls_healthy,
        after_start=_ls_sync_token,
        url=lambda ctx: ctx.settings.label_studio_url,
        ports=lambda ctx: [ctx.port_of("LABEL_STUDIO_URL")],
        port_setting="LABEL_STUDIO_URL",
        start_timeout=300,
    ),
    Service(
        name="superset",
        installs=(install_uv, install_superset_env, *PIPELINE_INSTALLS),
        prepare=_superset_prepare,
        argv=_superset_argv,
        env=_superset_env,
        healthy=lambda ctx: http_ok(f"{ctx.settings.superset_url}/health", "OK"),
        after_start=_superset_provision,
        url=lambda ctx: ctx.settings.superset_url,
        ports=lambda ctx: [_superset_port(ctx)],
        port_setting="SUPERSET_URL",
    ),
]
