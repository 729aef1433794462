"""Every table of streamingdb: its name, its columns and its DDL, in this one module; the
stages ask it (`storage.ensure_tables` runs the DDL under the schema lock).

Names are validated as SQL identifiers when settings load; here they become
`psycopg.sql.Identifier`s, so no configured name is ever formatted into SQL text.
"""

from __future__ import annotations

from psycopg import sql

from stackbase.settings import Settings, validate_identifier

SPLITS = ("test", "dev", "snorkel_train", "train")

# Labels as the split tables store them: weak labels may abstain, gold labels are 0 or 1.
ABSTAIN, NOT_AI, AI = -1, 0, 1


def raw_table_name(settings: Settings) -> str:
    """`{prefix}_{version}`, e.g. raw_tweet_dataset_0."""
    return validate_identifier(f"{settings.raw_table_prefix}_{settings.dataset_version}", "RAW_TABLE_PREFIX")


def dedup_table_name(settings: Settings) -> str:
    return validate_identifier(f"deduplicated_{raw_table_name(settings)}", "RAW_TABLE_PREFIX")


def split_table_name(split: str, settings: Settings) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return validate_identifier(f"{split}_dataset_{settings.dataset_version}", "DATASET_VERSION")


def identifier(name: str) -> sql.Identifier:
    """A validated table name as a driver-quoted identifier."""
    return sql.Identifier(validate_identifier(name, "table name"))


def lf_summary_table_name(settings: Settings) -> str:
    """The labeling functions' summary of a dataset version."""
    return validate_identifier(f"lf_summary_{settings.dataset_version}", "DATASET_VERSION")


# --- tables that stages write for whoever shows them (the dashboard, `make quality`) -----------

LABEL_COUNTS = "label_counts"  # weak and gold labels per split; prepare and annotate refresh their version's rows
MODEL_QUALITY = "model_quality"  # one row per trained version: how it was judged, on gold and on weak labels
LEARNING_CURVE = "learning_curve"  # `make quality`: F1 on held-out real tweets against gold labels used
LABEL_MODELS = "label_models"  # one row per LabelModel fit: the MLflow run the pipeline itself recorded
REGISTERED_MODELS = "registered_models"  # one row per classifier version the pipeline registered: its files' SHA-256

# --- tables of the stream: fixed names ------------------------------------------------------

QUARANTINE_TABLE = "ingest_quarantine"  # messages that are not valid tweets, byte for byte, with why
AI_TWEETS_TABLE = "ai_tweets"  # what the classifier called AI, exactly once per tweet
TWEET_URLS_TABLE = "tweet_urls"  # the links of the AI tweets, canonical
BATCHES_TABLE = "classify_batches"  # the classify stream's log of micro-batches
RETWEETS_TABLE = "retweets"  # one row per tweet ever considered for a retweet
# What a row of `retweets` says (see `ai_tweets.retweet`): awaiting_review, rejected and expired
# are the review queue's (`ai_tweets.review`).
RETWEET_ACTIONS = ("pending", "retweeted", "would_retweet", "skipped", "failed", "awaiting_review", "rejected",
                   "expired")
_ACTIONS_ARRAY = "ARRAY[" + ", ".join(f"'{action}'::text" for action in RETWEET_ACTIONS) + "]"
GAPS_TABLE = "stream_gaps"  # offsets that expired from Kafka unread, recorded by --on-data-loss record
SHADOW_BATCHES_TABLE = "shadow_batches"  # per micro-batch: how often the challenger disagreed with the champion
SHADOW_DISAGREEMENTS_TABLE = "shadow_disagreements"  # a sample of the tweets they disagreed on
SPOT_CHECKS_TABLE = "spot_checks"  # accepted retweets sampled for people to label (the precision spot-check)
RETWEET_PRECISION_TABLE = "retweet_precision"  # the spot-check's estimate per model version and over all
SPOT_CHECK_TABLES = (SPOT_CHECKS_TABLE, RETWEET_PRECISION_TABLE)
RETWEET_PRECISION_COLUMNS = ("model_version", "labeled", "found_ai", "precision", "low", "high")
# What the classify stage writes (created before its workers run, and by the dashboard beforehand).
CLASSIFY_TABLES = (QUARANTINE_TABLE, AI_TWEETS_TABLE, TWEET_URLS_TABLE, BATCHES_TABLE, RETWEETS_TABLE,
                   SHADOW_BATCHES_TABLE, SHADOW_DISAGREEMENTS_TABLE)

