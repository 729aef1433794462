"""The pipeline's configuration: read from the environment (and `.env`), validated once.

Standard library only: the local-stack manager imports this module before any virtual
environment exists. Every error names the variable at fault and says what is expected.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from stackbase.errors import DeterministicError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Postgres truncates identifiers longer than 63 bytes; the longest derived table name is
# `deduplicated_{prefix}_{version}`, so both parts are bounded to keep it valid.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_IDENTIFIER = 63
_LONGEST_TABLE_PREFIX = "deduplicated_"
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")
_PLACEHOLDER = "change-me"
DEFAULT_SUPERSET_URL = "http://127.0.0.1:8088"
DEFAULT_MLFLOW_USERNAME = "pipeline"  # the pipeline's MLflow account (an admin of its basic-auth app)


class SettingsError(DeterministicError, ValueError):
    """A setting is missing or invalid; the message names the variable."""


# The JIT's first tier only: a Spark job here lives minutes to hours on two cores, and C2's
# compiler threads at start-up cost more than its faster code gains (start 40 % sooner).
DEFAULT_SPARK_DRIVER_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


# Kafka's accounts (SASL/SCRAM): the producer writes the tweets topic, the stream jobs read it;
# the broker's admin creates them and their ACLs (the stacks' Kafka provisioning).
KAFKA_PRODUCER_USER = "ai-tweets-producer"
KAFKA_CONSUMER_USER = "ai-tweets-consumer"
KAFKA_ADMIN_USER = "admin"
KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
KAFKA_SECURITY_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT")

DEFAULT_RETWEETS_PER_15_MIN = 40  # a margin below X's 50, for retweets made by hand on the same account
DEFAULT_RETWEETS_PER_DAY = 100
DEFAULT_REVIEW_MINUTES = 60  # a retweet is worth something while the tweet is fresh
DEFAULT_MIN_PRECISION = 0.9  # automatic live retweets: 9 in 10 right on gold labels
X_USER_CREDENTIALS = ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")
# What `retweet_settings` reads besides the credentials (both stacks pass each one to the pipeline).
RETWEET_VARIABLES = ("X_RETWEET_DRY_RUN", "X_RETWEET_REVIEW", "X_RETWEET_REVIEW_MINUTES", "X_RETWEET_MIN_PRECISION",
                     "X_RETWEETS_PER_15_MIN", "X_RETWEETS_PER_DAY", "X_RETWEET_ALLOW_DOMAINS", "X_RETWEET_DENY_DOMAINS",
                     "X_RETWEET_ANY_DOMAIN")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class RetweetSettings:
    """The retweet policy as configured: X_RETWEET_DRY_RUN (default true), X_RETWEETS_PER_15_MIN
    (default 40), X_RETWEETS_PER_DAY (default 100), X_RETWEET_ALLOW_DOMAINS and
    X_RETWEET_DENY_DOMAINS (comma-separated), X_RETWEET_ANY_DOMAIN (default false),
    X_RETWEET_REVIEW (a person approves each retweet in Airflow; default true in live mode, false
    in a dry run), X_RETWEET_REVIEW_MINUTES (how long a review waits for an answer before its
    candidates expire, default 60), X_RETWEET_MIN_PRECISION (live retweets without review only
    above the champion's threshold for this precision on gold labels; default 0.9, 0 for
    none), and the account's OAuth 1.0a credentials
    (X_USER_CREDENTIALS). `retweet.RetweetPolicy` checks the domains, X's limits and the
    live-mode rule."""

    dry_run: bool = True
    review: bool = False
    review_minutes: int = DEFAULT_REVIEW_MINUTES
    min_precision: float = DEFAULT_MIN_PRECISION
    max_per_15min: int = DEFAULT_RETWEETS_PER_15_MIN
    max_per_day: int = DEFAULT_RETWEETS_PER_DAY
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    any_domain: bool = False
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)


def _boolean(env: Mapping[str, str], name: str, default: str) -> bool:
    value = env.get(name, "").strip().lower() or default
    if value not in _TRUE | _FALSE:
        raise SettingsError(f"{name}={value!r} must be true or false.")
    return value in _TRUE


def retweet_settings(env: Mapping[str, str]) -> RetweetSettings:
    """Read the retweet policy's variables; SettingsError names a malformed one."""
    def boolean(name: str, default: str) -> bool:
        return _boolean(env, name, default)

    def whole(name: str, default: int) -> int:
        value = env.get(name, "").strip() or str(default)
        if not value.isascii() or not value.isdigit() or len(value) > 6:
            raise SettingsError(f"{name}={value!r} must be a whole number.")
        return int(value)

    dry_run = boolean("X_RETWEET_DRY_RUN", "true")
    review_minutes = whole("X_RETWEET_REVIEW_MINUTES", DEFAULT_REVIEW_MINUTES)
    if not 1 <= review_minutes <= 7 * 24 * 60:
        raise SettingsError(f"X_RETWEET_REVIEW_MINUTES={review_minutes} must be from 1 to {7 * 24 * 60} (a week).")
    precision = env.get("X_RETWEET_MIN_PRECISION", "").strip() or str(DEFAULT_MIN_PRECISION)
    try:
        min_precision = float(precision)
    except ValueError:
        min_precision = math.nan
    if not 0.0 <= min_precision <= 1.0:  # NaN included
        raise SettingsError(f"X_RETWEET_MIN_PRECISION={precision!r} must be a number from 0 (no minimum) to 1.")
    return RetweetSettings(
        dry_run=dry_run,
        min_precision=min_precision,
        review=boolean("X_RETWEET_REVIEW", "false" if dry_run else "true"),
        review_minutes=review_minutes,
        max_per_15min=whole("X_RETWEETS_PER_15_MIN", DEFAULT_RETWEETS_PER_15_MIN),
        max_per_day=whole("X_RETWEETS_PER_DAY", DEFAULT_RETWEETS_PER_DAY),
        allow_domains=tuple(env.get("X_RETWEET_ALLOW_DOMAINS", "").split(",")),
        deny_domains=tuple(env.get("X_RETWEET_DENY_DOMAINS", "").split(",")),
        any_domain=boolean("X_RETWEET_ANY_DOMAIN", "false"),
        credentials={name: env[name] for name in X_USER_CREDENTIALS if name in env},
    )


