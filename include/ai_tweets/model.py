"""The classifier: a small Keras text model trained on weak and gold labels, evaluated,
logged to MLflow as a pyfunc, registered, and promoted to `champion` when it is better.

Logic only: callers bring the texts and targets (from the split tables) and a tracking URI.

The model contract (ARCHITECTURE.md): the registered model is a pyfunc whose input is a
DataFrame with a `text` column of raw tweet text and whose output holds `ai_probability`
in [0, 1] and `label` (0/1 at the threshold chosen on dev) per row. All preprocessing
(standardization, tokenization, vocabulary) is inside the Keras model, so serving needs
nothing but the saved `.keras` file and the threshold.

TensorFlow, Keras, scikit-learn and matplotlib are imported inside the functions that need
them: importing this module costs only pandas and MLflow's pyfunc (the class below needs it),
about 1.5 s.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # resolved at runtime: MLflow reads the predict type hints

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Stages and `make quality` load models in-process again and again: MLflow's progress bar per
# download would write one line per file of every model into their logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import mlflow.pyfunc  # noqa: E402 - after these defaults

from ai_tweets.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, CLASSIFIER_EXPERIMENT  # noqa: E402
from stackbase import settings as settings_module  # noqa: E402
from stackbase.errors import DeterministicError  # noqa: E402

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

TEXT_COLUMN = "text"
PROBABILITY_COLUMN = "ai_probability"
LABEL_COLUMN = "label"
CHAMPION, CHALLENGER = CHAMPION_ALIAS, CHALLENGER_ALIAS  # the aliases' names live in `tracking`
PREDICT_BATCH_ROWS = 4096  # rows per forward pass: bounds memory on large inputs
DEFAULT_THRESHOLD = 0.5
KERAS_ARTIFACT = "keras_model"
CONFIG_ARTIFACT = "classifier_config"
_KERAS_FILE = "model.keras"
_CONFIG_FILE = "classifier.json"
# The serving environment, pinned to what trained the model; MLflow's inference would list
# every import it sees.
_PINNED_PACKAGES = ("mlflow", "tensorflow-cpu", "keras", "pandas")
_INPUT_EXAMPLE = (
    "New paper: sparse attention for long-context language models, code and weights "
    "https://t.co/AbCdEf1234 #NLP #MachineLearning",
    "Add 150 ml of milk and stir until smooth 🙏",
)


# --- the network ---------------------------------------------------------------------------

def standardize_tweet(texts: Any) -> Any:
    """Lower-case, one token per link (`url_<domain>`), punctuation out; `#`, `@`, `$` kept.

    Keeps what tells AI tweets apart: hashtags (`#ai` is not `ai`), mentions, cashtags, emoji
    and the linked domain; t.co ids would only flood the vocabulary.
    """
    import tensorflow as tf

    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"https?://(?:www\.)?([^/\s]+)\S*", r" url_\1 ")
    for _ in range(3):  # url_t.co -> url_t_co, one dot per pass (domains have few)
        texts = tf.strings.regex_replace(texts, r"(url_[\w-]+)\.", r"\1_")
    texts = tf.strings.regex_replace(texts, r"['’]", "")
    return tf.strings.regex_replace(texts, r"[^\p{L}\p{N}\p{S}\s#@_]", " ")


def _signal_layer() -> type:
    """The Keras layer of vocabulary signals, created on first use (TensorFlow stays unimported
    until a model is built or loaded)."""
    global _SIGNAL_LAYER
    if _SIGNAL_LAYER is None:
        import keras
        import tensorflow as tf

        from ai_tweets.vocabulary import SIGNALS

        class TweetSignals(keras.layers.Layer):
            """Raw texts (shape (None,)) → 0/1 vocabulary signals (`vocabulary.SIGNALS`, RE2
            searches in the graph) and entity counts: log(1 + hashtags, mentions, words) and the
            share of hashtags among the tokens. What the labeling functions look at, as features."""

            def call(self, texts: Any) -> Any:
                texts = tf.reshape(texts, [-1])
                flags = [tf.cast(tf.strings.regex_full_match(texts, f"(?s).*(?:{pattern}).*"), "float32")
                         for _, pattern in SIGNALS]
                tokens = tf.strings.split(texts)

                def count(pattern: str) -> Any:
                    matches = tf.cast(tf.strings.regex_full_match(tokens, pattern), "float32")
                    return tf.reduce_sum(matches, axis=1)

                total = tf.cast(tokens.row_lengths(), "float32")
                tags, mentions, links = count(r"[#＃]\w.*"), count(r"@\w.*"), count(r"https?://.*")
                words = tf.maximum(total - tags - mentions - links, 0.0)
                counts = [tf.math.log1p(tags), tf.math.log1p(mentions), tf.math.log1p(words),
                          tf.math.divide_no_nan(tags, total)]
                return tf.stack(flags + counts, axis=1)

            def compute_output_shape(self, input_shape: Any) -> tuple:
                return (input_shape[0], len(SIGNALS) + 4)

        _SIGNAL_LAYER = TweetSignals
    return _SIGNAL_LAYER


_SIGNAL_LAYER: type | None = None
CHAR_BUCKETS = 2 ** 18  # hashed character trigrams: few collisions among the ~100,000 seen in 10,000 tweets


def _char_layer() -> type:
    """The Keras layer of character trigrams, created on first use (as `_signal_layer`)."""
    global _CHAR_LAYER
    if _CHAR_LAYER is None:
        import keras
        import tensorflow as tf

        class CharTrigrams(keras.layers.Layer):
            """Raw texts (shape (None,)) → which character trigrams each standardized word has
            (`standardize_tweet`, each word padded with a space on both sides), hashed into
            `buckets` and scaled to unit length: a sparse row per text. Sees inside hashtags,
            handles and compound or misspelled words (#deeplearning, @OpenAI_news,
            neuralnet), which whole words do not."""

            def __init__(self, buckets: int = CHAR_BUCKETS, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.buckets = buckets

            def call(self, texts: Any) -> Any:
                words = tf.strings.split(standardize_tweet(tf.reshape(texts, [-1])))
                padded = tf.ragged.map_flat_values(lambda flat: tf.strings.join([" ", flat, " "]), words)
                grams = tf.strings.ngrams(tf.strings.unicode_split(padded, "UTF-8"), 3, separator="")
                ids = tf.strings.to_hash_bucket_fast(grams.merge_dims(1, 2), self.buckets)
                present = tf.sparse.bincount(ids, minlength=self.buckets, maxlength=self.buckets,
                                             binary_output=True, axis=-1)
                rows = present.indices[:, 0]
                counts = tf.math.unsorted_segment_sum(tf.ones_like(rows, "float32"), rows,
                                                      tf.cast(present.dense_shape[0], "int32"))
                return tf.sparse.SparseTensor(present.indices, tf.gather(tf.math.rsqrt(tf.maximum(counts, 1.0)), rows),
                                              present.dense_shape)

            def compute_output_shape(self, input_shape: Any) -> tuple:
                return (input_shape[0], self.buckets)

            def get_config(self) -> dict[str, Any]:
                return {**super().get_config(), "buckets": self.buckets}

        _CHAR_LAYER = CharTrigrams
    return _CHAR_LAYER


_CHAR_LAYER: type | None = None


def build_model(texts_for_vocab: Sequence[str], max_tokens: int = 50_000, seed: int = 0, hidden_units: int = 16,
                l2: float = 1e-6) -> keras.Model:
    """The classifier, raw strings (shape (None,)) in, P(AI) out; three views of the text:

    - words: which words and word pairs a tweet has (multi-hot; `standardize_tweet`: links become their domain,
      hashtags and mentions stay themselves; vocabulary adapted here on `texts_for_vocab`) →
      one logit, as a logistic regression;
    - character trigrams of each word (`CharTrigrams`, hashed, unit length) → one logit, as a
      logistic regression: the insides of hashtags, handles and words never seen whole;
    - signals: the labeling functions' vocabulary as RE2 signals, with entity counts
      (`TweetSignals`) → a small hidden layer → one logit, so that the model can learn how
      the signals combine (an acronym beside one of its other senses, spam around an #AI).

    The words' and signals' logits add up; the trigrams' logit is fitted on its own, and the
    two are averaged before the sigmoid (`_Heads`). Everything runs in the TensorFlow graph: serving
    needs only the saved `.keras` file.
    """
    return _build(texts_for_vocab, max_tokens, seed, hidden_units, l2)[0]


def _build(texts_for_vocab: Sequence[str], max_tokens: int, seed: int, hidden_units: int,
           l2: float) -> tuple[keras.Model, _Heads]:
    """`build_model`'s model, and its heads (`_Heads`): the layers after the text processing, taking
    the multi-hot words, the signals and the trigrams as inputs. Training fits the heads on features computed
    once (`_features`): the text processing costs far more than the layers, and ran on every
    tweet in every epoch when the whole model was fitted."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    vectorize = keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardize_tweet, ngrams=2, output_mode="multi_hot", sparse=True,
        name="vectorize")
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(_clean(texts_for_vocab)).batch(PREDICT_BATCH_ROWS))
    signals = _signal_layer()(name="signals")
    trigrams = _char_layer()(name="char_trigrams")
    heads = _heads(hidden_units, l2, vectorize.vocabulary_size(), signals.compute_output_shape((None,))[1],
                   trigrams.buckets)
    inputs = keras.Input(shape=(), dtype="string", name=TEXT_COLUMN)
    model = keras.Model(inputs, heads.full([vectorize(inputs), signals(inputs), trigrams(inputs)]),
                        name="ai_tweet_classifier")
    return model, heads