# The columns `classify` writes, in COPY order.
AI_COLUMNS = ("tweet_id", "text", "author_id", "author_handle", "created_at", "ai_probability", "model_name",
              "model_version", "produced_at", "kafka_partition", "kafka_offset")
URL_COLUMNS = ("tweet_id", "canonical_url", "url", "expanded_url", "domain", "is_twitter", "twitter_kind")
BATCH_COLUMNS = ("query_name", "batch_id", "rows_in", "ai_rows", "quarantined", "requests", "model_versions",
                 "latency_ms", "max_produce_to_row_ms")
SHADOW_BATCH_COLUMNS = ("query_name", "batch_id", "champion_versions", "challenger_version", "scored",
                        "champion_only", "challenger_only", "unscored")
SHADOW_DISAGREEMENT_COLUMNS = ("tweet_id", "challenger_version", "champion_version", "champion_probability",
                               "challenger_probability", "text", "author_handle")

# --- the tables of a dataset version: names from settings -------------------------------------

# The raw table: every field of a normalized tweet (`schema.Tweet`), then where Kafka had it.
# (name, type) in COPY order; ingested_at is filled by the database.
RAW_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tweet_id", "bigint PRIMARY KEY"),
    ("text", "text NOT NULL"),
    ("created_at", "timestamptz NOT NULL"),
    ("author_id", "text"),
    ("author_handle", "text"),
    ("lang", "text"),
    ("is_retweet", "boolean NOT NULL"),
    ("is_reply", "boolean NOT NULL"),
    ("hashtags", "text[] NOT NULL"),
    ("mentions", "text[] NOT NULL"),
    ("urls", "jsonb NOT NULL"),
    ("tweet", "json NOT NULL"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
)
RAW_COLUMNS = tuple(name for name, _ in RAW_TABLE_COLUMNS)

# A split table: the raw columns a model and a person need, then its place and its labels.
SPLIT_COLUMNS = ("tweet_id", "text", "created_at", "author_handle", "lang", "is_retweet", "is_reply",
                 "hashtags", "mentions", "urls")
_SPLIT_LABEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("split_rank", "double precision NOT NULL"),
    ("weak_label", f"smallint CHECK (weak_label IN ({ABSTAIN}, {NOT_AI}, {AI}))"),
    ("weak_prob", "real CHECK (weak_prob BETWEEN 0 AND 1)"),
    ("gold_label", f"smallint CHECK (gold_label IN ({NOT_AI}, {AI}))"),
    ("gold_labeled_by", "text"),
    ("gold_labeled_at", "timestamptz"),
    ("annotation_task_id", "bigint"),
    ("annotation_pushed_at", "timestamptz"),
    ("assigned_at", "timestamptz NOT NULL DEFAULT now()"),
)


