"""Notes: a folder of Markdown and plain-text files, or one such file, read as document chunks."""

from __future__ import annotations

import hashlib
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from storage.importers.base import Entry, Rejected
from storage.items import NewItem
from storage.models import ItemKind

NOTE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
CHUNK_CHARS = 1200  # about 250 words: one retrievable passage
PARAGRAPH_GAP = "\n\n"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
FRONT_MATTER = ("---", "...")  # a YAML block opened by --- and closed by --- or ...
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class Paragraph:
    """A run of non-blank lines, or a heading line, with the line it starts on (1-based)."""

    text: str
    line: int
    level: int = 0  # the heading level, 0 for a paragraph


@dataclass
class Section:
    """The paragraphs under one heading, and the path of headings above them."""

    headings: tuple[str, ...]
    paragraphs: list[Paragraph] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """A piece of a note small enough to embed and show, with where it sits in the file."""

    text: str
    line: int
    headings: tuple[str, ...]


class NotesImporter:
    """Reads `.md`, `.markdown` and `.txt` notes; hidden files and folders are left out."""

    name = "notes"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return is_note(path)
        return path.is_dir() and next(note_files(path), None) is not None

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """This format does not say who exported it."""
        return ()

    def read(self, path: Path) -> Iterator[Entry]:
        if path.is_dir():
            for file in note_files(path):
                yield from file_entries(path, file.relative_to(path).as_posix(), file)
        else:
            yield from file_entries(path, path.name, path)


def is_note(path: Path) -> bool:
    """Whether a file is a visible note by its name."""
    return not path.name.startswith(".") and path.suffix.lower() in NOTE_SUFFIXES


def note_files(folder: Path) -> Iterator[Path]:
    """Every visible note under a folder, in a stable order; hidden folders are not entered."""
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if is_note(Path(name)):
                yield Path(current) / name


def file_entries(root: Path, relative: str, file: Path) -> Iterator[Entry]:
    """One note's chunks as document items; a file that is not UTF-8 text is rejected."""
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        yield Rejected(str(root), relative, f"not UTF-8 text ({error.reason} at byte {error.start})")
        return
    except OSError as error:
        yield Rejected(str(root), relative, str(error))
        return
    occurred_at = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    chunks = chunk_note(text, file.suffix.lower() in MARKDOWN_SUFFIXES)
    for index, chunk in enumerate(distinct(chunks)):
        yield NewItem(
            source="notes",
            source_id=f"{short_path(relative, 480)}#{hashlib.sha256(chunk.text.encode()).hexdigest()[:16]}",
            chat=f"notes:{short_path(relative, 240)}",
            chat_title=Path(relative).stem,
            sender="notes",
            text=chunk.text,
            occurred_at=occurred_at,
            kind=ItemKind.document,
            raw={
                "file": relative,
                "chunk": index,
                "heading_path": list(chunk.headings),
                "start_line": chunk.line,
            },
        )


def short_path(relative: str, limit: int) -> str:
    """The path as is when it fits the column, else its tail after a hash of the whole path (stable, unique)."""
    if len(relative) <= limit:
        return relative
    digest = hashlib.sha256(relative.encode()).hexdigest()[:16]
    return f"{digest}~{relative[-(limit - len(digest) - 1):]}"


def distinct(chunks: list[Chunk]) -> list[Chunk]:
    """The chunks in order with repeats left out: the same words twice in a file would share a source id."""
    first: dict[str, Chunk] = {}
    for chunk in chunks:
        first.setdefault(chunk.text, chunk)
    return list(first.values())


def chunk_note(text: str, markdown: bool) -> list[Chunk]:
    """A note split by headings, then packed paragraph by paragraph into chunks of at most CHUNK_CHARS."""
    lines = text.splitlines()
    if markdown:
        lines = without_front_matter(lines)
    return [chunk for section in sections(paragraphs(lines, markdown)) for chunk in section_chunks(section)]


def without_front_matter(lines: list[str]) -> list[str]:
    """The lines with a leading YAML front-matter block blanked, so line numbers still count from the file."""
    if not lines or lines[0].strip() != FRONT_MATTER[0]:
        return lines
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in FRONT_MATTER), None)
    return lines if end is None else [""] * (end + 1) + lines[end + 1 :]


def paragraphs(lines: list[str], markdown: bool) -> list[Paragraph]:
    """Blank-line separated paragraphs; in Markdown a heading stands alone and a code fence stays whole."""
    found: list[Paragraph] = []
    current: list[str] = []
    start, fenced = 0, False
    for number, line in enumerate(lines, start=1):
        fenced = fenced != bool(markdown and FENCE.match(line))
        heading = HEADING.match(line) if markdown and not fenced else None
        if current and (heading or (not line.strip() and not fenced)):
            found.append(Paragraph("\n".join(current), start))
            current = []
        if heading:
            found.append(Paragraph(line.strip(), number, len(heading.group(1))))
        elif line.strip() or current:
            start = start if current else number
            current.append(line)
    if current:
        found.append(Paragraph("\n".join(current), start))
    return found


def sections(found: list[Paragraph]) -> list[Section]:
    """Paragraphs grouped under their headings; a heading with nothing under it but subheadings is dropped."""
    result = [Section(headings=())]
    for paragraph in found:
        if paragraph.level:
            outer = result[-1].headings[: paragraph.level - 1]
            result.append(Section(headings=(*outer, HEADING.match(paragraph.text).group(2))))
        result[-1].paragraphs.append(paragraph)
    return [s for s in result if any(not p.level for p in s.paragraphs)]


def section_chunks(section: Section) -> list[Chunk]:
    """A section's paragraphs packed into chunks under its heading; long ones split by sentence."""
    heading = section.paragraphs[0] if section.paragraphs[0].level else None
    body = section.paragraphs[1:] if heading else section.paragraphs
    # room for the heading in every chunk keeps the rule simple: no chunk is over CHUNK_CHARS
    limit = max(CHUNK_CHARS - (len(heading.text) + len(PARAGRAPH_GAP) if heading else 0), CHUNK_CHARS // 2)
    packed = pack(
        [piece for paragraph in body for piece in paragraph_pieces(paragraph, limit)], PARAGRAPH_GAP, limit
    )
    if heading:
        packed[0] = (heading.text + PARAGRAPH_GAP + packed[0][0], heading.line)
    return [Chunk(text, line, section.headings) for text, line in packed]


def paragraph_pieces(paragraph: Paragraph, limit: int) -> list[tuple[str, int]]:
    """The paragraph whole if it fits, else its sentences packed (and a sentence over the limit wrapped)."""
    if len(paragraph.text) <= limit:
        return [(paragraph.text, paragraph.line)]
    sentences = [
        (piece, paragraph.line)
        for sentence in SENTENCE_END.split(paragraph.text)
        for piece in (textwrap.wrap(sentence, limit) if len(sentence) > limit else [sentence])
    ]
    return pack(sentences, " ", limit)


def pack(pieces: list[tuple[str, int]], gap: str, limit: int) -> list[tuple[str, int]]:
    """Consecutive pieces joined by gap into runs of at most limit characters, each with its first line."""
    packed: list[tuple[str, int]] = []
    for text, line in pieces:
        if packed and len(packed[-1][0]) + len(gap) + len(text) <= limit:
            packed[-1] = (packed[-1][0] + gap + text, packed[-1][1])
        else:
            packed.append((text, line))
    return packed
