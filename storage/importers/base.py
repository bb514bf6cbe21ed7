"""What every importer shares: the result of reading one entry, and timestamp helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from storage.items import NewItem


@dataclass(frozen=True)
class Rejected:
    """An entry that could not be read: where it is in the file and what was wrong with it."""

    path: str
    location: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.location}: {self.problem}"


Entry = NewItem | Rejected


class Importer(Protocol):
    """Reads one export format into new L0 items."""

    name: str

    def detect(self, path: Path) -> bool:
        """Whether the path looks like this format."""
        ...

    def read(self, path: Path) -> Iterator[Entry]:
        """Every entry, in file order; a file that cannot be parsed at all raises ImportFormatError."""
        ...

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """The owner's sender ids, when the export itself says who exported it (else empty)."""
        ...


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC; a naive time is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def describe_validation_error(error: ValidationError) -> str:
    """Pydantic's errors as one line: 'field: message; field: message'."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "entry"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)