def _columns(columns: tuple[tuple[str, str], ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                              for name, kind in columns)


def raw_table_ddl(table: str) -> sql.Composed:
    """The raw table of one dataset version; idempotent (primary key tweet_id)."""
    columns = (*RAW_TABLE_COLUMNS, ("ingested_at", "timestamptz NOT NULL DEFAULT now()"))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {t} ({c})").format(t=identifier(table), c=_columns(columns))


def split_table_ddl(table: str) -> sql.Composed:
    """A split table; idempotent (primary key tweet_id). Label columns are nullable: weak labels
    come from the label model, gold labels from people (with who and when)."""
    types = dict(RAW_TABLE_COLUMNS)
    columns = (*((name, types[name]) for name in SPLIT_COLUMNS), *_SPLIT_LABEL_COLUMNS)
    return sql.SQL("CREATE TABLE IF NOT EXISTS {t} ({c})").format(t=identifier(table), c=_columns(columns))


def table_as_select(table: str, select: sql.Composable) -> sql.Composed:
    """A new table filled by `select` (e.g. the deduplicated tweets, built aside then renamed)."""
    return sql.SQL("CREATE TABLE {t} AS {select}").format(t=identifier(table), select=select)


def summary_table_ddl(table: str, definitions: sql.Composable) -> sql.Composed:
    """A per-version summary (the labeling functions' `lf_summary_{v}`): its columns come from
    the summary frame, then when it was computed."""
    return sql.SQL("CREATE TABLE {t} ({definitions}, computed_at timestamptz NOT NULL DEFAULT now())").format(
        t=identifier(table), definitions=definitions)


# Every fixed-name table: its DDL statements, run in order by `storage.ensure_tables`.
DDL: dict[str, tuple[str, ...]] = {
    LABEL_COUNTS: ("""
        CREATE TABLE IF NOT EXISTS label_counts (
            dataset_version integer NOT NULL,
            split           text NOT NULL,
            label_source    text NOT NULL CHECK (label_source IN ('weak', 'gold')),
            label           text NOT NULL CHECK (label IN ('AI', 'not AI', 'abstain')),
            tweets          bigint NOT NULL,
            counted_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (dataset_version, split, label_source, label)
        )""",),
    MODEL_QUALITY: ("""
        CREATE TABLE IF NOT EXISTS model_quality (
            model_name        text NOT NULL,
            model_version     text NOT NULL,
            dataset_version   integer NOT NULL,
            trained_at        timestamptz NOT NULL DEFAULT now(),
            judged_on         text NOT NULL CHECK (judged_on IN ('gold', 'weak')),
            judged_in_words   text NOT NULL,
            f1                double precision NOT NULL,
            precision         double precision NOT NULL,
            recall            double precision NOT NULL,
            gold_f1           double precision,
            gold_rows         integer NOT NULL,
            weak_f1           double precision,
            weak_rows         integer NOT NULL,
            train_gold        integer NOT NULL,
            threshold         double precision NOT NULL,
            promoted          boolean NOT NULL,
            decision          text NOT NULL,
            PRIMARY KEY (model_name, model_version)
        )""",
        # [threshold, precision, tweets] on the gold test rows (`model.precision_curve`); NULL when
        # judged on weak labels: what automatic retweets' threshold is chosen from
        "ALTER TABLE model_quality ADD COLUMN IF NOT EXISTS gold_precision_curve jsonb"),
    LEARNING_CURVE: ("""
        CREATE TABLE IF NOT EXISTS learning_curve (
            run_id          text NOT NULL,
            run_at          timestamptz NOT NULL,
            strategy        text NOT NULL,
            round           integer NOT NULL,
            gold_labels     integer NOT NULL,
            model_version   text NOT NULL,
            champion        boolean NOT NULL,
            f1_all          double precision NOT NULL,
            precision_all   double precision NOT NULL,
            recall_all      double precision NOT NULL,
            f1_sure         double precision NOT NULL,
            PRIMARY KEY (run_id, strategy, round)
        )""",
        # the run's teachers and its bar (weak labels + the margin, `quality.MARGIN_OVER_WEAK`), drawn
        # beside the curve on the dashboard; NULL in runs from before they were recorded
        "ALTER TABLE learning_curve ADD COLUMN IF NOT EXISTS weak_f1_all double precision",
        "ALTER TABLE learning_curve ADD COLUMN IF NOT EXISTS bar_f1_all double precision"),
    REGISTERED_MODELS: ("""
        CREATE TABLE IF NOT EXISTS registered_models (
            model_name      text NOT NULL,
            model_version   text NOT NULL,
            run_id          text NOT NULL,
            sha256          text NOT NULL,
            registered_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model_name, model_version)
        )""",),
    LABEL_MODELS: ("""
        CREATE TABLE IF NOT EXISTS label_models (
            dataset_version integer NOT NULL,
            mlflow_run_id   text NOT NULL,
            fitted_at       timestamptz NOT NULL DEFAULT now(),
            sha256          text,  -- of the pickle; NULL in rows from before it was recorded (not loaded)
            PRIMARY KEY (dataset_version, mlflow_run_id)
        )""", "ALTER TABLE label_models ADD COLUMN IF NOT EXISTS sha256 text"),
    QUARANTINE_TABLE: ("""
        CREATE TABLE IF NOT EXISTS ingest_quarantine (
            target_table    text NOT NULL,
            topic           text NOT NULL,
            kafka_partition integer NOT NULL,
            kafka_offset    bigint NOT NULL,
            message_key     bytea,
            message_value   bytea,
            reason          text NOT NULL,
            quarantined_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (target_table, topic, kafka_partition, kafka_offset)
        )""", "CREATE INDEX IF NOT EXISTS ingest_quarantine_at_idx ON ingest_quarantine (quarantined_at)"),
    AI_TWEETS_TABLE: ("""
        CREATE TABLE IF NOT EXISTS ai_tweets (
            tweet_id       bigint PRIMARY KEY,
            text           text NOT NULL,
            author_id      text,
            author_handle  text,
            created_at     timestamptz NOT NULL,
            ai_probability real NOT NULL CHECK (ai_probability BETWEEN 0 AND 1),
            model_name     text NOT NULL,
            model_version  text,
            classified_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            produced_at    timestamptz,
            kafka_partition integer,
            kafka_offset   bigint
        )""",),
    TWEET_URLS_TABLE: ("""
        CREATE TABLE IF NOT EXISTS tweet_urls (
            tweet_id       bigint NOT NULL REFERENCES ai_tweets (tweet_id) ON DELETE CASCADE,
            canonical_url  text NOT NULL,
            url            text NOT NULL,
            expanded_url   text NOT NULL,
            domain         text,
            is_twitter     boolean NOT NULL,
            twitter_kind   text,
            PRIMARY KEY (tweet_id, canonical_url)
        )""",),
    BATCHES_TABLE: ("""
        CREATE TABLE IF NOT EXISTS classify_batches (
            query_name     text NOT NULL,
            batch_id       bigint NOT NULL,
            rows_in        integer NOT NULL,
            ai_rows        integer NOT NULL,
            quarantined    integer NOT NULL,
            requests       integer NOT NULL,
            model_versions text[] NOT NULL,
            latency_ms     integer NOT NULL,
            max_produce_to_row_ms integer,
            finished_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (query_name, batch_id)
        )""",
        # the watchdog asks for a query's last batch, the retention for old ones
        "CREATE INDEX IF NOT EXISTS classify_batches_finished_idx ON classify_batches (finished_at)"),
    RETWEETS_TABLE: ("""
        CREATE TABLE IF NOT EXISTS retweets (
            tweet_id        bigint PRIMARY KEY,
            decided_at      timestamptz NOT NULL DEFAULT now(),
            action          text NOT NULL,
            reason          text NOT NULL,
            dry_run         boolean NOT NULL,
            author_handle   text,
            ai_probability  double precision,
            domains         text[] NOT NULL,
            response        text,
            completed_at    timestamptz
        )""",
        # the budget counts the recent rows that are not `skipped`
        "CREATE INDEX IF NOT EXISTS retweets_window_idx ON retweets (decided_at) WHERE action <> 'skipped'",
        "ALTER TABLE retweets ADD COLUMN IF NOT EXISTS reviewed_by text",  # who approved or rejected it
        "ALTER TABLE retweets ADD COLUMN IF NOT EXISTS reviewed_at timestamptz",
        # the actions allowed, (re)made only when they changed: a table made before `RETWEET_ACTIONS` grew
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'retweets'::regclass
                           AND conname = 'retweets_action_check'
                           AND pg_get_constraintdef(oid) = $c$CHECK ((action = ANY ({_ACTIONS_ARRAY})))$c$) THEN
                ALTER TABLE retweets DROP CONSTRAINT IF EXISTS retweets_action_check;
                ALTER TABLE retweets ADD CONSTRAINT retweets_action_check CHECK (action = ANY ({_ACTIONS_ARRAY}));
            END IF;
        END $$"""),
    SHADOW_BATCHES_TABLE: ("""
        CREATE TABLE IF NOT EXISTS shadow_batches (
            query_name         text NOT NULL,
            batch_id           bigint NOT NULL,
            champion_versions  text[] NOT NULL,
            challenger_version text NOT NULL,
            scored             integer NOT NULL,  -- tweets both versions scored
            champion_only      integer NOT NULL,  -- called AI by the champion alone
            challenger_only    integer NOT NULL,  -- called AI by the challenger alone
            unscored           integer NOT NULL,  -- tweets the challenger did not answer for
            finished_at        timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (query_name, batch_id)
        )""",
        "CREATE INDEX IF NOT EXISTS shadow_batches_finished_idx ON shadow_batches (finished_at)"),
    SHADOW_DISAGREEMENTS_TABLE: ("""
        CREATE TABLE IF NOT EXISTS shadow_disagreements (
            tweet_id               bigint NOT NULL,
            challenger_version     text NOT NULL,
            champion_version       text,
            champion_probability   real NOT NULL CHECK (champion_probability BETWEEN 0 AND 1),
            challenger_probability real NOT NULL CHECK (challenger_probability BETWEEN 0 AND 1),
            text                   text NOT NULL,
            author_handle          text,
            recorded_at            timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tweet_id, challenger_version)
        )""",
        "CREATE INDEX IF NOT EXISTS shadow_disagreements_recorded_idx ON shadow_disagreements (recorded_at)"),
    SPOT_CHECKS_TABLE: (f"""
        CREATE TABLE IF NOT EXISTS spot_checks (
            tweet_id       bigint PRIMARY KEY,
            action         text NOT NULL,  -- the retweet decision when it was sampled
            ai_probability double precision,
            model_version  text,  -- the version that called it AI
            text           text NOT NULL,
            author_handle  text,
            links          text[] NOT NULL,
            sampled_at     timestamptz NOT NULL DEFAULT now(),
            task_id        bigint,  -- its task in the Label Studio project "Retweet spot-check"
            pushed_at      timestamptz,
            label          smallint CHECK (label IN ({NOT_AI}, {AI})),  -- what a person said
            labeled_by     text,
            labeled_at     timestamptz
        )""",),
    RETWEET_PRECISION_TABLE: ("""
        CREATE TABLE IF NOT EXISTS retweet_precision (
            model_version  text,  -- NULL: over every version
            labeled        integer NOT NULL,
            found_ai       integer NOT NULL,
            precision      double precision NOT NULL,
            low            double precision NOT NULL,  -- the 95 % Wilson score interval
            high           double precision NOT NULL,
            computed_at    timestamptz NOT NULL DEFAULT now()
        )""",),
    GAPS_TABLE: ("""
        CREATE TABLE IF NOT EXISTS stream_gaps (
            query_name      text NOT NULL,
            topic           text NOT NULL,
            kafka_partition integer NOT NULL,
            first_offset    bigint NOT NULL,
            last_offset     bigint NOT NULL,
            detected_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (query_name, topic, kafka_partition, first_offset)
        )""",),
}
