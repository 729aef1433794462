"""Shadow scoring without the stack: the challenger's answers (or its silence) over HTTP, the
comparison with the champion's scores, the rows recorded, and the supervisor of the shadow."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ai_tweets import shadow
from ai_tweets.serving import Score, ServingSupervisor, shadow_state_file
from stackbase.settings import SettingsError, load_settings

ENV = {"STREAMINGDB_URL": "postgresql://streaming@127.0.0.1:55432/streamingdb", "KAFKA_BOOTSTRAP_SERVERS": "h:1",
       "MLFLOW_TRACKING_URI": "http://m:1", "MODEL_SERVING_URL": "http://127.0.0.1:5001",
       "LABEL_STUDIO_URL": "http://l:1", "AIRFLOW_URL": "http://a:1"}


class Challenger(BaseHTTPRequestHandler):
    """Calls a text AI when it says "model"; refuses any request with a text that says "refuse"."""

    requests: list[int] = []

    def do_POST(self):  # noqa: N802 - the handler's name
        texts = [row[0] for row in json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                 ["dataframe_split"]["data"]]
        Challenger.requests.append(len(texts))
        if any("refuse" in text for text in texts):
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error_code": "BAD_REQUEST"}')
            return
        body = json.dumps({"predictions": [{"ai_probability": 0.9 if "model" in t else 0.2,
                                            "label": int("model" in t), "model_version": "8"} for t in texts]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def challenger():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Challenger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Challenger.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def champion(label: int, probability: float) -> Score:
    return Score(probability, label, "7")


def test_the_challenger_scores_in_requests_and_a_refused_request_counts_as_unscored(challenger):
    texts = ["a model paper", "lunch", "refuse this", "another model", "dinner"]
    scores = shadow.score(challenger, texts, request_size=2)
    assert Challenger.requests == [2, 2, 1]
    assert [s.label if s else None for s in scores] == [1, 0, None, None, 0]
    assert {s.model_version for s in scores if s} == {"8"}


def test_nothing_listening_means_no_shadow_and_the_url_is_left_alone_a_while(monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
    now = [1000.0]
    assert shadow.score(url, ["a"], 10, clock=lambda: now[0]) is None
    calls = []
    monkeypatch.setattr(shadow, "invoke", lambda *args: calls.append(args) or [])
    now[0] += shadow.RECHECK_SECONDS - 1
    assert shadow.score(url, ["a"], 10, clock=lambda: now[0]) is None and calls == [], "not asked again yet"
    now[0] += 2
    assert shadow.score(url, [], 10, clock=lambda: now[0]) == []


def test_texts_past_the_time_budget_are_unscored(challenger):
    ticks = iter([0.0, 0.0, 1.0, 20.0, 21.0])  # silence check, deadline, chunk 1, chunks 2 and 3 too late
    scores = shadow.score(challenger, ["model a", "b", "c"], request_size=1, budget=15, clock=lambda: next(ticks))
    assert [s is not None for s in scores] == [True, False, False] and Challenger.requests == [1]


def test_the_comparison_counts_each_way_and_keeps_the_most_apart():
    keys = [(n, f"tweet {n}", f"user{n}") for n in range(6)]
    ours = [champion(1, 0.95), champion(0, 0.10), champion(1, 0.55), "refused: HTTP 400", champion(0, 0.45),
            champion(0, 0.3)]
    theirs = [Score(0.05, 0, "8"), Score(0.9, 1, "8"), Score(0.6, 1, "8"), Score(0.9, 1, "8"), Score(0.52, 1, "8"),
              None]
    found = shadow.compare(keys, ours, theirs, examples=2)
    assert (found.version, found.scored, found.champion_only, found.challenger_only, found.unscored) == \
        ("8", 4, 1, 2, 1)
    assert [e.tweet_id for e in found.examples] == [0, 1], "most apart first, at most `examples`"
    assert found.statistics() == {"shadow_scored": 4, "shadow_champion_only": 1, "shadow_challenger_only": 2,
                                  "shadow_unscored": 1}
    assert found.tags() == {"shadow:8"}
    assert shadow.compare(keys, ours, None) is None, "no shadow: nothing to compare"


def test_a_batch_row_only_when_a_challenger_answered():
    stats = {"ai_rows": 3, "shadow_scored": 100, "shadow_champion_only": 2, "shadow_challenger_only": 5,
             "shadow_unscored": 0}
    assert shadow.split_tags(("7", "shadow:8")) == (["7"], "8")
    assert shadow.batch_row("classify_tweets", 4, ("7", "shadow:8"), stats) == \
        ("classify_tweets", 4, ["7"], "8", 100, 2, 5, 0)
    assert shadow.batch_row("classify_tweets", 5, ("7",), stats) is None


def test_the_shadow_url_is_a_setting_checked_like_the_others():
    assert load_settings(ENV).model_shadow_url is None
    assert load_settings({**ENV, "MODEL_SHADOW_URL": "http://127.0.0.1:5002/"}).model_shadow_url == \
        "http://127.0.0.1:5002"
    with pytest.raises(SettingsError, match="MODEL_SHADOW_URL"):
        load_settings({**ENV, "MODEL_SHADOW_URL": "127.0.0.1:5002"})


def test_the_shadow_supervisor_serves_the_challenger_and_stops_when_there_is_none(tmp_path, monkeypatch):
    settings = load_settings({**ENV, "MODEL_SHADOW_URL": "http://127.0.0.1:5002"})
    state = shadow_state_file(tmp_path / "model-serving.json")
    assert state.name == "model-serving-shadow.json"
    supervisor = ServingSupervisor(settings, state, poll_seconds=0.01, shadow=True)
    assert supervisor.port == 5002
    wanted = iter(["8", "8", None])
    stop = threading.Event()
    states: list[tuple[str, str | None]] = []

    def next_wanted():
        try:
            return next(wanted)
        except StopIteration:
            stop.set()
            return None

    monkeypatch.setattr(supervisor, "wanted", next_wanted)
    monkeypatch.setattr(supervisor, "_spawn", lambda version, port: subprocess.Popen(["sleep", "60"]))
    monkeypatch.setattr(supervisor, "_ready", lambda child, version, port: None)
    real_write = supervisor._write_state
    monkeypatch.setattr(supervisor, "_write_state", lambda s, **extra: (states.append((s, supervisor.version)),
                                                                        real_write(s, **extra)))
    supervisor.run(stop)
    assert states[:2] == [("starting", "8"), ("serving", "8")]
    assert ("waiting", None) in states[2:], states
    assert json.loads(state.read_text())["role"] == "challenger (shadow)"