def _input_sizes(model: keras.Model) -> tuple[int, int, int]:
    """The heads' input widths: vocabulary, signals, trigram buckets."""
    return (model.get_layer("vectorize").vocabulary_size(),
            model.get_layer("signals").compute_output_shape((None,))[1],
            model.get_layer("char_trigrams").buckets)


@dataclass
class _Heads:
    """The layers after the text processing as three models sharing them: `full` (multi-hot words,
    signals, trigrams) → P(AI), the one served; `words` (words, signals) and `trigrams` alone,
    each fitted on its own. `full` averages their logits: two models that err differently,
    averaged, rank tweets better than either, and better than one fitted on both views at once
    (measured: README, "Quality")."""

    full: keras.Model
    words: keras.Model
    trigrams: keras.Model


def _heads(hidden_units: int, l2: float, vocabulary_size: int, signal_count: int,
           buckets: int) -> _Heads:
    import keras

    word_logit = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(l2), name="word_logit")
    hidden = keras.layers.Dense(hidden_units, activation="relu", name="signal_hidden")
    signal_logit = keras.layers.Dense(1, name="signal_logit")
    words_and_signals = keras.layers.Add(name="words_and_signals")
    char_logit = keras.layers.Dense(1, name="char_logit")  # fitted by `_fit_logistic`
    words_in = keras.Input(shape=(vocabulary_size,), sparse=True, name="words")
    flags_in = keras.Input(shape=(signal_count,), name="signals")
    trigrams_in = keras.Input(shape=(buckets,), sparse=True, name="trigrams")
    word_side = words_and_signals([word_logit(words_in), signal_logit(hidden(flags_in))])
    char_side = char_logit(trigrams_in)
    probability = keras.layers.Activation("sigmoid", name=PROBABILITY_COLUMN)
    logit = keras.layers.Average(name="logit")([word_side, char_side])
    return _Heads(
        keras.Model([words_in, flags_in, trigrams_in], probability(logit), name="head"),
        keras.Model([words_in, flags_in], keras.layers.Activation("sigmoid")(word_side), name="word_head"),
        keras.Model(trigrams_in, keras.layers.Activation("sigmoid")(char_side), name="trigram_head"))