@dataclass(frozen=True)
class Settings:
    streamingdb_url: str
    streamingdb_password: str | None = field(repr=False)
    kafka_bootstrap_servers: str
    tweets_topic: str
    raw_table_prefix: str
    dataset_version: int
    mlflow_tracking_uri: str
    model_name: str
    model_serving_url: str
    label_studio_url: str
    label_studio_api_key: str | None = field(repr=False)
    airflow_url: str
    x_bearer_token: str | None = field(repr=False)
    x_api_base_url: str | None
    x_keywords_file: Path | None
    x_capture_mode: str
    data_dir: Path
    superset_url: str = DEFAULT_SUPERSET_URL
    statement_timeout_seconds: int = 600
    lock_timeout_seconds: int = 30
    classify_stall_seconds: int = 1200
    quarantine_retention_days: int = 30
    batch_log_retention_days: int = 30
    streamingdb_reader_password: str | None = field(default=None, repr=False)  # Superset's read-only role
    label_studio_annotators: frozenset[str] = frozenset()  # whose annotations become gold (empty: anyone's)
    replay_dir: Path | None = None  # the only folder the Airflow form may replay files from
    service_wait_seconds: int = 60  # how long a stage waits for a service that is down, then fails
    # Kafka's authentication: the protocol, and the passwords of the producer's and the consumers' accounts
    kafka_security_protocol: str = "SASL_PLAINTEXT"
    kafka_producer_password: str | None = field(default=None, repr=False)
    kafka_consumer_password: str | None = field(default=None, repr=False)
    kafka_admin_password: str | None = field(default=None, repr=False)  # the stack's provisioning only
    # MLflow's login (its basic-auth app): the pipeline's account, which writes the registry
    mlflow_username: str = DEFAULT_MLFLOW_USERNAME
    mlflow_password: str | None = field(default=None, repr=False)
    retweet: RetweetSettings = field(default_factory=RetweetSettings)
    # The people's logins of the stack (the demo prints where to find them; the pipeline signs in)
    airflow_admin_password: str | None = field(default=None, repr=False)
    superset_admin_password: str | None = field(default=None, repr=False)
    label_studio_username: str | None = None
    label_studio_password: str | None = field(default=None, repr=False)
    # Spark: where the jobs run, the driver's memory, the Kafka connector and JDBC jars (local stack)
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_jars_dir: Path | None = None
    spark_driver_java_options: str = DEFAULT_SPARK_DRIVER_JAVA_OPTIONS
    # A new champion waits for a person's approval in Airflow (PROMOTION_APPROVAL), at most
    # PROMOTION_APPROVAL_HOURS; unanswered, the champion stays.
    promotion_approval: bool = False
    promotion_approval_hours: int = 24
    # Shadow scoring: model serving also serves the `challenger` here, and the classify job
    # scores each batch with it too (recorded, never acted on). None: no shadow scoring.
    model_shadow_url: str | None = None
    spot_check_size: int = 20  # accepted retweets sampled per spot-check run for people to label

    def mlflow_uri(self) -> str:
        """MLFLOW_TRACKING_URI for an MLflow client, with the pipeline's login put where MLflow's
        clients (and the processes this one starts, e.g. `mlflow models serve`) read it: the
        environment's MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."""
        if self.mlflow_password:
            os.environ["MLFLOW_TRACKING_USERNAME"] = self.mlflow_username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = self.mlflow_password
        return self.mlflow_tracking_uri

    @property
    def job_run_dir(self) -> Path:
        """The pid files of the long-running jobs (`ai_tweets.jobs`), which the local stack
        stops with itself."""
        return self.data_dir / "run"

    @property
    def replay_folder(self) -> Path:
        """REPLAY_DIR, by default `replay/` in DATA_DIR."""
        return self.replay_dir or self.data_dir / "replay"

    def require(self, field: str) -> str:
        """The value of an optional secret that the calling stage cannot do without."""
        value = getattr(self, field)
        if not value:
            raise SettingsError(
                f"{field.upper()} is not set: this stage needs it. Set it in the environment "
                f"or in .env (see .env.example)."
            )
        return value

    @property
    def streamingdb_conninfo(self) -> str:
        """libpq connection string for psycopg, with the password from its own variable."""
        parts = urlsplit(self.streamingdb_url)
        fields = {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "dbname": parts.path.lstrip("/"),
            "user": parts.username or "postgres",
        }
        password = self.streamingdb_password or parts.password
        if password:
            fields["password"] = password
        return " ".join(f"{key}={_quote_conninfo(value)}" for key, value in fields.items())

    @property
    def jdbc_url(self) -> str:
        parts = urlsplit(self.streamingdb_url)
        return f"jdbc:postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"


