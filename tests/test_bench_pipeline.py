"""`twin bench pipeline` times the pipeline by wrapping its dependencies: a rename there must not break the bench."""

import asyncio
from pathlib import Path

from bench.pipeline import seed_facts, time_overhead
from twin.app import open_twin
from twin.settings import Settings
from twin.testing import RecordingLLM


def test_the_pipeline_bench_times_every_step_of_real_messages(tmp_path: Path) -> None:
    with RecordingLLM() as llm, open_twin(Settings(_env_file=None, data_dir=tmp_path, owner_name="Owner")) as app:
        assert seed_facts(app) == 32 and seed_facts(app) == 32  # once: a second call adds nothing
        figures = asyncio.run(time_overhead(app, llm.url, 3))
        assert len(llm.requests) >= 3  # each message reached the model
    for step in ("dedupe_l0_write", "identify", "history", "retrieval", "profile_and_facts", "generation",
                 "reply_log", "overhead", "background_indexing"):
        assert figures[step]["p50_ms"] > 0, step  # a wrapper that no longer wraps anything times nothing
    assert figures["overhead"]["p95_ms"] < figures["total"]["p95_ms"]
