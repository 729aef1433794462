"""The classifier: trains on soft targets, picks its threshold on dev, logs and registers a
pyfunc that matches the Keras model, and moves `champion` only to a better version.

Runs its own MLflow tracking server (SQLite store, local artifacts) on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorflow")

from ai_tweets import model as classifier  # noqa: E402
from ai_tweets.generator import generate  # noqa: E402
from ai_tweets.schema import normalize  # noqa: E402

RESERVED_PORTS = {5000, 5001, 8080, 8081, 55432, 59092}  # the local stack's
TWEETS = 6_000
TRAIN, DEV = slice(0, 4_000), slice(4_000, 5_000)
TEST = slice(5_000, TWEETS)


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.read().decode().strip() == "OK"
    except OSError:
        return False


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server with a model registry, stopped after this module.

    `mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI in os.environ, which child processes
    (the local stack's script, Spark jobs) would inherit: it is put back as it was."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MLflow server did not start; see {root / 'server.log'}:\n"
                                   + (root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and its workers only
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # job-runner children that outlived the server
        except ProcessLookupError:
            pass
        log.close()


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    items = list(generate(TWEETS, seed=3))
    texts = [normalize(item.payload).text for item in items]
    labels = np.array([item.is_ai for item in items], dtype=int)
    return {"texts": texts, "labels": labels, "soft": np.where(labels == 1, 0.9, 0.1)}


def _train(data: dict[str, Any], targets: np.ndarray, **options: Any) -> classifier.TrainedModel:
    return classifier.train(data["texts"][TRAIN], targets[TRAIN], data["texts"][DEV], data["soft"][DEV],
                            dev_labels=data["labels"][DEV], **options)


@pytest.fixture(scope="module")
def trained(data: dict[str, Any]) -> dict[str, classifier.TrainedModel]:
    """The real model on soft targets, an under-trained one (one epoch at a tiny learning rate, and
    trigram weights held near zero by a strong penalty), and one fit to shuffled labels (its
    signal features still leave an F1 of about 0.4)."""
    shuffled = np.random.default_rng(0).permutation(data["soft"])
    return {"good": _train(data, data["soft"], epochs=8),
            "weak": _train(data, data["soft"], epochs=1, learning_rate=1e-4, char_c=1e-6),
            "shuffled": _train(data, shuffled, epochs=1)}


@pytest.fixture(scope="module")
def registry(tracking_uri: str, data: dict[str, Any], trained: dict[str, classifier.TrainedModel],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Register weak, then shuffled, then good, each followed by the promotion decision."""
    from mlflow import MlflowClient

    model_name = f"ai-tweet-classifier-test-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri)
    test_texts, test_labels = data["texts"][TEST], data["labels"][TEST]

    def registry_f1(version: Any) -> float:
        """A registered version's test F1 at its own stored threshold, loaded as the DAG will."""
        output = classifier.load_classifier(f"models:/{model_name}/{version.version}").predict(
            pd.DataFrame({"text": test_texts}))
        return classifier.evaluate(output["label"], test_labels, threshold=0.5)["f1"]  # labels are 0/1

    versions, decisions, scores, metrics = {}, {}, {}, {}
    for kind in ("weak", "shuffled", "good"):
        model = trained[kind]
        metrics[kind] = classifier.evaluate(model.predict(test_texts), test_labels, model.threshold)
        plots_dir = tmp_path_factory.mktemp(f"plots-{kind}")
        plots = [classifier.plot_pr_curve(model.predict(test_texts), test_labels, plots_dir / "pr_curve.png",
                                          model.threshold),
                 classifier.plot_confusion_matrix(metrics[kind], plots_dir / "confusion_matrix.png")]
        versions[kind] = classifier.log_and_register(
            model, {f"test_{key}": value for key, value in metrics[kind].items()},
            tracking_uri=tracking_uri, model_name=model_name, params={"variant": kind}, plots=plots,
            tags={"purpose": "unit test"}, dataset_info={"version": 0, "train_rows": TRAIN.stop,
                                                         "test_rows": TEST.stop - TEST.start},
            experiment_name=f"{model_name}-runs")
        scores[kind] = metrics[kind]["f1"]
        decisions[kind] = classifier.promote_if_better(client, model_name, versions[kind], scores[kind], "f1",
                                                       registry_f1)
    return {"name": model_name, "client": client, "versions": versions, "decisions": decisions,
            "scores": scores, "metrics": metrics}


