"""The evaluation report people read (`twin eval --report`, `twin bench training --report`): JSON, Markdown, PNG."""

import json
import struct
from pathlib import Path

from training.report import write_report

EVALUATION = {"task_version": 3, "probe_version": "owner-1a2b", "mode": "weights", "judge": "n/a: no judge configured",
              "seconds": 12.5, "models": {
                  "base": {"recall_topic": 0.0, "recall_indirect": 0.0, "leaks": 0, "counts": {"recall_topic": 54}},
                  "sft": {"recall_topic": 1.0, "recall_indirect": 0.4444, "json_valid": 1.0, "leaks": 0,
                          "voice_nll": 4.11, "counts": {"recall_topic": 54}}}}


def test_the_report_holds_the_evaluation_as_json_a_table_and_a_chart(tmp_path: Path) -> None:
    write_report(EVALUATION, tmp_path / "owner-weights")
    folder = tmp_path / "owner-weights"
    assert json.loads((folder / "evaluation.json").read_text()) == EVALUATION
    table = (folder / "evaluation.md").read_text()
    assert "| figure | base | sft |" in table and "Probe set `owner-1a2b`" in table
    assert "| recall_indirect | 0.00 | 0.44 |" in table
    assert "| json_valid | - | 1.00 |" in table  # a figure a model has no probe for is a dash, not a zero
    assert "counts" not in table
    png = (folder / "evaluation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width >= 600 and height >= 400


def test_a_results_row_names_the_commit_measured_not_the_one_checked_out_at_the_end(tmp_path: Path) -> None:
    from bench.scale import record_result

    results = tmp_path / "results.jsonl"
    record_result({"bench": "training"}, results, commit="abc123")  # read when the bench started
    record_result({"bench": "scale"}, results)
    first, second = (json.loads(line) for line in results.read_text().splitlines())
    assert first["commit"] == "abc123" and first["bench"] == "training" and first["machine"]["cpus"]
    assert second["commit"] != "abc123" and second["bench"] == "scale"  # the checked-out one (or None outside git)
