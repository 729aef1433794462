"""One round of the active-learning loop on the real stack (the short form of `make quality`):
replay → Kafka → Spark → prepare → train, then the annotate stage pushes the newest model's
most uncertain tweets, a simulated annotator answers them in Label Studio as its own user,
pull, train again, and both versions are scored on held-out rows.

Generated tweets with the generator's truth as the answers, so it runs on any machine; the
real development set is `make quality`'s."""

from __future__ import annotations

import pytest
from psycopg import sql

from ai_tweets import quality
from ai_tweets.annotation import label_studio_client, project_title
from ai_tweets.storage import connect
from ai_tweets.tables import identifier, split_table_name

pytestmark = pytest.mark.usefixtures("local_stack")


@pytest.fixture(scope="module")
def loop(settings):
    data = quality.generated_set(count=3_000, held_out=400, seed=31)
    run_id = f"test{quality.uuid.uuid4().hex[:6]}"
    loop = quality.Loop("uncertainty", quality.loop_settings("uncertainty", quality.FIRST_VERSION + 50, run_id))
    lines: list[str] = []
    quality.run_loop(loop, data, rounds=1, per_round=20, epochs=3, progress=lines.append)
    yield loop, data, lines
    quality.reset(loop.settings)


def test_one_round_pushes_annotates_pulls_retrains_and_scores(loop):
    loop, data, lines = loop
    first, second = loop.rounds
    assert (first.number, first.gold_labels) == (0, 0) and first.promoted, "the first version is the champion"
    assert second.number == 1 and second.gold_labels >= 20 and second.pushed >= 20
    assert second.model_version != first.model_version
    for result in loop.rounds:
        assert set(result.model) == {f"{m}_{p}" for m in ("precision", "recall", "f1") for p in ("all", "sure")}
        assert 0.0 < result.model["f1_all"] <= 1.0
        assert len(result.predicted) == len(result.champion_predicted) == len(data.evaluation)
    assert set(loop.baselines) == set(loop.baseline_predicted) == {"keyword baseline", "weak labels (LFs + LabelModel)"}
    assert any("round 1" in line for line in lines)


def test_the_gold_labels_are_the_simulated_annotators_and_match_the_answers(loop):
    loop, data, _ = loop
    settings = loop.settings
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT text, gold_label, gold_labeled_by FROM {t} WHERE gold_label IS NOT NULL").format(
            t=identifier(split_table_name(split, settings))) for split in quality.SPLITS)
    with connect(settings) as conn:
        rows = conn.execute(union).fetchall()
        counts = dict(conn.execute(
            "SELECT label_source, sum(tweets) FROM label_counts WHERE dataset_version = %s AND label <> 'abstain' "
            "GROUP BY 1", (settings.dataset_version,)).fetchall())
    assert len(rows) == loop.rounds[-1].gold_labels
    assert {who for _, _, who in rows} == {quality.annotator_email(settings)}
    assert all(data.answers[quality.normalized_text(text)] == label for text, label, _ in rows)
    assert counts["gold"] == len(rows) and counts["weak"] > 0, "the dashboard's label counts are up to date"
    client = label_studio_client(settings)
    project = next(p for p in client.projects.list(title=project_title(settings)) if p.title == project_title(settings))
    assert "Label 0 for everything else" in project.expert_instruction, "the labeling guide is the instructions"


def test_the_learning_curve_is_recorded_plotted_and_logged(loop, tmp_path):
    loop, data, _ = loop
    run = quality.QualityRun("test-" + loop.settings.tweets_topic, quality.datetime.now(quality.UTC),
                             data.description, {"uncertainty": loop}, labels=data.evaluation.labels)
    quality.record_curve(loop.settings, run)
    with connect(loop.settings) as conn:
        rows = conn.execute("SELECT round, gold_labels, f1_all FROM learning_curve WHERE run_id = %s ORDER BY round",
                            (run.run_id,)).fetchall()
        conn.execute("DELETE FROM learning_curve WHERE run_id = %s", (run.run_id,))
        conn.commit()
    assert [(r, g) for r, g, _ in rows] == [(r.number, r.gold_labels) for r in loop.rounds]
    plot = quality.plot_learning_curve(run, tmp_path / "curve.png")
    assert plot.stat().st_size > 10_000
    run.plot = plot
    from mlflow import MlflowClient

    mlflow_run = quality.log_to_mlflow(loop.settings, run)
    artifacts = {a.path for a in MlflowClient(loop.settings.mlflow_uri()).list_artifacts(mlflow_run, "plots")}
    assert artifacts == {"plots/curve.png"}
    report = quality.report_markdown(run)
    assert "| gold labels |" in report
    assert "0 gold labels: champion F1" in report and "95% interval" in report, "each verdict has its interval"
