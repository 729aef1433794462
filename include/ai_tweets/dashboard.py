"""The Superset dashboard "AI tweets", provisioned as code from `superset/dashboard/`.

The bundle there is Superset's own export format (YAML: databases, datasets, charts,
dashboards). `provision_dashboard` makes the live Superset match it through the REST API:
it creates or updates the `streamingdb` connection (URI from STREAMINGDB_URL, password from
STREAMINGDB_PASSWORD, never stored in the bundle), then the datasets, charts and dashboard.
Idempotent: every object is keyed by the UUID in its YAML, so a second run overwrites in
place and keeps the ids. It also keeps the dashboard's two derived sources up to date in
streamingdb: the view `dashboard_label_counts` and the table `model_metrics` (the champion's
test metrics, copied from MLflow).

    python -m ai_tweets.dashboard     # what the local stack runs once Superset is healthy
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import zipfile
from pathlib import Path
from string import Template
from urllib.parse import quote, urlsplit

import psycopg
import requests
from psycopg import sql

from ai_tweets.classify import ensure_tables
from ai_tweets.dataset import AI, NOT_AI
from ai_tweets.settings import PROJECT_ROOT, Settings, SettingsError, environment, load_settings
from ai_tweets.storage import connect, table_exists
from ai_tweets.tables import SPLITS, identifier, split_table_name

log = logging.getLogger(__name__)

BUNDLE_DIR = PROJECT_ROOT / "superset" / "dashboard"
DATABASE_FILE = "databases/streamingdb.yaml"
LABEL_COUNTS_VIEW = "dashboard_label_counts"
MODEL_METRICS_TABLE = "model_metrics"
# One import per object type, in dependency order; Superset checks `type` in metadata.yaml.
IMPORTS = (("database", "Database"), ("dataset", "SqlaTable"), ("chart", "Slice"), ("dashboard", "Dashboard"))


class DashboardError(RuntimeError):
    """Superset or MLflow refused or failed a step; the message says which and what to do."""


# --- streamingdb: the dashboard's derived sources -----------------------------------------


def ensure_label_counts_view(conn: psycopg.Connection, settings: Settings) -> None:
    """Weak and gold label counts per split of DATASET_VERSION, as the view the chart reads.
    Recreated on every provisioning, over the split tables that exist (none: an empty view)."""
    label = sql.SQL("CASE {c} WHEN {ai} THEN 'AI' WHEN {not_ai} THEN 'not AI' ELSE 'abstain' END")
    parts = []
    for split in SPLITS:
        table = split_table_name(split, settings)
        if not table_exists(conn, table):
            continue
        for source, column in (("weak", "weak_label"), ("gold", "gold_label")):
            parts.append(sql.SQL(
                "SELECT {version}::integer, {split}::text, {source}::text, {label}, count(*) "
                "FROM {table} WHERE {c} IS NOT NULL GROUP BY 4"
            ).format(version=sql.Literal(settings.dataset_version), split=sql.Literal(split),
                     source=sql.Literal(source), table=identifier(table), c=sql.Identifier(column),
                     label=label.format(c=sql.Identifier(column), ai=sql.Literal(AI), not_ai=sql.Literal(NOT_AI))))
    body = sql.SQL(" UNION ALL ").join(parts) if parts else sql.SQL(
        "SELECT NULL::integer, NULL::text, NULL::text, NULL::text, NULL::bigint WHERE false")
    conn.execute(sql.SQL("CREATE OR REPLACE VIEW {view} (dataset_version, split, label_source, label, tweets) "
                         "AS {body}").format(view=identifier(LABEL_COUNTS_VIEW), body=body))


def ensure_model_metrics_table(conn: psycopg.Connection) -> None:
    """The current champion's test metrics, one row per metric; idempotent: PK (model, metric)."""
    conn.execute(sql.SQL("""
        CREATE TABLE IF NOT EXISTS {table} (
            model_name    text NOT NULL,
            metric        text NOT NULL,
            value         double precision NOT NULL,
            model_version text NOT NULL,
            evaluated_on  text,
            run_id        text NOT NULL,
            synced_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model_name, metric)
        )""").format(table=identifier(MODEL_METRICS_TABLE)))