def test_soft_targets_reach_the_f1_bar_on_the_test_split(registry: dict[str, Any]) -> None:
    metrics = registry["metrics"]["good"]
    assert metrics["f1"] >= 0.85, metrics
    assert metrics["support"] == TEST.stop - TEST.start
    assert metrics["tn"] + metrics["fp"] + metrics["fn"] + metrics["tp"] == metrics["support"]
    assert 0.9 <= metrics["roc_auc"] <= 1.0 and 0.9 <= metrics["pr_auc"] <= 1.0


def test_the_threshold_is_chosen_on_dev_and_stored(data: dict[str, Any], trained: dict[str, Any],
                                                   registry: dict[str, Any], tmp_path: Path) -> None:
    good = trained["good"]
    dev_probabilities = good.predict(data["texts"][DEV])
    assert good.threshold == classifier.choose_threshold(dev_probabilities, data["labels"][DEV])
    dev_f1 = classifier.evaluate(dev_probabilities, data["labels"][DEV], good.threshold)["f1"]
    assert dev_f1 >= classifier.evaluate(dev_probabilities, data["labels"][DEV], 0.5)["f1"]

    version = registry["versions"]["good"]
    run = registry["client"].get_run(version.run_id)
    assert float(run.data.params["threshold"]) == pytest.approx(good.threshold)
    assert run.data.params["dataset.version"] == "0" and run.data.tags["dataset.train_rows"] == "4000"
    config_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{registry['name']}/{version.version}", dst_path=str(tmp_path))
    config = json.loads(next(Path(config_dir).rglob("classifier.json")).read_text())
    assert config["threshold"] == pytest.approx(good.threshold)
    artifacts = {item.path for item in registry["client"].list_artifacts(version.run_id, "plots")}
    assert artifacts == {"plots/pr_curve.png", "plots/confusion_matrix.png"}


def test_a_row_counted_five_times_moves_the_threshold_as_five_rows_would() -> None:
    probabilities = np.array([0.9, 0.8, 0.6, 0.4, 0.3])
    labels = np.array([1, 1, 0, 1, 0])
    weights = np.array([1, 1, 5, 1, 1])
    repeated = np.repeat(np.arange(5), weights)
    assert classifier.choose_threshold(probabilities, labels) == pytest.approx(0.4)
    assert classifier.choose_threshold(probabilities, labels, weights) == pytest.approx(
        classifier.choose_threshold(probabilities[repeated], labels[repeated])) == pytest.approx(0.8)


def test_on_soft_labels_the_threshold_maximizes_the_expected_f1() -> None:
    probabilities = np.array([0.9, 0.8, 0.6, 0.3])
    # expected F1 = 2·Σ_{p≥t} q / (#{p≥t} + Σ q): 2/3, 3/4, 4/5, 2/3 at 0.9, 0.8, 0.6, 0.3
    assert classifier.choose_threshold(probabilities, np.array([1.0, 0.5, 0.5, 0.0])) == pytest.approx(0.6)
    # two tweets the LabelModel finds 40 % likely AI: as doubts they keep the threshold at 0.6;
    # rounded to "not AI" they would pull it up to 0.9
    doubts = np.array([1.0, 0.4, 0.4, 0.0])
    assert classifier.choose_threshold(probabilities, doubts) == pytest.approx(0.6)
    assert classifier.choose_threshold(probabilities, (doubts >= 0.5).astype(int)) == pytest.approx(0.9)
    assert classifier.choose_threshold(probabilities, np.zeros(4)) == classifier.DEFAULT_THRESHOLD


