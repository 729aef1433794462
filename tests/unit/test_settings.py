"""Settings: good values load, hostile or missing ones stop with a message naming the variable."""

from __future__ import annotations

import pytest
from psycopg import sql

from ai_tweets.tables import dedup_table_name, identifier, raw_table_name, split_table_name
from stackbase.settings import SettingsError, load_settings, read_env_file, task_retry_seconds, timed_schedules

GOOD = {
    "STREAMINGDB_URL": "postgresql://streaming@127.0.0.1:55432/streamingdb",
    "STREAMINGDB_PASSWORD": "s3cret",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:59092",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "MODEL_SERVING_URL": "http://127.0.0.1:5001",
    "LABEL_STUDIO_URL": "http://127.0.0.1:8081",
    "AIRFLOW_URL": "http://127.0.0.1:8080",
}


def load(**overrides: str):
    return load_settings({**GOOD, **overrides})


def test_defaults():
    settings = load()
    assert settings.tweets_topic == "tweets"
    assert settings.raw_table_prefix == "raw_tweet_dataset"
    assert settings.dataset_version == 0
    assert settings.model_name == "ai-tweet-classifier"
    assert settings.x_bearer_token is None
    assert raw_table_name(settings) == "raw_tweet_dataset_0"
    assert dedup_table_name(settings) == "deduplicated_raw_tweet_dataset_0"
    assert split_table_name("snorkel_train", settings) == "snorkel_train_dataset_0"


def test_version_changes_every_table_name():
    settings = load(DATASET_VERSION="1")
    assert raw_table_name(settings) == "raw_tweet_dataset_1"
    assert split_table_name("test", settings) == "test_dataset_1"


@pytest.mark.parametrize(
    "prefix",
    ['x"; drop table y; --', "Raw", "1abc", "raw-tweets", "raw tweets", "raw;", "ra\u00efw", "a" * 60],
)
def test_hostile_prefix_is_refused(prefix):
    with pytest.raises(SettingsError, match="RAW_TABLE_PREFIX"):
        load(RAW_TABLE_PREFIX=prefix)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATASET_VERSION", "-1"),
        ("DATASET_VERSION", "1; drop"),
        ("DATASET_VERSION", "v2"),
        ("STREAMINGDB_URL", "mysql://x@h:1/streamingdb"),
        ("STREAMINGDB_URL", "postgresql://x@h:1/otherdb"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:1,bad host:2"),
        ("TWEETS_TOPIC", "tweets/../x"),
        ("MLFLOW_TRACKING_URI", "ftp://h"),
        ("MODEL_SERVING_URL", "http://h:notaport"),
        ("MODEL_NAME", "bad name!"),
        ("LABEL_STUDIO_API_KEY", "change-me"),
    ],
)
def test_bad_value_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        load(**{variable: value})


