"""An evaluation written out for people: JSON (what produced it included), Markdown and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHART_FIGURES = ("recall_topic", "recall_indirect", "recall_others", "control", "critique_accuracy",
                 "enhance_coverage", "json_valid")


def markdown(data: dict[str, Any]) -> str:
    """The evaluation as a Markdown table, one column per model."""
    models = data["models"]
    names = list(models)
    figures = sorted({key for row in models.values() for key in row if key not in ("counts",)})
    lines = [f"# Evaluation ({data['mode']} mode)", "",
             f"Probe set `{data['probe_version']}`, task version {data['task_version']}; judge metrics: "
             f"{data['judge']}.", "", "| figure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for figure in figures:
        cells = [models[name].get(figure) for name in names]
        lines.append(f"| {figure} | " + " | ".join("-" if c is None else f"{c:.2f}" if isinstance(c, float)
                                                   else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def chart(data: dict[str, Any], path: Path) -> None:
    """Grouped bars: each figure (0..1), one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = data["models"]
    figures = [f for f in CHART_FIGURES if any(f in row for row in models.values())]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, len(figures) * 1.4), 4))
    for at, (name, row) in enumerate(models.items()):
        ax.bar([i + at * width for i in range(len(figures))], [row.get(f) or 0 for f in figures], width, label=name)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(figures))], figures, rotation=20,
                  ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Twin evaluation ({data['mode']} mode, {data['probe_version']})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(data: dict[str, Any], folder: Path) -> None:
    """evaluation.json, evaluation.md and evaluation.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (folder / "evaluation.md").write_text(markdown(data), encoding="utf-8")
    chart(data, folder / "evaluation.png")