def _features(model: keras.Model, texts: Sequence[Any]) -> tuple[Any, Any, Any]:
    """The head's inputs for `texts`: multi-hot words (sparse), signals and trigrams (sparse), computed once."""
    import tensorflow as tf

    cleaned = _clean(texts)
    vectorize, signals, trigrams = (model.get_layer(name) for name in ("vectorize", "signals", "char_trigrams"))
    chunks = [tf.constant(cleaned[start:start + PREDICT_BATCH_ROWS])
              for start in range(0, len(cleaned), PREDICT_BATCH_ROWS)]
    return (tf.sparse.concat(0, [vectorize(chunk) for chunk in chunks]),
            tf.concat([signals(chunk) for chunk in chunks], 0),
            tf.sparse.concat(0, [trigrams(chunk) for chunk in chunks]))


def load_keras_model(path: str | Path) -> keras.Model:
    import keras

    return keras.models.load_model(path, custom_objects={"standardize_tweet": standardize_tweet,
                                                         "TweetSignals": _signal_layer(),
                                                         "CharTrigrams": _char_layer()})


def _clean(texts: Iterable[Any]) -> list[str]:
    """Raw texts as strings: None and NaN (a missing cell) become the empty string."""
    return ["" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
            for text in texts]


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model: keras.Model) -> Callable[[Any], Any]:
    """`model`'s forward pass as one TensorFlow graph, traced once for any batch size (a 1-D
    string input): three times the tweets per second of calling the model eagerly, which runs
    its text processing op by op."""
    import tensorflow as tf

    forward = _COMPILED.get(model)
    if forward is None:
        forward = tf.function(lambda texts: model(texts, training=False),
                              input_signature=[tf.TensorSpec([None], tf.string)])
        _COMPILED[model] = forward
    return forward


def predict_probabilities(model: keras.Model, texts: Iterable[Any],
                          batch_rows: int = PREDICT_BATCH_ROWS) -> np.ndarray:
    """P(AI) for each text, float64 in [0, 1], in `batch_rows` chunks; None/NaN count as ''."""
    import tensorflow as tf

    cleaned = _clean(texts)
    forward = _compiled(model)
    chunks = [forward(tf.constant(cleaned[start:start + batch_rows])).numpy()
              for start in range(0, len(cleaned), batch_rows)]
    if not chunks:
        return np.zeros(0, dtype=np.float64)
    return np.clip(np.concatenate(chunks).reshape(-1).astype(np.float64), 0.0, 1.0)


def _head_probabilities(head: keras.Model, features: tuple[Any, Any]) -> np.ndarray:
    """P(AI) from features already computed (`_features`): what the whole model gives their texts."""
    return np.clip(head(features, training=False).numpy().reshape(-1).astype(np.float64), 0.0, 1.0)


# --- training and evaluation ---------------------------------------------------------------

@dataclass
class TrainedModel:
    """A trained end-to-end model, its training curves, and the decision threshold from dev."""

    model: keras.Model
    history: dict[str, list[float]]
    threshold: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Iterable[Any]) -> np.ndarray:
        return predict_probabilities(self.model, texts)


