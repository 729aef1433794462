"""`make quality`'s verdicts from a run's figures: the issue's bars, and how the sampling
strategies compare (figures made up here; the run itself is `benchmarks/quality.py`)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from test_settings import GOOD

from ai_tweets import quality
from stackbase.settings import load_settings

WEAK = {"f1_all": 0.779, "f1_sure": 0.888}


def loop(strategy: str, f1s: dict[int, float]) -> quality.Loop:
    made = quality.Loop(strategy, load_settings(GOOD), baselines={quality.WEAK: WEAK})
    for number, (labels, f1) in enumerate(f1s.items()):
        figures = {"f1_all": f1, "f1_sure": f1 + 0.1}
        made.rounds.append(quality.Round(strategy, number, labels, labels, 0, str(number + 1), number == 0, "weak",
                                         figures, "1", figures, 1.0))
    return made


def test_the_verdicts_compare_every_strategy_from_100_labels():
    run = quality.QualityRun("r", datetime.now(UTC), "made up", {
        "uncertainty": loop("uncertainty", {0: 0.795, 50: 0.80, 100: 0.83, 150: 0.84}),
        "disagreement": loop("disagreement", {0: 0.795, 50: 0.81, 100: 0.82, 150: 0.85}),
        "random": loop("random", {0: 0.795, 50: 0.79, 100: 0.81}),
    })
    lines = quality.verdicts(run)
    assert lines[0].startswith("PASS  0 gold labels: champion F1 0.795 ≥ weak labels' 0.779")
    assert lines[1].startswith("PASS  ≤ 400 gold labels: champion F1 0.840"), lines[1]
    assert lines[2] == ("FAIL  target within 400 gold labels: best champion F1 0.840 on all rows (target 0.85), "
                        "0.940 on sure rows (target 0.92)"), lines[2]
    assert lines[3] == "PASS  uncertainty ≥ random at every round from 100 labels (1 rounds)"
    assert lines[4] == ("INFO  disagreement / uncertainty / random, F1 of the newest version: "
                        "100: 0.820 / 0.830 / 0.810; 150: 0.850 / 0.840 / –")


def test_the_learning_curve_spans_its_figures_and_draws_the_bar_and_targets(tmp_path):
    run = quality.QualityRun("r", datetime.now(UTC), "made up", {
        "uncertainty": loop("uncertainty", {0: 0.795, 50: 0.80, 100: 0.83}),
        "random": loop("random", {0: 0.795, 50: 0.79, 100: 0.81}),
    })
    run.loops["uncertainty"].baselines["keyword baseline"] = {"f1_all": 0.775, "f1_sure": 0.864}
    figure = quality.learning_curve_figure(run)
    every, sure = figure.axes
    labels = {line.get_label(): line for line in every.get_lines()}
    assert labels["bar: weak + 0.05"].get_ydata()[0] == WEAK["f1_all"] + 0.05
    assert labels["target 0.85"].get_ydata()[0] == 0.85
    assert {line.get_label() for line in sure.get_lines()} >= {"target 0.92", "uncertainty", "random"}
    assert "bar: weak + 0.05" not in {line.get_label() for line in sure.get_lines()}
    low, high = every.get_ylim()
    assert 0.74 <= low <= 0.775 and 0.85 <= high <= 0.88  # zoomed on the figures, not 0–1
    assert sure.get_ylim()[0] >= 0.84
    path = quality.plot_learning_curve(run, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_f1_difference_comes_with_a_paired_bootstrap_interval():
    rng = np.random.default_rng(1)
    labels = rng.random(1000) < 0.2
    good = np.where(rng.random(1000) < 0.9, labels, ~labels)  # 10 % of rows flipped
    worse = np.where(rng.random(1000) < 0.8, labels, ~labels)
    assert quality.f1_difference(labels, good, good) == (0.0, 0.0, 0.0)
    difference, low, high = quality.f1_difference(labels, good, worse)
    assert low < difference < high and low > 0  # far apart: the interval excludes 0
    assert high - low < 0.2
    small, small_low, small_high = quality.f1_difference(labels[:100], good[:100], worse[:100])
    assert small_high - small_low > high - low  # fewer rows, wider interval
    assert quality.f1_difference(labels, ~good, good)[2] < 0
    with pytest.raises(ValueError, match="1000 labels, 999"):
        quality.f1_difference(labels, good[:999], good)


def test_the_verdicts_give_each_difference_its_interval_when_the_run_kept_predictions():
    rng = np.random.default_rng(2)
    labels = rng.random(600) < 0.2

    def noisy(flip: float) -> np.ndarray:
        return np.where(rng.random(600) < flip, ~labels, labels).astype(int)

    run = quality.QualityRun("r", datetime.now(UTC), "made up", {
        "uncertainty": loop("uncertainty", {0: 0.795, 100: 0.83}),
        "random": loop("random", {0: 0.795, 100: 0.81}),
    }, labels=labels)
    weak = noisy(0.12)
    run.loops["uncertainty"].baseline_predicted[quality.WEAK] = weak
    for strategy in run.loops:
        for r in run.loops[strategy].rounds:
            r.predicted = r.champion_predicted = noisy(0.08)
    zero, within, _, compared, info = quality.verdicts(run)
    for line, champion in ((zero, run.loops["uncertainty"].rounds[0]), (within, run.loops["uncertainty"].rounds[1])):
        difference, low, high = quality.f1_difference(labels, champion.champion_predicted, weak)
        assert low < high
        assert line.endswith(f"(difference {difference:+.3f}, 95% interval {low:+.3f} to {high:+.3f})"), line
    assert compared == "PASS  uncertainty ≥ random at every round from 100 labels (1 rounds)"
    assert info.startswith("INFO  uncertainty − random, F1 of the newest version: 100 labels: difference ")
