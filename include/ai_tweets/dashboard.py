"""The Superset dashboard "AI tweets", provisioned as code from `superset/dashboard/`.

The bundle there is Superset's own export format (YAML: databases, datasets, charts,
dashboards). `provision_dashboard` makes the live Superset match it through the REST API:
it creates or updates the `streamingdb` connection (host and database from STREAMINGDB_URL,
as the read-only role `streaming_reader` with STREAMINGDB_READER_PASSWORD, never stored in the
bundle), then the datasets, charts and dashboard.
Idempotent: every object is keyed by the UUID in its YAML, so a second run overwrites in
place and keeps the ids. The charts read tables that the stages write (see `prepare_sources`);
nothing here computes or copies their numbers.

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

from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import CLASSIFY_TABLES, LABEL_COUNTS, LEARNING_CURVE, MODEL_QUALITY, SPOT_CHECK_TABLES
from stackbase.settings import (
    PROJECT_ROOT,
    STREAMINGDB_READER,
    Settings,
    SettingsError,
    load_settings,
)

log = logging.getLogger(__name__)

BUNDLE_DIR = PROJECT_ROOT / "superset" / "dashboard"
DATABASE_FILE = "databases/streamingdb.yaml"
# What the stages write for the dashboard: label counts, each trained version's quality, the learning curve.
DASHBOARD_TABLES = (LABEL_COUNTS, MODEL_QUALITY, LEARNING_CURVE, *SPOT_CHECK_TABLES)
# One import per object type, in dependency order; Superset checks `type` in metadata.yaml.
IMPORTS = (("database", "Database"), ("dataset", "SqlaTable"), ("chart", "Slice"), ("dashboard", "Dashboard"))


class DashboardError(RuntimeError):
    """Superset refused or failed a step; the message says which and what to do."""


def prepare_sources(settings: Settings) -> None:
    """Every table the datasets read, created if missing, so that a dashboard provisioned before
    the pipeline ran shows empty charts, not errors. The stages fill them: classify its own
    tables, prepare and annotate `label_counts`, train `model_quality`, `make quality`
    `learning_curve`, the spot-check `retweet_precision`."""
    with connect(settings) as conn:
        ensure_tables(conn, *CLASSIFY_TABLES, *DASHBOARD_TABLES)


# --- the bundle -----------------------------------------------------------------------------


def sqlalchemy_uri(settings: Settings) -> str:
    """The connection as Superset stores it: STREAMINGDB_URL's host and database, as the
    read-only role (the database refuses DML, whatever Superset's flags say), with psycopg2 and
    a masked password (the real one goes in the import's `passwords` field)."""
    parts = urlsplit(settings.streamingdb_url)
    user = quote(STREAMINGDB_READER, safe="")
    return f"postgresql+psycopg2://{user}:XXXXXXXXXX@{parts.hostname}:{parts.port or 5432}{parts.path}"


def bundle_files(settings: Settings, bundle: Path = BUNDLE_DIR) -> dict[str, str]:
    """The bundle's YAML files by path, with this installation's values filled in:
    `${streamingdb_sqlalchemy_uri}` (the connection) and `${model_name}` (MODEL_NAME, which the
    model quality chart filters on; settings allow only letters, digits, '.', '_' and '-')."""
    files = {path.relative_to(bundle).as_posix(): path.read_text()
             for path in sorted(bundle.rglob("*.yaml"))}
    if DATABASE_FILE not in files or "metadata.yaml" not in files:
        raise DashboardError(f"{bundle} is not a Superset bundle: {DATABASE_FILE} or metadata.yaml is missing.")
    values = {"streamingdb_sqlalchemy_uri": sqlalchemy_uri(settings), "model_name": settings.model_name}
    try:
        return {name: Template(text).substitute(values) for name, text in files.items()}
    except (KeyError, ValueError) as exc:
        known = ", ".join(f"${{{key}}}" for key in values)
        raise DashboardError(f"{bundle}: a file has a placeholder other than {known} ({exc}); "
                             f"write a literal $ as $$.") from exc


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
    password = password or settings.superset_admin_password
    if not password:
        raise DashboardError("SUPERSET_ADMIN_PASSWORD is not set: set it in .env (see .env.example).")
    return Superset(settings.superset_url, username, password)


def provision_dashboard(settings: Settings | None = None, username: str = "admin", password: str | None = None,
                        bundle: Path = BUNDLE_DIR) -> dict:
    """Make Superset match the bundle; returns the dashboard's id, URL and chart ids by name."""
    settings = settings or load_settings()
    prepare_sources(settings)
    files = bundle_files(settings, bundle)
    if not settings.streamingdb_reader_password:
        raise DashboardError("STREAMINGDB_READER_PASSWORD is not set: Superset reads streamingdb as the "
                             f"read-only role {STREAMINGDB_READER} with it.")
    passwords = {DATABASE_FILE: settings.streamingdb_reader_password}
    superset = login(settings, username, password)
    for kind, object_type in IMPORTS:
        superset.import_bundle(kind, bundle_zip(files, object_type), passwords)
    dashboard_uuid = next(_uuid_of(text) for name, text in files.items() if name.startswith("dashboards/"))
    dashboard = dashboard_of(superset, dashboard_uuid)
    charts = superset.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    return {"dashboard_id": dashboard["id"], "url": f"{superset.url}/superset/dashboard/{dashboard['id']}/",
            "charts": {chart["slice_name"]: chart["id"] for chart in charts}}


def dashboard_of(superset: Superset, dashboard_uuid: str) -> dict:
    found = superset.find("dashboard", "uuid", dashboard_uuid)
    if len(found) != 1:
        raise DashboardError(f"expected one dashboard with uuid {dashboard_uuid}, found {len(found)}; "
                             f"run `python -m ai_tweets.dashboard` to provision it.")
    return found[0]


def chart_data(settings: Settings | None = None, dashboard_id: int | str = "ai-tweets", username: str = "admin",
               password: str | None = None) -> dict[str, list[dict]]:
    """Run every chart's saved query through /api/v1/chart/data; the records it returns (after
    Superset's post-processing, e.g. one row per x value of a line chart), by chart name."""
    settings = settings or load_settings()
    superset = login(settings, username, password)
    data = {}
    for chart in superset.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]:
        answer = superset.get(f"/api/v1/chart/{chart['id']}/data/", format="json", type="full")
        data[chart["slice_name"]] = [row for result in answer["result"] for row in result["data"]]
    return data


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = provision_dashboard()
    except (DashboardError, SettingsError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"dashboard \"AI tweets\": {result['url']} ({len(result['charts'])} charts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