def _as_dataset(features: tuple[Any, Any], targets: np.ndarray, batch_size: int, shuffle_seed: int | None,
                weights: np.ndarray | None = None) -> Any:
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, targets) if weights is None
                                                 else (features, targets, weights))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(targets), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _targets(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=np.float32)
    if array.size and (np.isnan(array).any() or array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(f"{name} must be probabilities or 0/1 labels in [0, 1] with no missing values")
    return array


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The probability cut-off (`p >= t` is AI) with the best F1 on these labels, each row
    counted `weights` times (default once); 0.5 if the labels hold no positive example.

    `labels` may be soft (P(AI) in [0, 1], as the LabelModel gives): the F1 is then the
    expected one, 2·Σ_{p≥t} label / (#{p≥t} + Σ label), which is the F1 itself for 0/1 labels.
    """
    scores = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(labels, dtype=np.float64)
    counts = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    if not (targets * counts).any():
        return DEFAULT_THRESHOLD
    order = np.argsort(-scores, kind="stable")
    scores, hits, predicted = scores[order], np.cumsum((targets * counts)[order]), np.cumsum(counts[order])
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a cut-off keeps all rows of equal score
    f1 = 2 * hits[last_of_tie] / (predicted[last_of_tie] + hits[-1])
    return float(scores[last_of_tie][int(np.argmax(f1))])


def _fit_logistic(layer: Any, features: Any, targets: np.ndarray, weights: np.ndarray, c: float) -> None:
    """Fit `layer` (Dense, one unit, on sparse `features`) as a logistic regression with L2
    penalty 1/`c`, to convergence (scikit-learn's L-BFGS): soft targets as two weighted rows, one
    per class. Fitted with Adam and early stopping like the words, the trigrams stopped far short
    of it and added little (README, "Quality")."""
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    indices = features.indices.numpy()
    matrix = scipy.sparse.csr_matrix((features.values.numpy(), (indices[:, 0], indices[:, 1])),
                                     shape=tuple(features.dense_shape.numpy()))
    classes = np.r_[np.ones(len(targets)), np.zeros(len(targets))]
    row_weights = np.r_[weights * targets, weights * (1.0 - targets)]
    if len(np.unique(classes[row_weights > 0])) < 2:  # one class only: nothing to tell apart
        layer.set_weights([np.zeros((matrix.shape[1], 1), "float32"), np.zeros(1, "float32")])
        return
    fitted = LogisticRegression(C=c, max_iter=1000).fit(scipy.sparse.vstack([matrix, matrix]), classes,
                                                         sample_weight=row_weights)
    layer.set_weights([fitted.coef_.reshape(-1, 1).astype("float32"), fitted.intercept_.astype("float32")])


def _out_of_fold(model: keras.Model, texts: Sequence[Any], targets: np.ndarray, weights: np.ndarray,
                 dev: tuple[Any, np.ndarray], folds: int, fit: Callable[[_Heads, Any, Any], Any],
                 hidden_units: int, l2: float, seed: int) -> np.ndarray:
    """P(AI) for each training row from heads fitted without it: the rows are dealt into
    `folds` folds (seeded), and each fold is scored by heads fitted on the others. The text
    processing is `model`'s (its vocabulary was adapted on every training text: no label is seen)."""
    import keras

    fold_of = np.random.default_rng(seed).integers(0, folds, len(targets))
    cleaned = np.asarray(_clean(texts), dtype=object)
    scores = np.zeros(len(targets))
    for fold in range(folds):
        held = fold_of == fold
        if not held.any() or held.all():
            continue
        keras.utils.set_random_seed(seed + 1 + fold)
        heads = _heads(hidden_units, l2, *_input_sizes(model))
        fit(heads, (_features(model, cleaned[~held].tolist()), targets[~held], weights[~held]), dev)
        scores[held] = _head_probabilities(heads.full, _features(model, cleaned[held].tolist()))
    return scores


def train(train_texts: Sequence[Any], train_targets: Iterable[float],
          dev_texts: Sequence[Any], dev_targets: Iterable[float],
          epochs: int = 30, batch_size: int = 256, seed: int = 0, *,
          train_weights: Iterable[float] | None = None, train_labels: Iterable[int] | None = None,
          dev_labels: Iterable[int] | None = None, learning_rate: float = 3e-3, patience: int = 3,
          max_tokens: int = 50_000, hidden_units: int = 16, l2: float = 1e-3, char_c: float = 4.0,
          threshold_folds: int = 0,
          verbose: int = 0) -> TrainedModel:
    """Fit the model on soft (weak_prob in [0, 1]) or hard (gold 0/1) targets, each row weighted
    by `train_weights` (gold labels count more than weak ones; default 1).

    Binary cross-entropy takes either. Early stopping watches the dev loss (on `dev_targets`)
    and restores the best epoch's weights. The threshold maximizes F1 against hard labels
    (`dev_labels`, else `dev_targets >= 0.5`) on dev, and on train too when `train_labels` are
    given: AI tweets are rare, and dev alone holds too few of them to place a threshold. The
    L2 penalty keeps the model from fitting its training rows much better than new ones, so
    that a threshold placed on them holds on new tweets. With `threshold_folds` (and
    `train_labels`), the threshold is placed instead on out-of-fold predictions for the
    training rows (`_out_of_fold`): the train stage does so once people's labels are among
    them, whose weight pulls the model's own rows away from the boundary. There it maximizes
    the expected F1 against `train_targets`, each row counted once: people's labels where
    given, the LabelModel's probability elsewhere (rounding that at 0.5 turns every doubt into
    a certainty, and placed the threshold worse on the development set: README, "Quality").
    """
    import keras

    train_y = _targets(train_targets, "train_targets")
    dev_y = _targets(dev_targets, "dev_targets")
    weights = (np.ones(len(train_y), dtype=np.float32) if train_weights is None
               else np.asarray(list(train_weights), dtype=np.float32))
    if len(train_y) != len(train_texts) or len(dev_y) != len(dev_texts) or len(weights) != len(train_y):
        raise ValueError("each text needs exactly one target (and weight): the lengths differ")
    if not len(train_y) or not len(dev_y):
        raise ValueError("training needs at least one train and one dev example")
    hyperparameters = {"architecture": "words+signals, trigrams", "max_tokens": max_tokens,
                       "hidden_units": hidden_units, "l2": l2, "char_c": char_c, "char_buckets": CHAR_BUCKETS,
                       "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                       "patience": patience, "seed": seed}
    model, heads = _build(train_texts, max_tokens, seed, hidden_units, l2)
    head = heads.full
    # shuffle=False: the training dataset reshuffles itself each epoch, seeded. The heads share
    # their layers with the model, so the model ends with the weights fitted here.
    train_features, dev_features = _features(model, train_texts), _features(model, dev_texts)

    def fit_one(one: keras.Model, features: Any, targets: np.ndarray, row_weights: np.ndarray,
                dev_part: tuple) -> tuple[dict[str, list[float]], int]:
        one.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        history = one.fit(_as_dataset(features, targets, batch_size, seed, row_weights),
                          validation_data=_as_dataset(*dev_part, PREDICT_BATCH_ROWS, None),
                          epochs=epochs, callbacks=[stop], shuffle=False, verbose=verbose)
        return history.history, stop.best_epoch

    def fit(fitted: _Heads, train_part: tuple, dev_part: tuple) -> tuple[dict[str, list[float]], int]:
        """Fits the words and the trigrams heads, each on its own; returns the words head's
        curves and best epoch (whose weights it keeps)."""
        (words, flags, trigrams), targets, row_weights = train_part
        (dev_words, dev_flags, dev_trigrams), dev_targets = dev_part
        word_curves, word_best = fit_one(fitted.words, (words, flags), targets, row_weights,
                                         ((dev_words, dev_flags), dev_targets))
        _fit_logistic(fitted.trigrams.get_layer("char_logit"), trigrams, targets, row_weights, char_c)
        return word_curves, word_best

    history, best_epoch = fit(heads, (train_features, train_y, weights), (dev_features, dev_y))
    if threshold_folds > 1 and train_labels is not None:
        # Rows a model was fitted on (a person's label weighs five) sit further from the
        # boundary than new tweets: the threshold is placed on predictions for rows each
        # model did not see, counted once each, as new tweets will come.
        probabilities = _out_of_fold(model, train_texts, train_y, weights, (dev_features, dev_y), threshold_folds,
                                     fit, hidden_units, l2, seed)
        threshold = choose_threshold(probabilities, train_y)
        hyperparameters["threshold_from"] = f"out-of-fold predictions on the training rows ({threshold_folds} folds)"
    else:
        hard = (np.asarray(list(dev_labels)) if dev_labels is not None else dev_y >= 0.5).astype(int)
        probabilities = _head_probabilities(head, dev_features)
        if train_labels is not None:
            hard = np.concatenate([hard, np.asarray(list(train_labels)).astype(int)])
            probabilities = np.concatenate([probabilities, _head_probabilities(head, train_features)])
        threshold = choose_threshold(probabilities, hard)
        hyperparameters["threshold_from"] = "predictions on dev" + (" and train" if train_labels is not None else "")
    hyperparameters["best_epoch"] = best_epoch + 1
    hyperparameters["vocabulary_size"] = model.get_layer("vectorize").vocabulary_size()
    curves = {name: [float(value) for value in values] for name, values in history.items()}
    return TrainedModel(model, curves, threshold, hyperparameters)


def evaluate(probabilities: Iterable[float], labels: Iterable[int], threshold: float) -> dict[str, float]:
    """Precision, recall, F1, accuracy at `threshold`; ROC AUC and average precision (pr_auc)
    over all thresholds (NaN when `labels` hold a single class); support; tn, fp, fn, tp."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    scores = np.asarray(list(probabilities), dtype=np.float64)
    truth = np.asarray(list(labels)).astype(int)
    predicted = (scores >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="binary", zero_division=0)
    tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
    both_classes = len(np.unique(truth)) == 2
    return {
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "accuracy": float(accuracy_score(truth, predicted)) if len(truth) else math.nan,
        "roc_auc": float(roc_auc_score(truth, scores)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(truth, scores)) if both_classes else math.nan,
        "support": int(len(truth)), "positives": int(truth.sum()), "threshold": float(threshold),
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
    }


def plot_pr_curve(probabilities: Iterable[float], labels: Iterable[int], path: str | Path,
                  threshold: float | None = None, title: str = "Precision-recall (test)") -> Path:
    """A PNG of the precision-recall curve, with the operating point at `threshold` marked."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg
    from sklearn.metrics import average_precision_score, precision_recall_curve

    scores = np.asarray(list(probabilities), dtype=np.float64)
    truth = np.asarray(list(labels)).astype(int)
    figure = Figure(figsize=(5, 4), dpi=100)
    axes = figure.add_subplot()
    if truth.any():
        precision, recall, _ = precision_recall_curve(truth, scores)
        axes.plot(recall, precision, label=f"AP = {average_precision_score(truth, scores):.3f}")
        if threshold is not None:
            predicted = scores >= threshold
            point_precision = truth[predicted].mean() if predicted.any() else 0.0
            point_recall = predicted[truth == 1].mean()
            axes.scatter([point_recall], [point_precision], color="tab:red", zorder=3,
                         label=f"threshold {threshold:.3f}")
        axes.legend(loc="lower left")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title=title)
    return _save(figure, path)


def plot_confusion_matrix(metrics: Mapping[str, Any], path: str | Path,
                          title: str = "Confusion matrix (test)") -> Path:
    """A PNG of the 2x2 confusion matrix from `evaluate`'s tn, fp, fn, tp."""
    from matplotlib.figure import Figure

    cells = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    figure = Figure(figsize=(4, 4), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(cells, cmap="Blues")
    for (row, column), count in np.ndenumerate(cells):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > cells.max() / 2 else "black")
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["not AI", "AI"], yticklabels=["not AI", "AI"],
             xlabel="predicted", ylabel="true", title=title)
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    return path


# --- the served model ----------------------------------------------------------------------

class AITweetClassifier(mlflow.pyfunc.PythonModel):
    """The registered pyfunc: DataFrame[`text`] → DataFrame[`ai_probability`, `label`].

    Wraps the `.keras` file because `mlflow.tensorflow` cannot feed strings to a Keras 3 model.
    """

    def load_context(self, context: Any) -> None:
        self.model = load_keras_model(context.artifacts[KERAS_ARTIFACT])
        config = json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        self.threshold = float(config["threshold"])

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            if TEXT_COLUMN not in model_input.columns:
                raise ValueError(f"the input needs a {TEXT_COLUMN!r} column of raw tweet text; "
                                 f"got columns {list(model_input.columns)}")
            texts = model_input[TEXT_COLUMN].tolist()
        else:  # a list or Series of texts, as pyfunc callers sometimes pass
            texts = list(model_input)
        probabilities = predict_probabilities(self.model, texts)
        output = pd.DataFrame({PROBABILITY_COLUMN: probabilities,
                               LABEL_COLUMN: (probabilities >= self.threshold).astype(np.int64)})
        # `ai-tweets serve` tells the server which registered version it serves, so that
        # every prediction says which version made it (see ai_tweets.serving).
        from stackbase.settings import served_model_version

        version = served_model_version()
        if version:
            output["model_version"] = version
        return output


def model_signature() -> Any:
    """Input: a string `text` column; output: `ai_probability` (double) and `label` (long)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
                          outputs=Schema([ColSpec("double", PROBABILITY_COLUMN),
                                          ColSpec("long", LABEL_COLUMN)]))


def pip_requirements() -> list[str]:
    """The serving requirements, pinned to this environment's versions."""
    pins = []
    for package in _PINNED_PACKAGES:
        candidates = ("tensorflow-cpu", "tensorflow") if package == "tensorflow-cpu" else (package,)
        for candidate in candidates:
            try:
                pins.append(f"{candidate}=={metadata.version(candidate)}")
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            raise RuntimeError(f"{package} is not installed: cannot pin the model's serving requirements")
    return pins


def _loggable_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Numeric, finite values only (MLflow rejects None and NaN is useless in charts)."""
    return {key: float(value) for key, value in values.items()
            if isinstance(value, int | float | np.number) and not isinstance(value, bool)
            and math.isfinite(float(value))}


def log_and_register(trained: TrainedModel, metrics: Mapping[str, Any], *, tracking_uri: str, model_name: str,
                     params: Mapping[str, Any] | None = None, plots: Iterable[str | Path] = (),
                     tags: Mapping[str, str] | None = None, dataset_info: Mapping[str, Any] | None = None,
                     experiment_name: str = CLASSIFIER_EXPERIMENT) -> ModelVersion:
    """Log one training run and register its pyfunc as a new version of `model_name`.

    Uses the active MLflow run if there is one, else starts (and ends) a run in
    `experiment_name`. Logs the hyperparameters and `params`, the threshold, `metrics`
    (finite numbers only), the per-epoch curves, `plots` under `plots/`, `dataset_info`
    (e.g. version and row counts) as `dataset.*` params and tags, and the model with its
    signature, input example and pinned requirements. Aliases are `promote_if_better`'s job.
    """
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    started = mlflow.active_run() is None
    if started:
        mlflow.set_experiment(experiment_name)
        mlflow.start_run()
    try:
        dataset = {f"dataset.{key}": value for key, value in (dataset_info or {}).items()}
        mlflow.log_params({**trained.hyperparameters, **(params or {}), **dataset,
                           "threshold": trained.threshold})
        mlflow.set_tags({**(tags or {}), **{key: str(value) for key, value in dataset.items()}})
        mlflow.log_metrics(_loggable_metrics(metrics))
        for name, values in trained.history.items():
            for epoch, value in enumerate(values):
                mlflow.log_metric(f"epoch_{name}", value, step=epoch)
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        with tempfile.TemporaryDirectory(prefix="ai-tweets-model-") as workdir:
            keras_path = Path(workdir) / _KERAS_FILE
            trained.model.save(keras_path)
            config_path = Path(workdir) / _CONFIG_FILE
            config_path.write_text(json.dumps({"threshold": trained.threshold, **trained.hyperparameters}))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AITweetClassifier(),
                artifacts={KERAS_ARTIFACT: str(keras_path), CONFIG_ARTIFACT: str(config_path)},
                # The packages travel with the model: the pickled class is ai_tweets.model's,
                # which reads its settings through stackbase.
                code_paths=[str(Path(__file__).resolve().parent), str(Path(settings_module.__file__).parent)],
                signature=model_signature(),
                input_example=pd.DataFrame({TEXT_COLUMN: list(_INPUT_EXAMPLE)}),
                pip_requirements=pip_requirements(),
                registered_model_name=model_name,
            )
        return MlflowClient(tracking_uri).get_model_version(model_name, str(info.registered_model_version))
    finally:
        if started:
            mlflow.end_run()


def _champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    version = client.get_registered_model(model_name).aliases.get(CHAMPION)
    return client.get_model_version(model_name, str(version)) if version is not None else None


PROMOTION_COMPARISON_TAG = "promotion.comparison"  # both versions' metrics on the same rows (JSON)
AWAITING_APPROVAL_TAG = "promotion.awaiting_approval"


class StalePromotion(DeterministicError):
    """The champion a challenger was compared with is no longer the champion: the comparison
    no longer holds, so an approval of it is not applied."""


def promote_if_better(client: MlflowClient, model_name: str, new_version: ModelVersion | str | int,
                      new_score: float, metric_name: str,
                      champion_score_lookup: Callable[[ModelVersion], float | Mapping[str, float]], *,
                      judged_on: str = "weak", approval: bool = False, new_metrics: Mapping[str, float] | None = None,
                      compared_rows: int | None = None) -> dict[str, Any]:
    """Give `new_version` the `champion` alias if it beats the current champion, else `challenger`.

    The caller scores both on the same test rows, labeled `judged_on` ("gold" or "weak"):
    `new_score` for the new version, and `champion_score_lookup(champion_version)` for the
    champion (called only when the two can be compared; its score, or its metrics with
    `metric_name` among them). Higher is better; a tie keeps the champion. A version judged on
    weak labels never replaces a champion judged on gold: weak labels measure agreement with
    the labeling functions, which a model taught by people rightly loses.

    With `approval` (PROMOTION_APPROVAL), a version that would replace a champion becomes the
    `challenger` awaiting a person's approval (`approve_promotion`, `decline_promotion`), with
    both versions' metrics on the same rows recorded on it. The decision and its reason are
    returned and recorded on the new version and on its run (tags and metrics).
    """
    version = str(getattr(new_version, "version", new_version))
    champion = _champion(client, model_name)
    champion_version = champion.version if champion is not None else None
    champion_judged_on = _judged_on(client, champion) if champion is not None else None
    champion_score, champion_metrics = None, None
    if champion is None or champion.version == version:
        promoted, reason = True, "no champion yet"
    elif champion_judged_on == "gold" and judged_on != "gold":
        promoted, reason = False, "judged on weak labels only, and the champion was judged on gold labels"
    else:
        looked_up = champion_score_lookup(champion)
        champion_metrics = dict(looked_up) if isinstance(looked_up, Mapping) else None
        champion_score = float(looked_up[metric_name] if isinstance(looked_up, Mapping) else looked_up)
        promoted = float(new_score) > champion_score
        reason = (f"{metric_name} {float(new_score):.3f} vs the champion's {champion_score:.3f} on the same "
                  f"{judged_on}-labeled test rows")
    awaiting = bool(approval and promoted and champion is not None and champion.version != version)
    if awaiting:
        promoted = False
        reason += f"; it waits for a person's approval to replace version {champion_version} (PROMOTION_APPROVAL)"
    client.set_registered_model_alias(model_name, CHAMPION if promoted else CHALLENGER, version)
    decision = {"promoted": promoted, "reason": reason, "model_name": model_name, "metric": metric_name,
                "judged_on": judged_on, "new_version": version, "new_score": float(new_score),
                "champion_version": champion_version, "champion_judged_on": champion_judged_on,
                "champion_score": champion_score, "alias": CHAMPION if promoted else CHALLENGER,
                "awaiting_approval": awaiting}
    for key in ("promoted", "alias", "champion_version", "reason"):
        client.set_model_version_tag(model_name, version, f"promotion.{key}", str(decision[key]))
    client.set_model_version_tag(model_name, version, AWAITING_APPROVAL_TAG, str(awaiting).lower())
    if awaiting:
        comparison = {"judged_on": judged_on, "rows": compared_rows, "metric": metric_name,
                      "champion": {"version": champion_version, **(champion_metrics or {metric_name: champion_score})},
                      "challenger": {"version": version, **(dict(new_metrics) if new_metrics
                                                            else {metric_name: float(new_score)})}}
        client.set_model_version_tag(model_name, version, PROMOTION_COMPARISON_TAG, json.dumps(comparison))
    run_id = client.get_model_version(model_name, version).run_id
    if run_id:
        # Tags and metrics, not params: a retried promotion may record a different decision.
        client.set_tag(run_id, "promotion.previous_champion", str(champion_version))
        client.set_tag(run_id, "promotion.decision", "awaiting approval" if awaiting else
                       "champion" if promoted else "challenger")
        client.set_tag(run_id, "promotion.reason", reason)
        client.log_metric(run_id, "promotion.promoted", float(promoted))
        client.log_metric(run_id, f"promotion.new_{metric_name}", float(new_score))
        if champion_score is not None:
            client.log_metric(run_id, f"promotion.champion_{metric_name}", champion_score)
    return decision


def awaiting_approval(client: MlflowClient, model_name: str, version: str | int | None = None) -> ModelVersion | None:
    """The version waiting for a person's approval to become champion: `version`, else the
    `challenger`; None if it does not wait (never asked, or already decided)."""
    if version is None:
        version = client.get_registered_model(model_name).aliases.get(CHALLENGER)
        if version is None:
            return None
    found = client.get_model_version(model_name, str(version))
    return found if found.tags.get(AWAITING_APPROVAL_TAG) == "true" else None


def comparison_of(version: ModelVersion) -> dict[str, Any]:
    """Both versions' metrics on the same rows, as `promote_if_better` recorded them."""
    return json.loads(version.tags.get(PROMOTION_COMPARISON_TAG) or "{}")


def approve_promotion(client: MlflowClient, model_name: str, version: str, reviewer: str) -> dict[str, Any]:
    """A person approved: `version` becomes the champion, if the champion is still the one it
    was compared with (else StalePromotion, and nothing moves)."""
    pending = awaiting_approval(client, model_name, version)
    if pending is None:
        raise StalePromotion(f"{model_name} version {version} does not wait for an approval (decided already)")
    compared_with = comparison_of(pending).get("champion", {}).get("version")
    current = _champion(client, model_name)
    if current is not None and current.version != compared_with:
        decline_promotion(client, model_name, version, None, f"superseded: the champion became version "
                          f"{current.version} after the comparison with version {compared_with}")
        raise StalePromotion(f"{model_name} version {version} was compared with version {compared_with}, but the "
                             f"champion is now version {current.version}: not promoted; train again to compare")
    client.set_registered_model_alias(model_name, CHAMPION, version)
    reason = f"approved by {reviewer}, replacing version {compared_with}"
    _record_review(client, model_name, version, "approved", reviewer, reason, promoted=True)
    return {"promoted": True, "new_version": version, "champion_version": compared_with, "reviewed_by": reviewer,
            "reason": reason}


def decline_promotion(client: MlflowClient, model_name: str, version: str, reviewer: str | None,
                      reason: str | None = None) -> dict[str, Any]:
    """A person rejected (or nobody answered in time, `reviewer` None): the champion stays;
    `version` stays the challenger, no longer waiting."""
    review = "rejected" if reviewer else "expired"
    reason = reason or (f"rejected by {reviewer}" if reviewer else "no answer in time: the champion stays")
    _record_review(client, model_name, version, review, reviewer, reason, promoted=False)
    return {"promoted": False, "new_version": version, "reviewed_by": reviewer, "reason": reason}


def _record_review(client: MlflowClient, model_name: str, version: str, review: str, reviewer: str | None,
                   reason: str, promoted: bool) -> None:
    for key, value in ((AWAITING_APPROVAL_TAG, "false"), ("promotion.review", review),
                       ("promotion.reviewed_by", reviewer or ""), ("promotion.promoted", str(promoted)),
                       ("promotion.alias", CHAMPION if promoted else CHALLENGER), ("promotion.reason", reason)):
        client.set_model_version_tag(model_name, version, key, value)
    run_id = client.get_model_version(model_name, version).run_id
    if run_id:
        client.set_tag(run_id, "promotion.decision", f"{review} ({'champion' if promoted else 'challenger'})")
        client.set_tag(run_id, "promotion.reason", reason)
        client.log_metric(run_id, "promotion.promoted", float(promoted))


def label_texts(model: mlflow.pyfunc.PyFuncModel, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """P(AI) and the label (at the version's own threshold) per text."""
    output = model.predict(pd.DataFrame({TEXT_COLUMN: _clean(texts)}))
    return output[PROBABILITY_COLUMN].to_numpy(dtype=np.float64), output[LABEL_COLUMN].to_numpy(dtype=np.int64)


def _judged_on(client: MlflowClient, version: ModelVersion) -> str:
    """Which labels a registered version's run was judged on (`evaluated_on` tag; weak if unknown)."""
    if not version.run_id:
        return "weak"
    return client.get_run(version.run_id).data.tags.get("evaluated_on", "weak")


# --- scoring from outside (the `ai-tweets predict` command) -------------------------------

def load_classifier(model_uri: str, tracking_uri: str | None = None) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc at `model_uri` (e.g. models:/ai-tweet-classifier@champion)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri)


def predict_texts(model: str | mlflow.pyfunc.PyFuncModel, texts: Iterable[Any],
                  tracking_uri: str | None = None) -> np.ndarray:
    """P(AI) per text from a model URI or an already loaded classifier."""
    classifier = load_classifier(model, tracking_uri) if isinstance(model, str) else model
    output = classifier.predict(pd.DataFrame({TEXT_COLUMN: _clean(texts)}))
    return output[PROBABILITY_COLUMN].to_numpy(dtype=np.float64)
