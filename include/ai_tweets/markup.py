"""Text and links shown as themselves in a Markdown page (Airflow's Required Actions).

Markup characters become HTML character references, which every CommonMark renderer shows as
the characters: a backslash escape would show its backslash inside a link that the renderer
finds in plain text (GFM's autolinks), and raw HTML is not rendered at all.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"[\\`*_{}\[\]<>()#+\-!|~&]")
_LIST_AT_START = re.compile(r"^(\d+)\.")


def markdown_text(text: str, max_chars: int | None = None) -> str:
    """`text` on one line, shortened to `max_chars` (with an ellipsis), with no markup in effect."""
    flat = " ".join(text.split())
    if max_chars is not None and len(flat) > max_chars:
        flat = flat[:max_chars - 1] + "…"
    escaped = _MARKUP.sub(lambda match: f"&#{ord(match.group())};", flat)
    return _LIST_AT_START.sub(r"\1&#46;", escaped)  # "1. …" at the start would be a list


def markdown_link(url: str) -> str:
    """A link that shows the URL without its scheme and goes to it."""
    shown = re.sub(r"^https?://", "", url)
    target = url.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"[{markdown_text(shown)}](<{target}>)"
