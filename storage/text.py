"""Text every store can write: what UTF-8 cannot encode (lone UTF-16 surrogates) and NUL (PostgreSQL refuses it,
in text and in JSON) replaced by U+FFFD, in strings and in the JSON payloads kept beside them."""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
UNWRITABLE = re.compile("[\ud800-\udfff\x00]")  # a lone surrogate (a str holds pairs as one code point), NUL


def encodable_text(text: str) -> str:
    """The text with lone surrogates and NUL replaced (the same text when there are none)."""
    return UNWRITABLE.sub(REPLACEMENT, text)


def encodable(value: Any) -> Any:
    """A JSON-like payload (dicts, lists, strings, numbers) with every string, keys included, made encodable."""
    if isinstance(value, str):
        return encodable_text(value)
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value
