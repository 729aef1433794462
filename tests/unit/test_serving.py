"""Model serving's supervisor: where it listens and where it checks itself."""

from __future__ import annotations

import pytest

from ai_tweets.serving import ServingSupervisor
from stackbase.settings import load_settings

ENV = {"STREAMINGDB_URL": "postgresql://streaming@127.0.0.1:55432/streamingdb", "KAFKA_BOOTSTRAP_SERVERS": "h:1",
       "MLFLOW_TRACKING_URI": "http://m:1", "LABEL_STUDIO_URL": "http://l:1", "AIRFLOW_URL": "http://a:1"}


@pytest.mark.parametrize(("url", "bind", "listens", "checks"), [
    ("http://127.0.0.1:5001", None, "127.0.0.1", "127.0.0.1"),  # the local stack: its URL's host
    ("http://model-serving:5001", "0.0.0.0", "0.0.0.0", "127.0.0.1"),  # a container: every interface
    ("http://model-serving:5002", None, "model-serving", "model-serving"),
])
def test_the_supervisor_listens_on_bind_and_checks_itself_where_it_listens(url, bind, listens, checks):
    supervisor = ServingSupervisor(load_settings({**ENV, "MODEL_SERVING_URL": url}), bind=bind)
    assert (supervisor.host, supervisor.local_host, supervisor.port) == (listens, checks, int(url.rsplit(":", 1)[1]))
