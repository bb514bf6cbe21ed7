"""Text helpers every platform adapter shares: splitting a reply at a platform's length limit."""

from __future__ import annotations

BREAKS = ("\n\n", "\n", ". ", " ")  # preferred split points, best first


def utf16_len(text: str) -> int:
    """Length as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """The text in parts of at most `limit`, cut at a paragraph, line, sentence or word when one is near."""
    parts: list[str] = []
    rest = text.strip()
    while utf16_len(rest) > limit:
        cut = _cut_point(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*parts, rest] if rest else parts


def _cut_point(text: str, limit: int) -> int:
    """Where to cut: the last good break in the second half of what fits, else as much as fits."""
    fits = _prefix_fitting(text, limit)
    for separator in BREAKS:
        at = text.rfind(separator, fits // 2, fits)
        if at > 0:
            return at + 1 if separator == ". " else at  # keep the full stop with its sentence
    return fits


def _prefix_fitting(text: str, limit: int) -> int:
    """How many characters of the text fit in `limit` UTF-16 units (an emoji takes two)."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)