def _quote_conninfo(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional surrounding quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def environment(env_file: Path | None = None) -> dict[str, str]:
    """`.env` values overlaid by the process environment (the environment wins)."""
    path = env_file or Path(os.environ.get("AI_TWEETS_ENV_FILE", PROJECT_ROOT / ".env"))
    merged = read_env_file(path)
    merged.update(os.environ)
    return merged


def validate_identifier(name: str, variable: str) -> str:
    """A lower-case SQL identifier, or SettingsError naming `variable`."""
    if not _IDENTIFIER.fullmatch(name):
        raise SettingsError(
            f"{variable}={name!r} is not a valid table name part: use lower-case letters, "
            f"digits and underscores, starting with a letter or underscore."
        )
    if len(name) > _MAX_IDENTIFIER:
        raise SettingsError(f"{variable}={name!r} is longer than {_MAX_IDENTIFIER} characters.")
    return name


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(
            f"{name} is not set. Set it in the environment or in .env "
            f"(`make up` creates .env from .env.example)."
        )
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value = _optional(env, name)
    if value == _PLACEHOLDER:
        raise SettingsError(
            f"{name} still has the placeholder value {_PLACEHOLDER!r} from .env.example: "
            f"set a real secret (`make up` generates one in .env)."
        )
    return value


def _choice(env: Mapping[str, str], name: str, choices: Sequence[str]) -> str:
    """One of `choices` (the first is the default)."""
    value = env.get(name, "").strip() or choices[0]
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}.")
    return value


def _emails(env: Mapping[str, str], name: str) -> frozenset[str]:
    """A comma-separated list of e-mail addresses, lower-cased."""
    emails = [value.strip().lower() for value in env.get(name, "").split(",") if value.strip()]
    bad = [email for email in emails if not re.fullmatch(r"[^@\s,]+@[^@\s,]+", email)]
    if bad:
        raise SettingsError(f"{name}: {bad[0]!r} is not an e-mail address (a comma-separated list is expected).")
    return frozenset(emails)


def _http_url(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(f"{name}={value!r} must be an http(s) URL such as http://127.0.0.1:5000.")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} has an invalid port.") from exc
    return value.rstrip("/")


