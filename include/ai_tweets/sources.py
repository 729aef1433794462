"""Where tweets come from: the X API (`x`), a JSONL file (`replay`) or the project's own
generator (`generate`). Each source is an iterator of `Tweet | MalformedInput`."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ai_tweets.schema import MalformedInput, MalformedTweet, Tweet, from_text, normalize
from stackbase.settings import Settings, SettingsError

SOURCES = ("x", "replay", "generate")


def _synthetic_id(path: Path, line_number: int, text: str) -> int:
    """A stable id for a text-only line, so replaying the same file adds nothing new."""
    digest = hashlib.blake2b(f"{path.name}\0{line_number}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2 or 1  # positive, fits BIGINT


def replay_file(path: Path, loop: bool = False, stop: threading.Event | None = None,
                ) -> Iterator[Tweet | MalformedInput]:
    """Each line: a v1.1 status, a v2 stream item, a normalized tweet, or `{"text": ...}`."""
    if not path.is_file():
        raise SettingsError(f"replay file {path} does not exist")
    while True:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if stop and stop.is_set():
                    return
                if not line.strip():
                    continue
                yield _replay_line(path, number, line)
        if not loop:
            return


def _replay_line(path: Path, number: int, line: bytes) -> Tweet | MalformedInput:
    try:
        payload = json.loads(line)
        if isinstance(payload, dict) and set(payload) <= {"text", "id", "label"} and "text" in payload \
                and "created_at" not in payload:
            tweet_id = payload.get("id") or _synthetic_id(path, number, str(payload["text"]))
            return from_text(payload["text"], tweet_id, datetime.now(UTC))
        return normalize(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return MalformedInput(line.rstrip(b"\r\n"), f"{path.name}:{number}: invalid JSON: {exc}")
    except MalformedTweet as exc:
        return MalformedInput(line.rstrip(b"\r\n"), f"{path.name}:{number}: {exc.reason}")


def generated(count: int | None, seed: int = 0, ai_share: float = 0.25, shape: str = "mixed",
              ) -> Iterator[Tweet | MalformedInput]:
    """The project's synthetic stream (the embedded default); its labels stay out of the pipeline."""
    from ai_tweets.generator import generate

    for item in generate(count, seed=seed, ai_share=ai_share, shape=shape):
        try:
            yield normalize(item.payload)
        except MalformedTweet as exc:
            yield MalformedInput(json.dumps(item.payload).encode(), exc.reason)


def x_stream(settings: Settings, stop: threading.Event | None = None) -> Iterator[Tweet | MalformedInput]:
    """The X API v2 filtered stream, or recent search for apps without stream access."""
    from ai_tweets import x_api

    token = settings.require("x_bearer_token")
    keywords = x_api.load_keywords(settings.x_keywords_file)
    stop = stop or threading.Event()
    if settings.x_capture_mode == "stream":
        yield from x_api.stream_tweets(token, keywords, stop, base_url=settings.x_api_base_url)
    else:
        # Recent search takes one query of at most 512 characters: the first rule's keywords.
        query = x_api.build_rules(keywords, max_len=512)[0]
        yield from x_api.poll_recent(token, query, None, stop, base_url=settings.x_api_base_url)


class InputFileError(ValueError):
    """An input file the user gave is not in the expected shape; the message names the line."""


def read_texts(path: Path) -> list[str]:
    """The texts of a JSONL file of `{"text": ...}` lines (the weak-label and predict commands);
    a line of another shape stops with its file and line number."""
    import msgspec

    if not path.is_file():
        raise InputFileError(f"input file {path} does not exist")
    texts = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            try:
                item = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                raise InputFileError(f"{path}:{number}: invalid JSON ({exc})") from exc
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise InputFileError(f'{path}:{number}: expected {{"text": ...}}')
            texts.append(item["text"])
    return texts


def paced(items: Iterable[Tweet | MalformedInput], rate: float | None) -> Iterator[Tweet | MalformedInput]:
    """At most `rate` items per second (None or 0: as fast as possible)."""
    if not rate:
        yield from items
        return
    began = time.monotonic()
    for index, item in enumerate(items):
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


def open_source(name: str, settings: Settings, *, file: Path | None = None, loop: bool = False,
                count: int | None = None, seed: int = 0, rate: float | None = None,
                stop: threading.Event | None = None) -> Iterator[Tweet | MalformedInput]:
    """The configured source, paced to `rate` tweets/s."""
    if name == "x":
        items = x_stream(settings, stop)
    elif name == "replay":
        if file is None:
            raise SettingsError("the replay source needs a file (--file PATH)")
        items = replay_file(file, loop=loop, stop=stop)
    elif name == "generate":
        items = generated(count, seed=seed)
    else:
        raise SettingsError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    return paced(items, rate)
