"""`twin bench ...`: the benchmarks (bench/), each importing its heavy parts only when it runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.common import AudienceOption, console, fail, out


class DataFormat(StrEnum):
    auto = "auto"
    locomo = "locomo"
    longmemeval = "longmemeval"


bench_app = typer.Typer(help="Benchmarks that print figures and record them.", no_args_is_help=True)


@bench_app.command("retrieval")
def bench_retrieval(
    data: Annotated[Path, typer.Option(help="LoCoMo JSON (locomo10.json) or LongMemEval JSON (.json or .json.gz).")],
    format: Annotated[DataFormat, typer.Option("--format", help="The dataset's format.")] = DataFormat.auto,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions (quick checks).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
) -> None:
    """Retrieval quality on LoCoMo or LongMemEval: hybrid and its sides against plain BM25, dense and fusion."""
    from bench.retrieval import run_retrieval_bench

    if not data.is_file():
        fail(f"{data}: no such file", 2)
    run_retrieval_bench(data, as_json=as_json, results_path=results, console=console, out=out,
                        format=format.value, limit=limit)


@bench_app.command("ingest")
def bench_ingest(
    locomo: Annotated[Path, typer.Option(help="LoCoMo JSON: its turns are the short chat lines.")],
    longmemeval: Annotated[Path, typer.Option(help="LongMemEval JSON(.gz): its user turns are the long messages.")],
    n: Annotated[int, typer.Option("--n", min=100, help="Messages of each shape.")] = 2000,
    profile: Annotated[bool, typer.Option("--profile", help="Also print a cProfile of each import.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
) -> None:
    """Import throughput on short chat lines and long messages, against the embedding model alone on the same texts."""
    from bench.ingest import run_ingest_bench

    for path in (locomo, longmemeval):
        if not path.is_file():
            fail(f"{path}: no such file", 2)
    run_ingest_bench(locomo, longmemeval, n, profile, as_json=as_json, results_path=results, console=console, out=out)


@bench_app.command("scale")
def bench_scale(
    n: Annotated[int, typer.Option("--n", min=1000, help="Synthetic messages to ingest.")] = 100_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
) -> None:
    """Ingest throughput and search latency at 10k and N items, peak memory."""
    from bench.scale import run_scale_bench

    run_scale_bench(n, as_json=as_json, results_path=results, console=console, out=out)


@bench_app.command("tenants")
def bench_tenants(
    twins: Annotated[int, typer.Option("--twins", min=2, help="Twins in the shared store.")] = 10,
    n: Annotated[int, typer.Option("--n", min=100, help="Synthetic messages per twin.")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
) -> None:
    """Search latency per twin with many twins in one store, against one twin alone, side by side in one run."""
    from bench.tenants import run_tenants_bench

    run_tenants_bench(twins, n, as_json=as_json, results_path=results, console=console, out=out)


@bench_app.command("pipeline")
def bench_pipeline(
    n: Annotated[int, typer.Option("--n", min=1000, help="Items in memory (built once, then reused).")] = 100_000,
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Also time the local vLLM (TTFT, tokens/s).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
) -> None:
    """Time per message outside generation at N items, and the local vLLM's speed for 1 and 8 conversations."""
    from bench.pipeline import run_pipeline_bench

    run_pipeline_bench(n, llm, as_json=as_json, results_path=results, console=console, out=out)


@bench_app.command("training")
def bench_training(
    budget: Annotated[float, typer.Option("--budget", min=1, help="Minutes for the whole loop per audience.")] = 12.0,
    dpo: Annotated[bool, typer.Option("--dpo/--no-dpo", help="Run DPO after SFT.")] = True,
    teacher: Annotated[bool, typer.Option("--teacher/--no-teacher", help=(
        "Ask TWIN_TRAINING's teacher and judge (default the local model when it runs) for paraphrases, reasoning "
        "and the judge's metrics, as `twin train` does; off: templates alone, the same data every run."))] = False,
    audience: Annotated[list[AudienceOption] | None, typer.Option(
        help="An adapter to train (repeat for more; default: the owner's and the public (stranger) one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    results: Annotated[Path | None, typer.Option(help="Append the figures to this JSONL file.")] = None,
    report: Annotated[Path | None, typer.Option(help=(
        "Write each evaluation here as `twin eval --report` does (JSON, Markdown, PNG chart), one folder per "
        "adapter and mode: owner-weights, owner-serving, ..."))] = None,
    missed: Annotated[bool, typer.Option("--missed", help=(
        "List each probe the chosen adapter got wrong, weights and serving mode: the question, what a right "
        "answer holds, what it said."))] = False,
) -> None:
    """The whole training loop on the shipped synthetic owner: what the weights know, leaks, time and memory."""
    from bench.training import run_training_bench

    audiences = tuple(a.value for a in audience or [AudienceOption.owner, AudienceOption.stranger])
    run_training_bench(budget_minutes=budget, dpo=dpo, teacher=teacher, audiences=audiences, as_json=as_json,
                       results_path=results, console=console, out=out, report_dir=report,
                       missed=missed)
