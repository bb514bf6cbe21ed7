"""Dense vectors that carry a message's context without embedding it: the message's own vector, plus the mean of
the vectors of the turns before it, weighted by how much the message needs them.

Embedding the message together with its earlier turns (the text) cost 2-4x the model time of the message alone
and, on long messages, let the context outweigh the message itself. Here every turn is embedded once, alone (its
day and sender included), and a short reply ("The Minnesota Wolves!") leans on what it answers, while a long
message stands on its own words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from storage.embeddings import Embedder
from storage.models import L0Item

MAX_DENSE_CHARS = 1500  # the model reads 256 tokens (about 1,000-1,300 characters of English); the rest is cut
SHORT_CHARS = 100  # a message up to this long takes its context at full weight; longer ones less, in proportion


class HasEarlier(Protocol):
    earlier: list[L0Item]


def own_text(item: L0Item) -> str:
    """What the model embeds for an item: its day, sender and words, no longer than the model reads."""
    from storage.memory import index_text

    return index_text(item)[:MAX_DENSE_CHARS]


def context_weight(item: L0Item) -> float:
    """How much the earlier turns count against the message's own vector: 1 for a short line, less as it grows."""
    return min(1.0, SHORT_CHARS / max(len(item.text), 1))


def contextual_vectors(embedder: Embedder, rows: Sequence[L0Item], turns: Mapping[int, HasEarlier]) -> np.ndarray:
    """One unit vector per row: its own embedding plus its earlier turns' mean, at the row's context weight."""
    wanted: dict[int, L0Item] = {row.id: row for row in rows}
    for row in rows:
        for before in turns[row.id].earlier:
            wanted.setdefault(before.id, before)
    ids = list(wanted)
    own = dict(zip(ids, embedder.embed([own_text(wanted[id]) for id in ids]), strict=True))
    vectors = np.empty((len(rows), len(own[rows[0].id]) if rows else 0), dtype=np.float32)
    for at, row in enumerate(rows):
        vector = own[row.id].astype(np.float32, copy=True)
        earlier = turns[row.id].earlier
        if earlier:
            vector += context_weight(row) * np.mean([own[before.id] for before in earlier], axis=0)
        vectors[at] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return vectors