def test_on_hard_labels_the_threshold_is_the_best_f1_of_the_precision_recall_curve() -> None:
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(3)
    for _ in range(50):
        probabilities = np.round(rng.random(200), 2)  # ties, as many rows score alike
        labels = (rng.random(200) < probabilities).astype(int)
        weights = rng.integers(1, 6, 200).astype(float)
        precision, recall, thresholds = precision_recall_curve(labels, probabilities, sample_weight=weights)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        assert classifier.choose_threshold(probabilities, labels, weights) == pytest.approx(
            thresholds[int(np.argmax(f1))])


def test_with_folds_the_threshold_is_placed_on_predictions_for_rows_no_model_saw(data: dict[str, Any]) -> None:
    """Weak targets with errors, and people's labels (weight 5) on some rows, as the train stage
    gives them: the threshold from out-of-fold predictions holds on the test split."""
    rng = np.random.default_rng(1)
    truth = data["labels"][TRAIN]
    targets = data["soft"][TRAIN].copy()
    wrong = rng.random(len(targets)) < 0.1
    targets[wrong] = 1 - targets[wrong]
    gold = rng.random(len(targets)) < 0.1
    targets[gold] = truth[gold]
    labels = np.where(gold, truth, targets >= 0.5).astype(int)
    options = {"epochs": 4, "train_labels": labels, "train_weights": np.where(gold, 5.0, 1.0)}
    plain = _train(data, targets, **options)
    folded = _train(data, targets, threshold_folds=3, **options)
    assert plain.hyperparameters["threshold_from"] == "predictions on dev and train"
    assert folded.hyperparameters["threshold_from"] == "out-of-fold predictions on the training rows (3 folds)"
    texts = data["texts"][TEST]
    assert np.allclose(plain.predict(texts), folded.predict(texts), atol=1e-5), "the same model, seeded"
    assert folded.threshold != pytest.approx(plain.threshold), "a threshold of its own"
    metrics = classifier.evaluate(folded.predict(texts), data["labels"][TEST], folded.threshold)
    assert metrics["f1"] >= 0.85, metrics


