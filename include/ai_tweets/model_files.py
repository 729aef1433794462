"""The classifier's files, checked before anything loads them.

A registered MLflow model is code: loading its pyfunc unpickles it. MLflow's login keeps strangers
out of the registry, but whoever holds the pipeline's MLflow password (or the tracking server's
artifact store) could still replace a version's files or register one of their own. So the
pipeline records, in its own database, the SHA-256 of every version's files right after it
registers it (`record_version`, before the version can become the champion), and every process
that loads a version (model serving, the train stage judging the champion, the annotate stage,
`make quality`, `ai-tweets predict`) downloads the files, checks them against that record, and
loads the checked copy (`verified_copy`). A version the pipeline did not register, or whose files
changed since, raises UntrustedModel: serving keeps the previous version and reports it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg import sql

from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import MODEL_QUALITY, REGISTERED_MODELS, identifier
from stackbase.settings import Settings

log = logging.getLogger(__name__)

_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))")


class UntrustedModel(RuntimeError):
    """A model version whose files the pipeline did not record, or that changed since it did."""


def files_digest(folder: Path) -> str:
    """SHA-256 over every file under `folder`: relative paths and contents, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def resolve(settings: Settings, uri: str) -> tuple[str, str]:
    """(model name, version) of `models:/name/version` or `models:/name@alias`."""
    match = _URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"expected models:/NAME/VERSION or models:/NAME@ALIAS, not {uri!r}")
    if match["version"]:
        return match["name"], match["version"]
    from mlflow import MlflowClient

    found = MlflowClient(settings.mlflow_uri()).get_model_version_by_alias(match["name"], match["alias"])
    return match["name"], str(found.version)


def _download(settings: Settings, name: str, version: str, folder: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(folder),
                                                    tracking_uri=settings.mlflow_uri()))


def record_version(settings: Settings, name: str, version: str) -> str:
    """Record the SHA-256 of version `version`'s files as the pipeline registered them; returns it."""
    from mlflow import MlflowClient

    run_id = MlflowClient(settings.mlflow_uri()).get_model_version(name, version).run_id
    with tempfile.TemporaryDirectory(prefix="ai-tweets-model-") as folder:
        digest = files_digest(_download(settings, name, version, Path(folder)))
    with connect(settings) as conn:
        ensure_tables(conn, REGISTERED_MODELS)
        # A registered model deleted and made again numbers its versions from 1 again.
        conn.execute(sql.SQL("INSERT INTO {t} (model_name, model_version, run_id, sha256) VALUES (%s, %s, %s, %s) "
                             "ON CONFLICT (model_name, model_version) DO UPDATE SET run_id = EXCLUDED.run_id, "
                             "sha256 = EXCLUDED.sha256, registered_at = now()").format(t=identifier(REGISTERED_MODELS)),
                     (name, version, run_id or "", digest))
        conn.commit()
    log.info("recorded %s version %s (sha256 %s…)", name, version, digest[:12])
    return digest


def _recorded_digest(settings: Settings, name: str, version: str) -> str | None:
    with connect(settings) as conn:
        ensure_tables(conn, REGISTERED_MODELS)
        conn.commit()
        row = conn.execute(sql.SQL("SELECT sha256 FROM {t} WHERE model_name = %s AND model_version = %s")
                           .format(t=identifier(REGISTERED_MODELS)), (name, version)).fetchone()
    return row[0] if row else None


def _adopt_trained_before_records(settings: Settings, name: str, version: str) -> str | None:
    """A version the train stage made before it recorded files (it is in `model_quality`, the
    pipeline's own record of what it trained) is recorded now, once, as its files are: a stack
    upgraded with a champion keeps serving it. None for a version the pipeline never trained."""
    with connect(settings) as conn:
        ensure_tables(conn, MODEL_QUALITY)
        conn.commit()
        trained = conn.execute(sql.SQL("SELECT 1 FROM {t} WHERE model_name = %s AND model_version = %s")
                               .format(t=identifier(MODEL_QUALITY)), (name, version)).fetchone()
    if trained is None:
        return None
    log.warning("%s version %s was trained by the pipeline before it recorded model files: recording its files "
                "as they are now", name, version)
    return record_version(settings, name, version)


def verified_copy(settings: Settings, name: str, version: str, folder: Path) -> Path:
    """Download version `version` into `folder` and check it against the pipeline's record;
    returns the model's folder there, or raises UntrustedModel (and leaves nothing behind)."""
    recorded = _recorded_digest(settings, name, version) or _adopt_trained_before_records(settings, name, version)
    if recorded is None:
        raise UntrustedModel(f"{name} version {version} was not registered by the pipeline (no record in "
                             f"{REGISTERED_MODELS}): not loaded")
    local = _download(settings, name, version, folder)
    found = files_digest(local)
    if found != recorded:
        shutil.rmtree(folder, ignore_errors=True)
        raise UntrustedModel(f"{name} version {version}'s files changed since the pipeline registered them "
                             f"(sha256 {found[:12]}…, recorded {recorded[:12]}…): not loaded")
    return local


@contextmanager
def verified(settings: Settings, uri: str) -> Iterator[str]:
    """A checked local copy of the model at `uri` (a version or an alias), for the time of the block."""
    name, version = resolve(settings, uri)
    with tempfile.TemporaryDirectory(prefix="ai-tweets-model-") as folder:
        yield str(verified_copy(settings, name, version, Path(folder)))