def _streamingdb_url(env: Mapping[str, str]) -> str:
    value = _required(env, "STREAMINGDB_URL")
    parts = urlsplit(value)
    if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
        raise SettingsError(
            f"STREAMINGDB_URL={value!r} must be a postgresql:// URL, such as "
            f"postgresql://streaming@127.0.0.1:55432/streamingdb."
        )
    if parts.path.lstrip("/") != "streamingdb":
        raise SettingsError(
            f"STREAMINGDB_URL={value!r} must name the database `streamingdb`, "
            f"not {parts.path.lstrip('/')!r}."
        )
    return value


def _bootstrap_servers(env: Mapping[str, str]) -> str:
    value = _required(env, "KAFKA_BOOTSTRAP_SERVERS")
    servers = [server.strip() for server in value.split(",")]
    bad = [server for server in servers if not _HOST_PORT.fullmatch(server)]
    if bad:
        raise SettingsError(
            f"KAFKA_BOOTSTRAP_SERVERS={value!r}: {bad[0]!r} is not host:port "
            f"(expected e.g. 127.0.0.1:59092,broker2:9092)."
        )
    return ",".join(servers)


def _topic(env: Mapping[str, str]) -> str:
    value = env.get("TWEETS_TOPIC", "").strip() or "tweets"
    if not _KAFKA_TOPIC.fullmatch(value) or value in {".", ".."}:
        raise SettingsError(
            f"TWEETS_TOPIC={value!r} is not a valid Kafka topic name "
            f"(letters, digits, '.', '_', '-', at most 249 characters)."
        )
    return value


DEFAULT_RAW_TABLE_PREFIX = "raw_tweet_dataset"
DEFAULT_DATASET_VERSION = 0


def _dataset_version(env: Mapping[str, str]) -> int:
    value = env.get("DATASET_VERSION", "").strip() or str(DEFAULT_DATASET_VERSION)
    if not value.isdigit() or len(value) > 6:
        raise SettingsError(f"DATASET_VERSION={value!r} must be a whole number from 0 to 999999.")
    return int(value)


def _table_prefix(env: Mapping[str, str], version: int) -> str:
    value = env.get("RAW_TABLE_PREFIX", "").strip() or DEFAULT_RAW_TABLE_PREFIX
    validate_identifier(value, "RAW_TABLE_PREFIX")
    longest = f"{_LONGEST_TABLE_PREFIX}{value}_{version}"
    if len(longest) > _MAX_IDENTIFIER:
        raise SettingsError(
            f"RAW_TABLE_PREFIX={value!r} is too long: the derived table {longest!r} exceeds "
            f"Postgres' {_MAX_IDENTIFIER}-character limit."
        )
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = env.get(name, "").strip() or str(default)
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise SettingsError(f"{name}={value!r} must be a whole number from {low} to {high}.")
    return int(value)


def timed_schedules(env: Mapping[str, str] | None = None) -> bool:
    """AI_TWEETS_TIMED_SCHEDULES: `on` (the default) keeps the DAGs' timed schedules (annotate
    every 10 minutes, the classify watchdog every 5, the health check every 15); `off` leaves
    only their Asset triggers and manual runs. The test stack holds them, so that a test sees
    only the runs it caused."""
    env = environment() if env is None else env
    value = env.get("AI_TWEETS_TIMED_SCHEDULES", "").strip().lower() or "on"
    if value not in {"on", "off"}:
        raise SettingsError(f"AI_TWEETS_TIMED_SCHEDULES={value!r} must be `on` or `off`.")
    return value == "on"


# The secrets of the stacks (local and Compose): their `.env.example` value is the placeholder.
STACK_SECRETS = ("STREAMINGDB_PASSWORD", "STREAMINGDB_READER_PASSWORD", "LABEL_STUDIO_API_KEY",
                 "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY",
                 "LABEL_STUDIO_PASSWORD", "SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD", "SPARK_AUTH_SECRET",
                 "KAFKA_ADMIN_PASSWORD", "KAFKA_PRODUCER_PASSWORD", "KAFKA_CONSUMER_PASSWORD",
                 "MLFLOW_TRACKING_PASSWORD", "MLFLOW_VIEWER_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                 "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "LABEL_STUDIO_DB_PASSWORD", "SUPERSET_DB_PASSWORD")
MIN_SECRET_LENGTH = 16
_WEAK = frozenset({"password", "password1234", "admin", "changeme", "change-me", "secret", "postgres",
                   "airflow", "superset", "letmein", "123456", "12345678", "qwerty"})