def champion_metrics(settings: Settings, timeout: float = 10) -> list[tuple]:
    """(model_name, metric, value, version, evaluated_on, run_id) of the champion, from MLflow's
    REST API; empty when no version holds the alias yet."""
    api = f"{settings.mlflow_tracking_uri}/api/2.0/mlflow"
    try:
        answer = requests.get(f"{api}/registered-models/alias", timeout=timeout,
                              params={"name": settings.model_name, "alias": "champion"})
        if answer.status_code in (400, 404):  # no such model or alias yet
            return []
        answer.raise_for_status()
        version = answer.json()["model_version"]
        run = requests.get(f"{api}/runs/get", params={"run_id": version["run_id"]}, timeout=timeout)
        run.raise_for_status()
    except (requests.RequestException, KeyError, ValueError) as exc:
        raise DashboardError(f"could not read the champion of {settings.model_name} from MLflow at "
                             f"{settings.mlflow_tracking_uri}: {exc}. Is MLflow up (`make status`)?") from exc
    data = run.json()["run"]["data"]
    tags = {tag["key"]: tag["value"] for tag in data.get("tags", [])}
    # Training curves (epoch_*) and the promotion bookkeeping are not test metrics.
    return [(settings.model_name, metric["key"], float(metric["value"]), str(version["version"]),
             tags.get("evaluated_on"), version["run_id"])
            for metric in data.get("metrics", []) if not metric["key"].startswith(("epoch_", "promotion."))]


def sync_champion_metrics(conn: psycopg.Connection, settings: Settings) -> int:
    """Replace the model's rows in `model_metrics` by the champion's metrics; returns how many."""
    rows = champion_metrics(settings)
    ensure_model_metrics_table(conn)
    conn.execute(sql.SQL("DELETE FROM {table} WHERE model_name = %s").format(table=identifier(MODEL_METRICS_TABLE)),
                 (settings.model_name,))
    with conn.cursor() as cursor:
        cursor.executemany(sql.SQL(
            "INSERT INTO {table} (model_name, metric, value, model_version, evaluated_on, run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)").format(table=identifier(MODEL_METRICS_TABLE)), rows)
    return len(rows)


def prepare_sources(settings: Settings) -> dict:
    """Every table and view the datasets read, created if missing (empty until the pipeline runs)."""
    with connect(settings) as conn:
        ensure_tables(conn)
        ensure_label_counts_view(conn, settings)
        metrics = sync_champion_metrics(conn, settings)
    return {"champion_metrics": metrics}


# --- the bundle -----------------------------------------------------------------------------


def sqlalchemy_uri(settings: Settings) -> str:
    """The connection as Superset stores it: STREAMINGDB_URL with psycopg2 and a masked password
    (the real one goes in the import's `passwords` field)."""
    parts = urlsplit(settings.streamingdb_url)
    user = quote(parts.username or "streaming", safe="")
    return f"postgresql+psycopg2://{user}:XXXXXXXXXX@{parts.hostname}:{parts.port or 5432}{parts.path}"


def bundle_files(settings: Settings, bundle: Path = BUNDLE_DIR) -> dict[str, str]:
    files = {path.relative_to(bundle).as_posix(): path.read_text()
             for path in sorted(bundle.rglob("*.yaml"))}
    if DATABASE_FILE not in files or "metadata.yaml" not in files:
        raise DashboardError(f"{bundle} is not a Superset bundle: {DATABASE_FILE} or metadata.yaml is missing.")
    files[DATABASE_FILE] = Template(files[DATABASE_FILE]).substitute(
        streamingdb_sqlalchemy_uri=sqlalchemy_uri(settings))
    return files


