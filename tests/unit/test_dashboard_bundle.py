"""The dashboard bundle, offline: placeholders filled in from the settings, and every reference
between its files (database ← datasets ← charts ← dashboard layout) resolves."""

from __future__ import annotations

import json

import pytest
import yaml
from test_settings import GOOD

from ai_tweets.dashboard import BUNDLE_DIR, DATABASE_FILE, DashboardError, bundle_files
from stackbase.settings import load_settings

ENV = {**GOOD, "STREAMINGDB_URL": "postgresql://streaming@db.example:6543/streamingdb", "MODEL_NAME": "tweets.model-2"}


@pytest.fixture(scope="module")
def bundle() -> dict[str, dict]:
    files = bundle_files(load_settings(ENV))
    return {name: yaml.safe_load(text) for name, text in files.items()}


def of_kind(bundle: dict[str, dict], folder: str) -> dict[str, dict]:
    return {config["uuid"]: config for name, config in bundle.items() if name.startswith(folder)}


def test_placeholders_are_filled_in(bundle):
    assert bundle[DATABASE_FILE]["sqlalchemy_uri"] == \
        "postgresql+psycopg2://streaming_reader:XXXXXXXXXX@db.example:6543/streamingdb"  # the read-only role
    assert "s3cret" not in json.dumps(bundle)
    assert "${" not in json.dumps(bundle)
    quality = next(chart for chart in of_kind(bundle, "charts/").values()
                   if chart["slice_name"] == "Model quality: gold vs weak labels")
    assert [(f["subject"], f["operator"], f["comparator"]) for f in quality["params"]["adhoc_filters"]] == \
        [("model_name", "==", "tweets.model-2")]
    query = json.loads(quality["query_context"])["queries"][0]
    assert query["filters"] == [{"col": "model_name", "op": "==", "val": "tweets.model-2"}]


def test_every_reference_resolves(bundle):
    databases, datasets = of_kind(bundle, "databases/"), of_kind(bundle, "datasets/")
    charts, dashboards = of_kind(bundle, "charts/"), of_kind(bundle, "dashboards/")
    assert len(databases) == 1 and len(dashboards) == 1
    assert len(set(databases) | set(datasets) | set(charts) | set(dashboards)) == \
        len(databases) + len(datasets) + len(charts) + len(dashboards), "every uuid is unique"
    assert {dataset["database_uuid"] for dataset in datasets.values()} == set(databases)
    assert {chart["dataset_uuid"] for chart in charts.values()} == set(datasets), "every dataset is used"
    for chart in charts.values():
        assert chart["params"]["viz_type"] == chart["viz_type"]
        assert json.loads(chart["query_context"])["queries"], chart["slice_name"]
    placed = {item["meta"]["uuid"]: item["meta"]["sliceName"]
              for item in next(iter(dashboards.values()))["position"].values()
              if isinstance(item, dict) and item.get("type") == "CHART"}
    assert placed == {uuid: chart["slice_name"] for uuid, chart in charts.items()}, "every chart is placed once"


def test_an_unknown_placeholder_is_refused(tmp_path):
    for name in (DATABASE_FILE, "metadata.yaml", "charts/x.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((BUNDLE_DIR / DATABASE_FILE).read_text() if name == DATABASE_FILE else
                                     "slice_name: costs ${dollars}\n")
    with pytest.raises(DashboardError, match="placeholder other than"):
        bundle_files(load_settings(ENV), tmp_path)