def test_the_champion_pyfunc_matches_the_keras_model(data: dict[str, Any], trained: dict[str, Any],
                                                     registry: dict[str, Any]) -> None:
    champion = classifier.load_classifier(f"models:/{registry['name']}@champion")
    texts = data["texts"][TEST]
    output = champion.predict(pd.DataFrame({"text": texts}))
    expected = trained["good"].predict(texts)
    assert list(output.columns) == ["ai_probability", "label"]
    assert output["ai_probability"].between(0, 1).all()
    np.testing.assert_allclose(output["ai_probability"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (output["label"].to_numpy() == (expected >= trained["good"].threshold)).all()
    np.testing.assert_allclose(classifier.predict_texts(champion, texts[:10]), expected[:10], atol=1e-6)


def test_the_pyfunc_tolerates_empty_and_missing_text(registry: dict[str, Any]) -> None:
    champion = classifier.load_classifier(f"models:/{registry['name']}@champion")
    output = champion.predict(pd.DataFrame({"text": ["", None, "   ", "🙏", "New #AI paper https://t.co/x"]}))
    assert len(output) == 5
    assert np.isfinite(output["ai_probability"]).all() and output["ai_probability"].between(0, 1).all()
    assert set(output["label"]) <= {0, 1}
    assert output["ai_probability"][0] == pytest.approx(output["ai_probability"][1])  # None counts as ""


def test_signature_example_and_requirements_are_logged(registry: dict[str, Any], tmp_path: Path) -> None:
    uri = f"models:/{registry['name']}@champion"
    info = mlflow.models.get_model_info(uri)
    assert info.signature == classifier.model_signature()
    assert info.signature.inputs.input_names() == ["text"]
    assert {spec.name: spec.type.name for spec in info.signature.outputs.inputs} == {
        "ai_probability": "double", "label": "long"}
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    example = mlflow.models.Model.load(local / "MLmodel").load_input_example(str(local))
    assert list(example.columns) == ["text"] and len(example) == 2
    requirements = (local / "requirements.txt").read_text().split()
    assert set(requirements) == set(classifier.pip_requirements())
    assert all("==" in requirement for requirement in requirements)
    assert (local / "code" / "ai_tweets" / "model.py").is_file()


def test_champion_moves_only_to_a_better_version(registry: dict[str, Any]) -> None:
    scores, decisions, versions = registry["scores"], registry["decisions"], registry["versions"]
    assert scores["shuffled"] < scores["weak"] < scores["good"], scores  # the premise of this test

    first = decisions["weak"]
    assert first["promoted"] and first["champion_version"] is None and first["alias"] == "champion"
    worse = decisions["shuffled"]
    assert not worse["promoted"] and worse["alias"] == "challenger"
    assert worse["champion_version"] == versions["weak"].version
    assert worse["champion_score"] == pytest.approx(scores["weak"])
    better = decisions["good"]
    assert better["promoted"] and better["champion_score"] == pytest.approx(scores["weak"])

    client, name = registry["client"], registry["name"]
    assert client.get_model_version_by_alias(name, "champion").version == versions["good"].version
    assert client.get_model_version_by_alias(name, "challenger").version == versions["shuffled"].version
    shuffled_run = client.get_run(versions["shuffled"].run_id)
    assert shuffled_run.data.tags["promotion.decision"] == "challenger"
    assert shuffled_run.data.metrics["promotion.promoted"] == 0.0
    assert client.get_model_version(name, versions["good"].version).tags["promotion.promoted"] == "True"


def test_a_version_judged_on_weak_labels_never_replaces_a_champion_judged_on_gold(
        tracking_uri: str, trained: dict[str, classifier.TrainedModel]) -> None:
    from mlflow import MlflowClient

    name = f"ai-tweet-classifier-gate-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri)

    def register(judged_on: str) -> Any:
        return classifier.log_and_register(trained["weak"], {"f1": 0.5}, tracking_uri=tracking_uri, model_name=name,
                                           tags={"evaluated_on": judged_on}, experiment_name=f"{name}-runs")

    gold_champion = register("gold")
    assert classifier.promote_if_better(client, name, gold_champion, 0.5, "f1", lambda _: 0.0,
                                        judged_on="gold")["promoted"]
    asked: list[str] = []

    def champion_score(version: Any) -> float:
        asked.append(version.version)
        return 0.5

    weak = classifier.promote_if_better(client, name, register("weak"), 0.99, "f1", champion_score, judged_on="weak")
    assert not weak["promoted"] and weak["alias"] == "challenger" and asked == []
    assert weak["champion_judged_on"] == "gold" and "gold" in weak["reason"]
    assert client.get_model_version_by_alias(name, "champion").version == gold_champion.version
    gold = classifier.promote_if_better(client, name, register("gold"), 0.6, "f1", champion_score, judged_on="gold")
    assert gold["promoted"] and asked == [gold_champion.version] and "0.600 vs the champion's 0.500" in gold["reason"]


def test_evaluate_counts_and_plots(tmp_path: Path) -> None:
    probabilities = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2]
    labels = [1, 1, 1, 0, 0, 0]
    metrics = classifier.evaluate(probabilities, labels, threshold=0.5)
    assert (metrics["tp"], metrics["fp"], metrics["fn"], metrics["tn"]) == (2, 1, 1, 2)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["support"] == 6
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert classifier.choose_threshold(np.array(probabilities), np.array(labels)) == pytest.approx(0.3)
    assert np.isnan(classifier.evaluate([0.2, 0.7], [0, 0], 0.5)["roc_auc"])
    for path in (classifier.plot_pr_curve(probabilities, labels, tmp_path / "pr.png", 0.5),
                 classifier.plot_confusion_matrix(metrics, tmp_path / "cm.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prediction_batches_do_not_change_results(data: dict[str, Any], trained: dict[str, Any]) -> None:
    texts = data["texts"][TEST][:50] + [None, float("nan")]
    whole = classifier.predict_probabilities(trained["good"].model, texts)
    in_chunks = classifier.predict_probabilities(trained["good"].model, texts, batch_rows=7)
    np.testing.assert_allclose(whole, in_chunks, atol=1e-6)
    assert classifier.predict_probabilities(trained["good"].model, []).shape == (0,)


def test_train_rejects_targets_outside_zero_one(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="train_targets"):
        classifier.train(data["texts"][:10], np.full(10, 2.0), data["texts"][10:20], np.zeros(10))
    with pytest.raises(ValueError, match="lengths"):
        classifier.train(data["texts"][:10], np.zeros(9), data["texts"][10:20], np.zeros(10))


def test_with_approval_a_better_version_waits_and_a_person_decides(
        tracking_uri: str, trained: dict[str, classifier.TrainedModel]) -> None:
    from mlflow import MlflowClient

    name = f"ai-tweet-classifier-approval-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri)

    def register() -> Any:
        return classifier.log_and_register(trained["weak"], {"f1": 0.5}, tracking_uri=tracking_uri, model_name=name,
                                           tags={"evaluated_on": "gold"}, experiment_name=f"{name}-runs")

    def champion() -> str:
        return client.get_model_version_by_alias(name, "champion").version

    first = register()
    assert classifier.promote_if_better(client, name, first, 0.5, "f1", lambda _: 0.0, judged_on="gold",
                                        approval=True)["promoted"], "the first version needs no approval"
    old_metrics = {"f1": 0.5, "precision": 0.6, "recall": 0.43}
    second = register()
    waiting = classifier.promote_if_better(client, name, second, 0.7, "f1", lambda _: old_metrics, judged_on="gold",
                                           approval=True, new_metrics={"f1": 0.7, "precision": 0.8, "recall": 0.62},
                                           compared_rows=240)
    assert not waiting["promoted"] and waiting["awaiting_approval"] and waiting["alias"] == "challenger"
    assert champion() == first.version and "approval" in waiting["reason"]
    pending = classifier.awaiting_approval(client, name)
    assert pending.version == second.version
    assert classifier.comparison_of(pending) == {
        "judged_on": "gold", "rows": 240, "metric": "f1", "champion": {"version": first.version, **old_metrics},
        "challenger": {"version": second.version, "f1": 0.7, "precision": 0.8, "recall": 0.62}}

    approved = classifier.approve_promotion(client, name, second.version, "alice")
    assert approved["promoted"] and champion() == second.version
    tags = client.get_model_version(name, second.version).tags
    assert (tags["promotion.review"], tags["promotion.reviewed_by"], tags["promotion.awaiting_approval"]) == (
        "approved", "alice", "false")
    with pytest.raises(classifier.StalePromotion, match="decided already"):
        classifier.approve_promotion(client, name, second.version, "alice")

    third = register()
    classifier.promote_if_better(client, name, third, 0.9, "f1", lambda _: 0.7, judged_on="gold", approval=True)
    declined = classifier.decline_promotion(client, name, third.version, "bob")
    assert not declined["promoted"] and champion() == second.version and declined["reason"] == "rejected by bob"
    assert classifier.awaiting_approval(client, name, third.version) is None

    fourth, fifth = register(), register()
    classifier.promote_if_better(client, name, fourth, 0.95, "f1", lambda _: 0.7, judged_on="gold", approval=True)
    client.set_registered_model_alias(name, "champion", fifth.version)  # the champion moved meanwhile
    with pytest.raises(classifier.StalePromotion, match=f"champion is now version {fifth.version}"):
        classifier.approve_promotion(client, name, fourth.version, "alice")
    assert champion() == fifth.version
    assert client.get_model_version(name, fourth.version).tags["promotion.review"] == "expired"


def test_character_trigrams_are_unit_length_and_see_inside_hashtags() -> None:
    import tensorflow as tf

    layer = classifier._char_layer()()
    rows = layer(tf.constant(["#DeepLearning for all", "learning", "", "deep learning"]))
    dense = tf.sparse.to_dense(rows).numpy()
    assert dense.shape == (4, classifier.CHAR_BUCKETS)
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), [1.0, 1.0, 0.0, 1.0], atol=1e-6)
    buckets = [set(np.flatnonzero(row)) for row in dense]
    # " learning " has 8 trigrams, "#deeplearning" holds all but the first (" le")
    assert len(buckets[0] & buckets[1]) >= 7
    assert buckets[1] < buckets[3]
