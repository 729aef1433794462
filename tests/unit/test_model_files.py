"""The digest that model files are checked against, and the model URIs it resolves."""

from __future__ import annotations

import shutil

import pytest

from ai_tweets.model_files import files_digest, resolve


def test_the_digest_changes_with_any_byte_or_name_and_only_then(tmp_path):
    model = tmp_path / "model"
    (model / "artifacts").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "artifacts" / "model.keras").write_bytes(bytes(range(256)) * 10)
    digest = files_digest(model)
    shutil.copytree(model, tmp_path / "copy")
    assert files_digest(tmp_path / "copy") == digest, "the same files elsewhere: the same digest"
    (tmp_path / "copy" / "artifacts" / "model.keras").write_bytes(bytes(range(256)) * 9 + bytes(255) + b"\1")
    assert files_digest(tmp_path / "copy") != digest
    (model / "MLmodel").rename(model / "MLmodel2")
    assert files_digest(model) != digest, "a renamed file"
    (model / "MLmodel2").rename(model / "MLmodel")
    (model / "extra.py").write_text("import os\n")
    assert files_digest(model) != digest, "an added file"


def test_only_model_uris_of_a_version_or_an_alias_resolve():
    assert resolve(None, "models:/ai-tweet-classifier/12") == ("ai-tweet-classifier", "12")
    for uri in ("runs:/abc/model", "models:/name", "/tmp/model", "models:/a/b/c"):
        with pytest.raises(ValueError, match="expected models:/NAME/VERSION"):
            resolve(None, uri)
