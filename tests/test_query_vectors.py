"""A message is embedded once for L0 search and fact ranking together (storage.query_vectors)."""

import threading

import numpy as np
import pytest

from storage.query_vectors import KEEP_SECONDS, QueryVectors, text_digest


class SlowEmbed:
    """Counts its calls; the first waits until told, so a second caller surely arrives meanwhile."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        self.started.set()
        self.release.wait(5)
        return np.array([[float(len(text)), 1.0] for text in texts])


def test_callers_asking_for_the_same_text_at_once_share_one_embedding() -> None:
    embed = SlowEmbed()
    vectors = QueryVectors(embed)
    results: list[np.ndarray] = []
    callers = [threading.Thread(target=lambda: results.append(vectors.vector("where do I live?"))) for _ in range(3)]
    for caller in callers:
        caller.start()
    assert embed.started.wait(5)
    embed.release.set()
    for caller in callers:
        caller.join(5)
    assert embed.calls == [["where do I live?"]]
    assert len(results) == 3 and all((r == results[0]).all() for r in results)
    assert all("live" not in key for key in vectors._done)  # keyed by a digest: no message text is held


def test_a_vector_is_kept_for_seconds_only_and_a_failure_is_not_shared() -> None:
    now = [0.0]
    embed = SlowEmbed()
    embed.release.set()
    vectors = QueryVectors(embed, clock=lambda: now[0])
    vectors.vector("hello")
    vectors.vector("hello")
    assert len(embed.calls) == 1
    now[0] = KEEP_SECONDS + 1
    vectors.vector("hello")
    assert len(embed.calls) == 2  # expired: embedded again
    now[0] += KEEP_SECONDS + 1
    vectors.vector("other")
    assert len(vectors._done) == 1  # the expired one is gone

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model down")

    failing = QueryVectors(broken)
    with pytest.raises(RuntimeError):
        failing.vector("hello")
    assert not failing._pending and not failing._done  # nothing left behind: the next caller tries again


def test_any_text_has_a_key_lone_surrogates_too() -> None:
    assert text_digest("caf\udce9") != text_digest("café")  # a platform's broken text neither crashes nor collides
