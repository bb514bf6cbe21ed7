"""Dense vectors with context: a short reply leans on what it answers, a long message keeps its own meaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from storage.context_vectors import MAX_DENSE_CHARS, contextual_vectors, own_text
from storage.embeddings import SentenceTransformerEmbedder
from storage.models import L0Item

MOMENT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


@dataclass
class Turn:
    earlier: list[L0Item] = field(default_factory=list)


def item(id: int, text: str) -> L0Item:
    return L0Item(id=id, twin_id=1, chat="c", kind="message", sender_name="Mel", text=text, occurred_at=MOMENT)


def test_a_short_reply_leans_on_its_context_and_a_long_message_stands_alone(
    embedder: SentenceTransformerEmbedder,
) -> None:
    question = item(1, "Which basketball team did you sign with for the new season?")
    reply = item(2, "The Minnesota Wolves!")
    long = item(3, "I spent the whole weekend repotting my orchids and cleaning the greenhouse windows. " * 8)
    turns = {1: Turn(), 2: Turn([question]), 3: Turn([question])}

    vectors = contextual_vectors(embedder, [question, reply, long], turns)
    alone = embedder.embed([own_text(reply), own_text(long)])
    topic = embedder.embed(["signing with a basketball team"])[0]

    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[1] @ topic > alone[0] @ topic + 0.05  # the reply is now about the signing
    assert vectors[2] @ alone[1] > 0.97  # the long message barely moves
    assert len(own_text(item(4, "x" * 5000))) == MAX_DENSE_CHARS  # nothing the model would cut is embedded
