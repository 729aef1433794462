"""Shadow scoring on the real stack: two registered versions, the champion served on
MODEL_SERVING_URL and the challenger on MODEL_SHADOW_URL by the same `ai-tweets serve`; the
classify job (Kafka → Spark → both servers) records per batch how often they disagree and a
sample of the disagreements, while the champion alone decides what is written; once the
challenger is promoted, the shadow stops serving it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from capture_helpers import ROOT, Isolated, python_env
from mlflow import MlflowClient

from ai_tweets.capture import produce_tweets
from ai_tweets.classify import query_name
from ai_tweets.generator import generate
from ai_tweets.schema import normalize
from ai_tweets.train import predict_file
from ai_tweets_devkit.models import ModelServer, free_port, register_model
from stackbase.settings import load_settings

pytestmark = pytest.mark.usefixtures("local_stack")

TWEETS, SEED = 3_000, 43


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory):
    """Version 1 the champion, version 2 the challenger, of a model of this module's own, served
    on ports of its own; and a topic of generated tweets."""
    tmp = tmp_path_factory.mktemp("shadow")
    base = Isolated.create(tmp)
    tag = uuid.uuid4().hex[:8]
    env = {**base.env, "MODEL_NAME": f"test-shadow-{tag}", "MODEL_SERVING_URL": f"http://127.0.0.1:{free_port()}",
           "MODEL_SHADOW_URL": f"http://127.0.0.1:{free_port()}", "TWEETS_TOPIC": f"test-shadow-{tag}",
           "DATA_DIR": str(tmp / "data")}
    settings = load_settings(env)
    champion = register_model(settings, seed=31, epochs=3)
    challenger = register_model(settings, seed=32, epochs=1, champion=False)
    MlflowClient(settings.mlflow_uri()).set_registered_model_alias(settings.model_name, "challenger", challenger)
    server = ModelServer(env, tmp / "serving.json")
    server.start()
    server.wait_for("serving", challenger, shadow=True)
    produce_tweets("generate", count=TWEETS, seed=SEED, settings=settings)
    yield Isolated(env=env, settings=settings), server, champion, challenger, tmp
    server.stop()


def called_ai(iso: Isolated, folder, texts: list[str], version: str) -> list[int]:
    """The labels `ai-tweets predict` gives the texts with that version."""
    import pandas as pd

    source, target = folder / f"texts-{version}.jsonl", folder / f"labels-{version}.csv"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    predict_file(source, target, f"models:/{iso.settings.model_name}/{version}", iso.settings)
    return pd.read_csv(target, keep_default_na=False)["label"].tolist()


def test_the_challenger_is_scored_in_the_shadow_and_decides_nothing(shadowed):
    iso, server, champion, challenger, folder = shadowed
    result = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "classify.py"), "--available-now"],
                            env=python_env(**iso.env), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    tweets = [normalize(item.payload) for item in generate(TWEETS, seed=SEED)]
    ids, texts = [t.id for t in tweets], [t.text for t in tweets]
    ours, theirs = called_ai(iso, folder, texts, champion), called_ai(iso, folder, texts, challenger)
    champion_only = {i for i, a, b in zip(ids, ours, theirs, strict=True) if a == 1 and b == 0}
    challenger_only = {i for i, a, b in zip(ids, ours, theirs, strict=True) if a == 0 and b == 1}
    assert champion_only or challenger_only, "the two versions must disagree somewhere for this test to mean much"

    name = query_name(iso.settings)
    batches = iso.query("SELECT champion_versions, challenger_version, scored, champion_only, challenger_only, "
                        "unscored FROM shadow_batches WHERE query_name = %s", (name,))
    assert batches and {(tuple(b[0]), b[1]) for b in batches} == {((champion,), challenger)}
    assert [sum(b[n] for b in batches) for n in (2, 3, 4, 5)] == [TWEETS, len(champion_only), len(challenger_only), 0]
    assert iso.query("SELECT count(*) FROM classify_batches WHERE query_name = %s", (name,))[0][0] == len(batches)

    examples = iso.query("SELECT tweet_id, champion_version, champion_probability, challenger_probability, text "
                         "FROM shadow_disagreements WHERE challenger_version = %s AND tweet_id = ANY(%s)",
                         (challenger, ids))
    assert examples, "a sample of the disagreements is kept"
    assert {row[0] for row in examples} <= champion_only | challenger_only
    by_id = dict(zip(ids, texts, strict=True))
    assert all(row[1] == champion and row[4] == by_id[row[0]] and row[2] != row[3] for row in examples)

    written = dict(iso.query("SELECT tweet_id, model_version FROM ai_tweets WHERE tweet_id = ANY(%s)", (ids,)))
    assert set(written) == {i for i, a in zip(ids, ours, strict=True) if a == 1}, "the champion alone decides"
    assert set(written.values()) == {champion}


def test_a_promoted_challenger_leaves_the_shadow(shadowed):
    iso, server, champion, challenger, _ = shadowed
    MlflowClient(iso.settings.mlflow_uri()).set_registered_model_alias(iso.settings.model_name, "champion",
                                                                       challenger)
    server.wait_for("serving", challenger, timeout=240)
    state = server.wait_for("waiting", None, timeout=60, shadow=True)
    assert state["version"] is None and "no challenger (shadow)" in state["reason"]
