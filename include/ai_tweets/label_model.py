"""Weak supervision, second half: Snorkel's LabelModel, which combines the labeling functions'
votes (`labeling`) into one weak label and P(AI) per tweet; fitted, applied, and kept as bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from snorkel.labeling.model import LabelModel

from ai_tweets.tables import ABSTAIN, AI, NOT_AI


def fit_label_model(L_train: np.ndarray, seed: int = 0, epochs: int = 500,  # noqa: N803 - Snorkel's name
                    class_balance: list[float] | None = None) -> LabelModel:
    """Snorkel's LabelModel (binary) fitted on `L_train`, seeded: the same matrix gives the same model.

    `class_balance` is the prior [P(NOT_AI), P(AI)]; by default it is estimated from the LFs'
    majority vote. (Snorkel's own default, 50/50, is far from a stream where AI is rare, and
    with it the model explains the negative LFs' large coverage by making them fire on AI too.)
    """
    if len(L_train) == 0:
        raise ValueError("cannot fit the label model on an empty label matrix: the training split has no "
                         "tweets yet (capture some, then run dedup and split first)")
    model = LabelModel(cardinality=2, verbose=False)
    model.fit(L_train, class_balance=class_balance or majority_class_balance(L_train), progress_bar=False,
              n_epochs=epochs, seed=seed, log_freq=epochs)
    return model


def majority_class_balance(L: np.ndarray, floor: float = 0.01) -> list[float]:
    """[P(NOT_AI), P(AI)] among the rows where the LFs' majority vote is not a tie, within [floor, 1-floor]."""
    ai, not_ai = (L == AI).sum(axis=1), (L == NOT_AI).sum(axis=1)
    decided = int((ai != not_ai).sum())
    share = float((ai > not_ai).sum() / decided) if decided else 0.5
    share = min(max(share, floor), 1 - floor)
    return [1 - share, share]


def weak_labels(model: LabelModel, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weak_label, weak_prob) per row. weak_label is ABSTAIN where every LF abstained, else the
    model's label, a tie going to NOT_AI (a fixed rule: precision on AI first). weak_prob is
    P(AI) from `predict_proba`; where every LF abstained that is the model's class prior."""
    if len(L) == 0:
        return np.empty(0, dtype=int), np.empty(0, dtype=float)
    probs = model.predict_proba(L)[:, AI]
    labels = model.predict(L, tie_break_policy="abstain")
    labels[labels == ABSTAIN] = NOT_AI
    labels[(L == ABSTAIN).all(axis=1)] = ABSTAIN
    return labels.astype(int), probs.astype(float)


def dump_label_model(model: LabelModel) -> bytes:
    """The fitted model as bytes (Snorkel's own `save`: a pickle; load only bytes you trust)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "label_model.pkl"
        model.save(str(path))
        return path.read_bytes()


def load_label_model(data: bytes) -> LabelModel:
    """A model from `dump_label_model` bytes; it predicts exactly as the dumped one did."""
    model = LabelModel(cardinality=2, verbose=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "label_model.pkl"
        path.write_bytes(data)
        model.load(str(path))
    return model