def secret_problems(env: Mapping[str, str], names: Sequence[str] = STACK_SECRETS) -> list[str]:
    """Every secret of `names` that is missing, the placeholder, a well-known default or shorter
    than 16 characters, each named; an empty list when all are fit to use."""
    problems = []
    for name in names:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is not set")
        elif value.lower() in _WEAK or value.lower().startswith(_PLACEHOLDER):
            problems.append(f"{name} is a placeholder or a well-known default ({value[:3]}…)")
        elif name == "AIRFLOW_FERNET_KEY" and not _fernet_key(value):
            problems.append(f"{name} is not a Fernet key (32 url-safe base64-encoded bytes; generate one with "
                            f"python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is too short ({len(value)} characters; at least {MIN_SECRET_LENGTH})")
    return problems


def _fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (ValueError, binascii.Error):
        return False


# The role Superset (and any person's SQL) reads streamingdb as: SELECT only, granted by the
# stacks' PostgreSQL bootstrap on every table the pipeline's role creates.
STREAMINGDB_READER = "streaming_reader"


def shown_secret(value: str | None, name: str, terminal: bool | None = None) -> str:
    """A login's password (the setting `name`) for the person at the terminal; where to find it
    when the output goes to a file or a CI log instead, so that no log keeps a secret."""
    import sys

    terminal = sys.stdout.isatty() if terminal is None else terminal
    return value if terminal and value else f"{name} in .env"


def spark_jars_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """SPARK_JARS_DIR: the Kafka connector and JDBC jars the local stack fetched; unset where
    Spark has them already (the Docker image). Read by DAG files at parse time too."""
    value = _optional(environment() if env is None else env, "SPARK_JARS_DIR")
    return Path(value) if value else None


def spark_driver_java_options(env: Mapping[str, str] | None = None) -> str:
    """SPARK_DRIVER_JAVA_OPTIONS: the JVM options of the jobs' driver (in local mode, the whole
    job); empty for the JVM's defaults. Read by DAG files at parse time too."""
    env = environment() if env is None else env
    return env.get("SPARK_DRIVER_JAVA_OPTIONS", DEFAULT_SPARK_DRIVER_JAVA_OPTIONS).strip()


# `ai-tweets serve` tells the model server which registered version it serves (read by the
# model itself, so that every prediction says which version made it).
MODEL_VERSION_ENV = "AI_TWEETS_MODEL_VERSION"


def served_model_version() -> str | None:
    return os.environ.get(MODEL_VERSION_ENV) or None


def process_environment(**extra: str) -> dict[str, str]:
    """This process's environment with `extra` on top, for a child process the pipeline starts."""
    return {**os.environ, **extra}


def task_retry_seconds(env: Mapping[str, str] | None = None) -> int:
    """AI_TWEETS_TASK_RETRY_SECONDS: how long an Airflow task that failed on a service waits
    before its first retry (default 30; each later retry waits twice as long, up to 10 minutes).
    The test stack shortens it, so that an outage test does not sit out the production delay."""
    return _whole_number(environment() if env is None else env, "AI_TWEETS_TASK_RETRY_SECONDS", 30, 1, 3600)