def bundle_zip(files: dict[str, str], object_type: str) -> bytes:
    """The files as an import zip (one root folder, as Superset exports) of `object_type`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            if name == "metadata.yaml":
                text = re.sub(r"(?m)^type: .*$", f"type: {object_type}", text)
            archive.writestr(f"ai_tweets/{name}", text)
    return buffer.getvalue()


def _uuid_of(text: str) -> str:
    match = re.search(r"(?m)^uuid: (\S+)$", text)
    if not match:
        raise DashboardError("a bundle file has no top-level uuid")
    return match.group(1)


# --- Superset's REST API --------------------------------------------------------------------


class Superset:
    """A logged-in session: JWT bearer for the API, plus the CSRF token its writes require."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 120):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        token = self._call("POST", "/api/v1/security/login", json={
            "username": username, "password": password, "provider": "db", "refresh": False})["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        csrf = self._call("GET", "/api/v1/security/csrf_token/")["result"]
        self.session.headers.update({"X-CSRFToken": csrf, "Referer": self.url})

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise DashboardError(f"Superset at {self.url} is not answering ({exc}). "
                                 f"Is it up (`make status`)?") from exc
        if response.status_code == 401 and path == "/api/v1/security/login":
            raise DashboardError(f"Superset at {self.url} refused the login: check SUPERSET_ADMIN_PASSWORD in .env.")
        if not response.ok:
            raise DashboardError(f"Superset {method} {path} failed: HTTP {response.status_code} "
                                 f"{response.text[:500]}")
        return response.json()

    def get(self, path: str, **params) -> dict:
        return self._call("GET", path, params=params or None)

    def import_bundle(self, kind: str, archive: bytes, passwords: dict[str, str]) -> None:
        self._call("POST", f"/api/v1/{kind}/import/", files={"formData": ("bundle.zip", archive, "application/zip")},
                   data={"overwrite": "true", "passwords": json.dumps(passwords)})

    def find(self, kind: str, column: str, value: str) -> list[dict]:
        query = f"(filters:!((col:{column},opr:eq,value:'{value}')),page_size:100)"
        return self.get(f"/api/v1/{kind}/", q=query)["result"]


def login(settings: Settings, username: str = "admin", password: str | None = None) -> Superset:
    password = password or environment().get("SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        raise DashboardError("SUPERSET_ADMIN_PASSWORD is not set: set it in .env (see .env.example).")
    return Superset(settings.superset_url, username, password)


def provision_dashboard(settings: Settings | None = None, username: str = "admin", password: str | None = None,
                        bundle: Path = BUNDLE_DIR) -> dict:
    """Make Superset match the bundle; returns the dashboard's id, URL and chart ids by name."""
    settings = settings or load_settings()
    sources = prepare_sources(settings)
    files = bundle_files(settings, bundle)
    if not settings.streamingdb_password:
        raise DashboardError("STREAMINGDB_PASSWORD is not set: Superset needs it to read streamingdb.")
    passwords = {DATABASE_FILE: settings.streamingdb_password}
    superset = login(settings, username, password)
    for kind, object_type in IMPORTS:
        superset.import_bundle(kind, bundle_zip(files, object_type), passwords)
    dashboard_uuid = next(_uuid_of(text) for name, text in files.items() if name.startswith("dashboards/"))
    dashboard = dashboard_of(superset, dashboard_uuid)
    charts = superset.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    return {"dashboard_id": dashboard["id"], "url": f"{superset.url}/superset/dashboard/{dashboard['id']}/",
            "charts": {chart["slice_name"]: chart["id"] for chart in charts}, **sources}


def dashboard_of(superset: Superset, dashboard_uuid: str) -> dict:
    found = superset.find("dashboard", "uuid", dashboard_uuid)
    if len(found) != 1:
        raise DashboardError(f"expected one dashboard with uuid {dashboard_uuid}, found {len(found)}; "
                             f"run `python -m ai_tweets.dashboard` to provision it.")
    return found[0]


def chart_rows(settings: Settings | None = None, dashboard_id: int | str = "ai-tweets", username: str = "admin",
               password: str | None = None) -> dict[str, int]:
    """Run every chart's saved query through /api/v1/chart/data; rows returned, by chart name."""
    settings = settings or load_settings()
    superset = login(settings, username, password)
    rows = {}
    for chart in superset.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]:
        answer = superset.get(f"/api/v1/chart/{chart['id']}/data/", format="json", type="full")
        rows[chart["slice_name"]] = sum(result["rowcount"] for result in answer["result"])
    return rows


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = provision_dashboard()
    except (DashboardError, SettingsError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"dashboard \"AI tweets\": {result['url']} ({len(result['charts'])} charts; "
          f"{result['champion_metrics']} champion metrics from MLflow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
