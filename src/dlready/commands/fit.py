"""``dlready fit``: will this model run on this machine, and how (docs/fit.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.fit.catalog import ModelSpec
    from dlready.fit.measure import Measurement
    from dlready.fit.plan import FitReport
    from dlready.model import MachineSnapshot
    from dlready.result import CommandResult


COMMAND = "fit"


def _machine_snapshot(snapshot_file: Path | None) -> MachineSnapshot:
    from dlready.result import CommandError, Problem

    if snapshot_file is not None:
        from dlready.snapshot_file import load_snapshot_file

        try:
            return load_snapshot_file(snapshot_file)
        except ValueError as exc:
            raise CommandError(ExitCode.USAGE, Problem("bad_snapshot", str(exc))) from None
    from dlready.probes.collect import collect_snapshot

    try:
        return collect_snapshot()
    except Exception as exc:  # noqa: BLE001  # never a traceback: report and exit 3
        raise CommandError(
            ExitCode.COULD_NOT_RUN,
            Problem(
                "detection_failed",
                f"probing this machine failed: {type(exc).__name__}: {exc}",
                "judge a saved report instead: dlready fit MODEL --snapshot report.json",
            ),
        ) from None


def fit_command(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="A known model (llama-3-8b, meta-llama/Llama-2-7b-hf, bert-base, ...), a path "
            "to a Hugging Face config.json, or a parameter count such as 7B or 110M.",
        ),
    ],
    task: Annotated[
        str, typer.Option("--task", metavar="TASK", help="infer (default), train, lora or qlora.")
    ] = "infer",
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            metavar="DTYPE",
            help="fp32, bf16, fp16 (training: mixed precision), int8 or int4 (inference). "
            "Default: bf16 (fp16 on GPUs before Ampere).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Batch per GPU.", min=1)] = 1,
    seq: Annotated[
        int | None,
        typer.Option(
            "--seq",
            metavar="TOKENS",
            help="Tokens per sequence (inference: the whole context).",
            min=1,
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            "--optimizer", metavar="OPTIMIZER", help="adamw (default), adamw-8bit or sgd."
        ),
    ] = None,
    gradient_checkpointing: Annotated[
        bool,
        typer.Option("--gradient-checkpointing", help="Recompute activations in the backward."),
    ] = False,
    attention: Annotated[
        str,
        typer.Option(
            "--attention",
            metavar="ATTENTION",
            help="sdpa (fused kernels, default) or eager (keeps the scores).",
        ),
    ] = "sdpa",
    lora_rank: Annotated[
        int | None,
        typer.Option("--lora-rank", metavar="RANK", help="LoRA rank (default 16).", min=1),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="SHARD",
            help="Training over several GPUs: none (data parallel, default), zero2 or zero3 "
            "(FSDP).",
        ),
    ] = None,
    offload: Annotated[
        bool, typer.Option("--offload", help="Keep optimizer states (or layers) in CPU RAM.")
    ] = False,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", metavar="N", help="Use this many of the machine's GPUs.", min=1),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="auto (default): the machine's GPUs; stops when a GPU is there but its driver "
            "does not work. cpu: judge against the RAM, whatever GPUs there are.",
        ),
    ] = "auto",
    snapshot_file: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            metavar="FILE",
            help="Judge a saved `dlready check --json` report instead.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the versioned JSON report (docs/json-schema.md).")
    ] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown report.")
    ] = False,
    run_measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Build one block of the model with torch and compare the estimate with what "
            "it really takes (needs torch).",
        ),
    ] = False,
    measure_timeout: Annotated[
        float,
        typer.Option(
            "--measure-timeout", metavar="SECONDS", help="Seconds --measure may take.", min=1
        ),
    ] = 300.0,
) -> None:
    """Will MODEL run on this machine, and how: memory per GPU, item by item, and what would
    make it fit (precision, gradient checkpointing, 8-bit optimizer, LoRA, QLoRA, sharding,
    offload, a smaller batch).
    """
    from dlready import result

    result.run(
        COMMAND,
        lambda: _fit(
            model, task, dtype, batch, seq, optimizer, gradient_checkpointing, attention,
            lora_rank, shard, offload, gpus, device, snapshot_file, run_measure,
            measure_timeout,
        ),
        as_json=as_json,
        as_markdown=as_markdown,
    )  # fmt: skip


def _fit(
    model: str,
    task: str,
    dtype: str | None,
    batch: int,
    seq: int | None,
    optimizer: str | None,
    gradient_checkpointing: bool,
    attention: str,
    lora_rank: int | None,
    shard: str | None,
    offload: bool,
    gpus: int | None,
    device: str,
    snapshot_file: Path | None,
    run_measure: bool,
    measure_timeout: float,
) -> CommandResult:
    from dlready.fit.catalog import ModelLookupError, resolve_model
    from dlready.fit.estimate import DEFAULT_LORA_RANK, SHARDINGS, Request, RequestError
    from dlready.fit.plan import GpuUnusableError, MachineError, machine_from_snapshot, plan
    from dlready.result import CommandError, Problem, usage_error

    for name, value, allowed in (
        ("--task", task, ("infer", "train", "lora", "qlora")),
        ("--optimizer", optimizer, (None, "adamw", "adamw-8bit", "sgd")),
        ("--attention", attention, ("sdpa", "eager")),
        ("--shard", shard, (None, *SHARDINGS[:3])),
        ("--dtype", dtype, (None, "fp32", "bf16", "fp16", "int8", "int4")),
        ("--device", device, ("auto", "cpu")),
    ):
        if value not in allowed:
            raise usage_error(f"{name} {value}: choose one of {', '.join(a for a in allowed if a)}")
    try:
        spec = resolve_model(model)
    except ModelLookupError as exc:
        if exc.suggestions:
            hint: str | None = f"did you mean: {', '.join(exc.suggestions)}"
        elif exc.code == "unknown_model":
            hint = (
                "it is not built in: give the path to its config.json (or to the folder that "
                "holds it), or its parameter count such as 1.5B"
            )
        elif exc.code == "bad_model_config":
            hint = (
                "give the model's parameter count instead (such as 11B) for a rough estimate "
                "from a decoder of that size"
            )
        else:
            hint = None
        problem = Problem(
            exc.code,
            str(exc),
            hint,
            detail={"suggestions": list(exc.suggestions)} if exc.suggestions else {},
        )
        raise CommandError(ExitCode.USAGE, problem) from None
    senseless = _senseless_flags(
        spec, task, seq, optimizer, gradient_checkpointing, lora_rank, shard
    )
    if senseless:
        raise usage_error(senseless)
    shard = shard or "none"
    snapshot = _machine_snapshot(snapshot_file)
    if device == "cpu" and gpus is not None:
        raise usage_error("--gpus and --device cpu exclude each other")
    try:
        machine = machine_from_snapshot(snapshot, gpus, cpu_only=device == "cpu")
    except GpuUnusableError as exc:
        raise CommandError(
            ExitCode.USAGE,
            Problem(
                "gpu_unusable",
                exc.problem,
                exc.fix,
                detail={"evidence": exc.evidence},
                more=(
                    f"GPU evidence: {exc.evidence}",
                    "to judge against the RAM anyway: add --device cpu",
                ),
            ),
        ) from None
    except MachineError as exc:
        if gpus is not None and "--gpus" in str(exc):
            raise usage_error(str(exc)) from None
        raise CommandError(ExitCode.COULD_NOT_RUN, Problem("detection_failed", str(exc))) from None
    if shard != "none" and len(machine.gpus) < 2:
        usable = machine.usable_gpu_count
        has = f"this machine has {usable} usable GPU" + ("" if usable == 1 else "s")
        if device == "cpu":
            why = "it spreads the model states over GPUs, and --device cpu was asked"
        elif gpus is not None:
            why = f"--gpus {gpus} asks for one ({has})"
        elif usable > 1:
            why = (
                f"this machine's {usable} GPUs differ and only the largest is planned for; "
                f"--gpus {usable} uses all of them"
            )
        else:
            why = has
        raise usage_error(f"--shard {shard} needs several GPUs; {why}")
    default_dtype = "bf16" if machine.bf16 else "fp16"
    if task == "qlora" and dtype in (None, "int4"):
        dtype = default_dtype
    # --gpus N for inference: the model split over the N GPUs (one process, its layers spread
    # over them); training's --gpus is the data-parallel group, split only by --shard.
    split = task == "infer" and gpus is not None and len(machine.gpus) > 1
    if split:
        shard = "split"
    request = Request(
        task=task,
        dtype=dtype or default_dtype,
        batch=batch,
        seq=seq or 0,
        optimizer=optimizer or "adamw",
        recompute=gradient_checkpointing,
        attention=attention,
        lora_rank=lora_rank or DEFAULT_LORA_RANK,
        sharding=shard,
        gpus=len(machine.gpus) if shard != "none" else 1,
        offload=offload,
    )
    try:
        report = plan(spec, request, machine)
    except RequestError as exc:
        raise usage_error(str(exc)) from None
    measurement = (
        _measure(report, measure_timeout, snapshot_file is not None) if run_measure else None
    )
    return _result(report, measurement)


def _senseless_flags(
    spec: ModelSpec,
    task: str,
    seq: int | None,
    optimizer: str | None,
    gradient_checkpointing: bool,
    lora_rank: int | None,
    shard: str | None,
) -> str | None:
    """Why a flag the user gave makes no sense for this task or model (None: all make sense).
    Only given flags are judged: the defaults always make sense."""
    if task == "infer":
        given = [
            name
            for name, value in (
                ("--optimizer", optimizer),
                ("--gradient-checkpointing", gradient_checkpointing or None),
                ("--lora-rank", lora_rank),
                ("--shard", shard if shard not in (None, "none") else None),
            )
            if value is not None
        ]
        if given:
            return (
                f"{', '.join(given)}: training only; inference (--task infer) has no optimizer, "
                "backward pass, adapters or sharded model states (splitting the model over "
                "GPUs is among the strategies fit lists by itself)"
            )
    if task == "train" and lora_rank is not None:
        return "--lora-rank: full training (--task train) has no adapters; use --task lora"
    if seq is not None and spec.family in ("resnet", "vit"):
        shape = f"its {spec.vit_tokens} patches" if spec.family == "vit" else "a 224x224 image"
        return f"--seq: {spec.id} takes no token sequence ({shape}); leave --seq out"
    return None


def _measure(report: FitReport, timeout_s: float, from_snapshot: bool = False) -> Measurement:
    from msgspec.structs import replace

    from dlready.fit.measure import MeasureError, measure
    from dlready.result import CommandError, Problem

    try:
        # Measured on this machine, whatever --snapshot judged: the GPU when torch can use one.
        measured = measure(report.model, report.request, "auto", timeout_s)
        if from_snapshot:
            note = (
                "--snapshot judged the saved machine, but --measure ran here: the ratios check "
                "the formulas, not the saved machine's verdict"
            )
            measured = replace(measured, notes=(note, *measured.notes))
        return measured
    except MeasureError as exc:
        if exc.torch_missing:
            problem = Problem(
                "torch_not_installed",
                str(exc),
                "install it (`dlready install-cmd` prints the right command), or drop --measure",
            )
        else:
            problem = Problem("measure_failed", str(exc))
        raise CommandError(ExitCode.COULD_NOT_RUN, problem) from None


def _result(report: FitReport, measurement: Measurement | None) -> CommandResult:
    from dlready.render.fit_render import render_markdown, render_text, report_jsonable
    from dlready.result import CommandResult

    return CommandResult(
        COMMAND,
        ExitCode.OK if report.fits else ExitCode.NOT_READY,
        data=report_jsonable(report, measurement),
        status="fits" if report.fits else ("unknown" if report.unknown else "does_not_fit"),
        text=lambda streams: render_text(report, streams, measurement),
        markdown=lambda streams: streams.write(render_markdown(report, measurement)),
    )