def load_settings(env: Mapping[str, str] | None = None, **overrides: str | int | None) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad one.

    `overrides` (e.g. dataset_version=1 from a DAG parameter) win over the environment and
    are validated the same way.
    """
    env = dict(environment() if env is None else env)
    env.update({key.upper(): str(value) for key, value in overrides.items() if value not in (None, "")})
    version = _dataset_version(env)
    model_name = env.get("MODEL_NAME", "").strip() or "ai-tweet-classifier"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", model_name):
        raise SettingsError(f"MODEL_NAME={model_name!r} must be letters, digits, '.', '_' or '-'.")
    data_dir = Path(env.get("DATA_DIR", "").strip() or ".local/data")
    replay_dir = env.get("REPLAY_DIR", "").strip()
    keywords_file = env.get("X_STREAM_KEYWORDS_FILE", "").strip()
    if keywords_file and not Path(keywords_file).is_file():
        raise SettingsError(f"X_STREAM_KEYWORDS_FILE={keywords_file!r} is not a file.")
    capture_mode = env.get("X_CAPTURE_MODE", "").strip() or "stream"
    if capture_mode not in {"stream", "recent"}:
        raise SettingsError(f"X_CAPTURE_MODE={capture_mode!r} must be `stream` or `recent`.")
    return Settings(
        streamingdb_url=_streamingdb_url(env),
        streamingdb_password=_secret(env, "STREAMINGDB_PASSWORD"),
        kafka_bootstrap_servers=_bootstrap_servers(env),
        tweets_topic=_topic(env),
        raw_table_prefix=_table_prefix(env, version),
        dataset_version=version,
        mlflow_tracking_uri=_http_url(env, "MLFLOW_TRACKING_URI"),
        model_name=model_name,
        model_serving_url=_http_url(env, "MODEL_SERVING_URL"),
        label_studio_url=_http_url(env, "LABEL_STUDIO_URL"),
        label_studio_api_key=_secret(env, "LABEL_STUDIO_API_KEY"),
        airflow_url=_http_url(env, "AIRFLOW_URL"),
        x_bearer_token=_secret(env, "X_BEARER_TOKEN"),
        x_api_base_url=_http_url(env, "X_API_BASE_URL") if env.get("X_API_BASE_URL", "").strip() else None,
        x_keywords_file=Path(keywords_file) if keywords_file else None,
        x_capture_mode=capture_mode,
        data_dir=data_dir if data_dir.is_absolute() else PROJECT_ROOT / data_dir,
        superset_url=_http_url(env, "SUPERSET_URL") if env.get("SUPERSET_URL", "").strip() else DEFAULT_SUPERSET_URL,
        statement_timeout_seconds=_whole_number(env, "STREAMINGDB_STATEMENT_TIMEOUT", 600, 1, 86_400),
        lock_timeout_seconds=_whole_number(env, "STREAMINGDB_LOCK_TIMEOUT", 30, 1, 3_600),
        classify_stall_seconds=_whole_number(env, "CLASSIFY_STALL_SECONDS", 1200, 30, 86_400),
        quarantine_retention_days=_whole_number(env, "QUARANTINE_RETENTION_DAYS", 30, 0, 36_500),
        batch_log_retention_days=_whole_number(env, "BATCH_LOG_RETENTION_DAYS", 30, 0, 36_500),
        streamingdb_reader_password=_secret(env, "STREAMINGDB_READER_PASSWORD"),
        label_studio_annotators=_emails(env, "LABEL_STUDIO_ANNOTATORS"),
        replay_dir=(Path(replay_dir) if Path(replay_dir).is_absolute() else PROJECT_ROOT / replay_dir)
        if replay_dir else None,
        service_wait_seconds=_whole_number(env, "AI_TWEETS_SERVICE_WAIT_SECONDS", 60, 1, 3_600),
        kafka_security_protocol=_choice(env, "KAFKA_SECURITY_PROTOCOL", KAFKA_SECURITY_PROTOCOLS),
        kafka_producer_password=_secret(env, "KAFKA_PRODUCER_PASSWORD"),
        kafka_consumer_password=_secret(env, "KAFKA_CONSUMER_PASSWORD"),
        kafka_admin_password=_secret(env, "KAFKA_ADMIN_PASSWORD"),
        mlflow_username=_optional(env, "MLFLOW_TRACKING_USERNAME") or DEFAULT_MLFLOW_USERNAME,
        mlflow_password=_secret(env, "MLFLOW_TRACKING_PASSWORD"),
        retweet=retweet_settings(env),
        airflow_admin_password=_optional(env, "AIRFLOW_ADMIN_PASSWORD"),
        superset_admin_password=_optional(env, "SUPERSET_ADMIN_PASSWORD"),
        label_studio_username=_optional(env, "LABEL_STUDIO_USERNAME"),
        label_studio_password=_optional(env, "LABEL_STUDIO_PASSWORD"),
        spark_master=_optional(env, "SPARK_MASTER") or "local[2]",
        spark_driver_memory=_optional(env, "SPARK_DRIVER_MEMORY") or "1g",
        spark_jars_dir=spark_jars_dir(env),
        spark_driver_java_options=spark_driver_java_options(env),
        promotion_approval=_boolean(env, "PROMOTION_APPROVAL", "false"),
        promotion_approval_hours=_whole_number(env, "PROMOTION_APPROVAL_HOURS", 24, 1, 24 * 30),
        model_shadow_url=_http_url(env, "MODEL_SHADOW_URL") if _optional(env, "MODEL_SHADOW_URL") else None,
        spot_check_size=_whole_number(env, "SPOT_CHECK_SIZE", 20, 0, 10_000),
    )