@pytest.mark.parametrize(
    "variable", ["STREAMINGDB_URL", "KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "LABEL_STUDIO_URL"]
)
def test_missing_required_setting_names_it(variable):
    env = {k: v for k, v in GOOD.items() if k != variable}
    with pytest.raises(SettingsError, match=f"{variable} is not set"):
        load_settings(env)


def test_optional_secret_is_required_by_the_stage_that_needs_it():
    settings = load()
    with pytest.raises(SettingsError, match="X_BEARER_TOKEN"):
        settings.require("x_bearer_token")
    assert load(X_BEARER_TOKEN="abc").require("x_bearer_token") == "abc"


def test_conninfo_quotes_the_password():
    settings = load(STREAMINGDB_PASSWORD="it's a \\ pass")
    assert "password='it\\'s a \\\\ pass'" in settings.streamingdb_conninfo
    assert "dbname='streamingdb'" in settings.streamingdb_conninfo
    assert settings.jdbc_url == "jdbc:postgresql://127.0.0.1:55432/streamingdb"


def test_identifier_is_driver_quoted_and_validated():
    assert isinstance(identifier("raw_tweet_dataset_0"), sql.Identifier)
    with pytest.raises(SettingsError):
        identifier('x"; drop table y; --')


def test_env_file_parsing(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# comment\nA=1\nexport B='two words'\n\nC=\"3\"\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "3"}
    path.write_text("not a setting\n")
    with pytest.raises(SettingsError, match=":1:"):
        read_env_file(path)


def test_environment_wins_over_env_file(tmp_path, monkeypatch):
    from stackbase.settings import environment

    path = tmp_path / ".env"
    path.write_text("TWEETS_TOPIC=from_file\nDATASET_VERSION=3\n")
    monkeypatch.setenv("TWEETS_TOPIC", "from_env")
    merged = environment(path)
    assert merged["TWEETS_TOPIC"] == "from_env"
    assert merged["DATASET_VERSION"] == "3"


def test_timed_schedules_are_on_by_default_and_a_bad_value_is_named():
    assert timed_schedules({}) is True
    assert timed_schedules({"AI_TWEETS_TIMED_SCHEDULES": "OFF"}) is False
    with pytest.raises(SettingsError, match="AI_TWEETS_TIMED_SCHEDULES"):
        timed_schedules({"AI_TWEETS_TIMED_SCHEDULES": "sometimes"})


def test_the_task_retry_delay_is_30_s_by_default_and_a_bad_value_is_named():
    assert task_retry_seconds({}) == 30
    assert task_retry_seconds({"AI_TWEETS_TASK_RETRY_SECONDS": "5"}) == 5
    for bad in ("0", "-1", "soon", "99999"):
        with pytest.raises(SettingsError, match="AI_TWEETS_TASK_RETRY_SECONDS"):
            task_retry_seconds({"AI_TWEETS_TASK_RETRY_SECONDS": bad})


def test_secrets_stay_out_of_the_settings_repr():
    settings = load(LABEL_STUDIO_API_KEY="ls-token-123", X_BEARER_TOKEN="x-token-456")
    shown = repr(settings)
    assert "s3cret" not in shown and "ls-token-123" not in shown and "x-token-456" not in shown
    assert settings.streamingdb_password == "s3cret" and "streamingdb_url=" in shown


def test_the_airflow_form_replays_only_files_in_the_replay_folder(tmp_path):
    from ai_tweets.capture import replay_path

    folder, outside = tmp_path / "replay", tmp_path / "secrets"
    folder.mkdir()
    outside.mkdir()
    (folder / "tweets.jsonl").write_text("{}\n")
    (outside / ".env").write_text("PASSWORD=x\n")
    (folder / "link.jsonl").symlink_to(outside / ".env")
    settings = load(REPLAY_DIR=str(folder))
    assert settings.replay_folder == folder
    assert replay_path("tweets.jsonl", settings) == (folder / "tweets.jsonl").resolve()
    assert replay_path(str(folder / "tweets.jsonl"), settings) == (folder / "tweets.jsonl").resolve()
    for hostile in (str(outside / ".env"), "../secrets/.env", "link.jsonl", "/etc/passwd"):
        with pytest.raises(SettingsError, match="is outside REPLAY_DIR"):
            replay_path(hostile, settings)
    for missing in ("", "nothing.jsonl", "."):
        with pytest.raises(SettingsError, match="REPLAY_DIR"):
            replay_path(missing, settings)
    assert load(DATA_DIR=str(tmp_path)).replay_folder == tmp_path / "replay"


def test_unfit_secrets_are_each_named():
    from stackbase.settings import STACK_SECRETS, secret_problems

    good = {name: "a" * 40 for name in STACK_SECRETS} | {"AIRFLOW_FERNET_KEY": "A" * 43 + "="}
    assert secret_problems(good) == []
    bad = {**good, "POSTGRES_PASSWORD": "change-me", "SUPERSET_SECRET_KEY": "short",
           "AIRFLOW_ADMIN_PASSWORD": "Password", "AIRFLOW_FERNET_KEY": "not-a-key" * 4}
    del bad["STREAMINGDB_PASSWORD"]
    problems = secret_problems(bad)
    assert [p.split()[0] for p in problems] == ["STREAMINGDB_PASSWORD", "POSTGRES_PASSWORD",
                                                "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY",
                                                "SUPERSET_SECRET_KEY"]
    assert "placeholder" in problems[1] and "change-me" not in problems[1], "a secret is never echoed whole"
    assert "too short" in problems[4] and "Fernet" in problems[3]


def test_the_check_secrets_command_names_each_and_exits_2(monkeypatch, capsys):
    from ai_tweets.cli import main
    from stackbase.settings import STACK_SECRETS

    for name in STACK_SECRETS:
        monkeypatch.setenv(name, "b" * 40)
    monkeypatch.setenv("AIRFLOW_FERNET_KEY", "B" * 43 + "=")
    monkeypatch.setenv("AI_TWEETS_ENV_FILE", "/nonexistent/.env")
    assert main(["check-secrets"]) == 0
    monkeypatch.setenv("AIRFLOW_JWT_SECRET", "change-me")
    assert main(["check-secrets"]) == 2
    assert "AIRFLOW_JWT_SECRET is a placeholder" in capsys.readouterr().err


def test_the_annotators_whose_labels_count():
    assert load().label_studio_annotators == frozenset()
    assert load(LABEL_STUDIO_ANNOTATORS=" Ann@Example.org, bob@example.org ,").label_studio_annotators == {
        "ann@example.org", "bob@example.org"}
    with pytest.raises(SettingsError, match="LABEL_STUDIO_ANNOTATORS"):
        load(LABEL_STUDIO_ANNOTATORS="ann@example.org, bob")


def test_a_password_is_shown_on_a_terminal_and_only_named_in_a_log():
    from stackbase.settings import shown_secret

    password = load(AIRFLOW_ADMIN_PASSWORD="p" * 40).airflow_admin_password
    assert shown_secret(password, "AIRFLOW_ADMIN_PASSWORD", terminal=True) == "p" * 40
    assert shown_secret(password, "AIRFLOW_ADMIN_PASSWORD", terminal=False) == "AIRFLOW_ADMIN_PASSWORD in .env"
    assert shown_secret(None, "AIRFLOW_ADMIN_PASSWORD", terminal=True) == "AIRFLOW_ADMIN_PASSWORD in .env"
    assert "p" * 40 not in repr(load(AIRFLOW_ADMIN_PASSWORD="p" * 40))
