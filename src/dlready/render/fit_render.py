"""Words, tables and JSON for a :class:`~dlready.fit.plan.FitReport` (reads it, never probes)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from dlready.fit.catalog import parameter_count
from dlready.fit.estimate import Breakdown, Request, effective_seq
from dlready.fit.plan import host_offload_fits
from dlready.model import GpuVendor
from dlready.render.text import format_number, print_prose, printable

if TYPE_CHECKING:
    from rich.console import Console

    from dlready.fit.measure import Measurement
    from dlready.fit.plan import FitReport, Option
    from dlready.result import Streams

GIB = 2**30
ITEM_LABELS = {
    "weights": "weights",
    "gradients": "gradients",
    "optimizer": "optimizer states",
    "activations": "activations",
    "kv_cache": "KV cache",
    "transient": "peak temporaries",
    "cuda_context": "CUDA context",
    "allocator": "allocator overhead",
}
CONTEXT_LABELS = {GpuVendor.NVIDIA: "CUDA context", GpuVendor.AMD: "ROCm (HIP) context"}
TASK_WORDS = {
    "infer": "inference",
    "train": "full training",
    "lora": "LoRA fine-tuning",
    "qlora": "QLoRA fine-tuning",
}
SHARDING_WORDS = {
    "zero2": "ZeRO-2 over {gpus} GPUs",
    "zero3": "ZeRO-3 / FSDP over {gpus} GPUs",
    "split": "split over {gpus} GPUs",
}
OPTIMIZER_WORDS = {"adamw": "AdamW", "adamw-8bit": "8-bit AdamW", "sgd": "SGD with momentum"}


def gib(value: float) -> str:
    """Bytes for people: MiB below 1 GiB, GiB, TiB from 1024 GiB on."""
    if abs(value) < GIB:  # zero too: one unit rule, "0 MiB"
        return f"{format_number(round(value / 2**20))} MiB"
    if abs(value) >= 1024 * GIB:
        return f"{_one_decimal(value / 2**40)} TiB"
    return f"{_one_decimal(value / GIB)} GiB"


def _one_decimal(value: float) -> str:
    """One decimal (17.2), thousands separated from 1000 on (the project's number format)."""
    return format_number(value) if abs(value) >= 1000 else f"{value:.1f}"


def count_words(value: int) -> str:
    """A parameter count for people: 7.0 billion, 124.4 million, 66,000."""
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if value >= size:
            return f"{_one_decimal(value / size)} {word}"
    return format_number(value)


def model_line(report: FitReport) -> str:
    """The model and its size: ``meta-llama/Meta-Llama-3-8B (8.0 billion parameters)``, or
    ``7.0 billion parameters`` for a bare count (its name says nothing more)."""
    spec = report.model
    size = f"{count_words(parameter_count(spec))} parameters"
    if spec.origin == "count":
        return size
    return f"{printable(spec.hf_id or spec.id)} ({size})"


def item_label(report: FitReport, name: str) -> str:
    """An item's name; the context is the GPU vendor's runtime (CUDA, ROCm/HIP)."""
    vendor = report.machine.vendor
    if name == "cuda_context" and vendor is not None:
        return CONTEXT_LABELS.get(vendor, "GPU runtime context")
    return ITEM_LABELS[name]


def describe_request(report: FitReport, request: Request | None = None) -> str:
    """One line: task, precision, optimizer, batch and sequence."""
    request = request or report.request
    spec = report.model
    parts = [TASK_WORDS[request.task]]
    if request.task == "infer":
        parts.append(f"{request.dtype} weights")
    elif request.task == "train":
        parts.append("fp32" if request.dtype == "fp32" else f"{request.dtype} mixed precision")
        parts.append(OPTIMIZER_WORDS[request.optimizer])
    else:
        parts.append(f"{base_weight_words(request)}, rank {request.lora_rank}")
        parts.append(OPTIMIZER_WORDS[request.optimizer])
    if request.recompute:
        parts.append("gradient checkpointing")
    if request.sharding in SHARDING_WORDS and request.gpus > 1:
        parts.append(SHARDING_WORDS[request.sharding].format(gpus=request.gpus))
    batch = format_number(request.batch)
    if spec.family == "resnet":
        parts.append(f"batch {batch} at {spec.image_size}x{spec.image_size}")
    else:
        parts.append(f"batch {batch} x {format_number(effective_seq(spec, request))} tokens")
    return ", ".join(parts)


def base_weight_words(request: Request) -> str:
    """LoRA's frozen base weights: their precision (4-bit is QLoRA, whatever the task says)."""
    if request.task == "qlora" or request.dtype == "int4":
        quantised = "4-bit NF4 base weights"
        compute = "bf16" if request.dtype in ("int4", "fp32") else request.dtype
        named = "" if request.task == "qlora" else " (that is QLoRA)"
        return f"{quantised}{named}, {compute} compute"
    if request.dtype == "int8":
        return "8-bit base weights, bf16 compute"
    return f"{request.dtype} base weights"


def describe_machine(report: FitReport) -> str:
    """One line: the GPUs used (or the RAM)."""
    machine = report.machine
    if not machine.gpus:
        room = (
            f"{gib(report.budget_bytes)} available"
            if machine.budget_read
            else f"available unknown; {gib(report.budget_bytes)} in all"
        )
        if machine.unified_memory:
            return f"this machine's unified memory, shared by its Apple GPU and CPU ({room})"
        return f"this machine's CPU and RAM ({room})"
    counts = Counter(printable(gpu.name) for gpu in machine.gpus)
    free_read = [g.free_bytes is not None for g in machine.gpus]
    if all(free_read):
        free = "free per GPU"
    elif not any(free_read):
        free = "total per GPU; free memory unknown"
    else:
        free = "per GPU: free where read, else the total"
    if len(counts) == 1:
        count = f"{len(machine.gpus)} x " if len(machine.gpus) > 1 else ""
        names = f"{count}{next(iter(counts))}"
    else:  # each model with its own count: 1 x RTX 4090 + 1 x RTX 2080 Ti
        names = " + ".join(f"{n} x {name}" for name, n in sorted(counts.items()))
    return f"{names} ({gib(report.budget_bytes)} {free})"


def left_out_lines(report: FitReport) -> list[str]:
    """The machine's GPUs not planned for, each with why."""
    return [f"left out: {printable(line)}" for line in report.machine.left_out]


def headline(report: FitReport) -> str:
    """The verdict in one sentence."""
    need = report.asked.device_bytes
    where = "per GPU" if report.machine.gpus else f"of {_budget_column(report)}"
    if report.blocked:
        return f"Does not run as asked: {report.blocked}."
    if report.unknown and report.machine.budget_read:  # only the RAM for offloading is unread
        return (
            f"Unknown whether it fits: the GPU part fits ({gib(need)} {where}, "
            f"{gib(report.budget_bytes)} available), but {offload_text(report, report.asked)}."
        )
    if report.unknown:
        return (
            f"Unknown whether it fits: needs {gib(need)} {where}, within the "
            f"{gib(report.budget_bytes)} in all, but {_unread_words(report)} could not be read."
        )
    if report.fits:
        word = "Fits, but tight" if report.tight else "Fits"
        return f"{word}: needs {gib(need)} {where}, {gib(report.margin_bytes)} to spare."
    room = "available" if report.machine.budget_read else "in all"
    if need <= report.budget_bytes:  # the GPU part fits: the host RAM for offload does not
        return (
            f"Does not fit as asked: the GPU part fits ({gib(need)} {where}, "
            f"{gib(report.budget_bytes)} {room}), but {offload_text(report, report.asked)}."
        )
    return f"Does not fit as asked: needs {gib(need)} {where}, {gib(report.budget_bytes)} {room}."


def _goal(report: FitReport) -> str:
    """What the strategies achieve: run (8-/4-bit without a GPU) or fit, within the total when
    the free memory could not be read (an upper bound, never a pass)."""
    if report.blocked:
        return "run"
    return "fit" if report.machine.budget_read else "fit within the total"


def _unread_words(report: FitReport) -> str:
    """What memory could not be read, for the unknown verdict (the budget's)."""
    machine = report.machine
    if machine.gpus:
        return "the GPUs' free memory" if len(machine.gpus) > 1 else "the GPU's free memory"
    return "the RAM available"


def offload_text(report: FitReport, breakdown: Breakdown) -> str:
    """What is offloaded needs this much host RAM, against what the machine has."""
    what = "the offloaded layers" if report.request.task == "infer" else "the offloaded states"
    need = f"{what} need {gib(breakdown.host_offload_bytes)} of host RAM"
    return f"{need} and {_host_room_words(report)}"


def _host_room_words(report: FitReport) -> str:
    """The host RAM against which offloaded parts are judged, saying what was not read."""
    machine = report.machine
    if machine.ram_available_bytes is not None:
        return f"{gib(machine.ram_available_bytes)} is available"
    if machine.ram_total_bytes is not None:
        return f"what is available could not be read ({gib(machine.ram_total_bytes)} in all)"
    return "this machine's RAM could not be read"


def fits_word(report: FitReport, option: Option) -> str:
    """The strategy table's verdict: yes, alone: yes, no, or no: host RAM. A row that lowers
    only its own figure (not those above it) is judged alone, never "yes" for the rows above."""
    if option.fits and option.adds:
        return "yes"
    if option.alone_fits:
        return "alone: yes"
    breakdown = option.breakdown
    if breakdown.device_bytes <= report.budget_bytes and not host_offload_fits(
        breakdown, report.machine
    ):
        return "no: host RAM"
    return "no"


def advice(report: FitReport) -> list[str]:
    """What would make it fit, or the largest batch."""
    lines: list[str] = []
    batch = report.machine.batch_words
    if report.fits:
        lines.append(f"Largest {batch} that fits as asked: {report.largest_batch}.")
    elif report.unknown:
        if report.machine.budget_read:  # only the RAM for the offloaded part was not read
            within, look = "on the GPU", "the RAM available"
        else:
            within = "within the total (an upper bound)"
            look = "the GPUs' free memory" if report.machine.gpus else "the RAM available"
        lines.append(
            f"Largest {batch} that fits {within}: {report.largest_batch}. "
            f"Check {look} before running it."
        )
    elif report.recommended is not None:
        option = report.recommended
        where = "per GPU" if report.machine.gpus else f"of {_budget_column(report)}"
        goal = _goal(report)
        lines.append(
            f"Cheapest way to make it {goal}: {option.title}: "
            f"{gib(option.breakdown.device_bytes)} {where}; largest batch then: "
            f"{report.recommended_largest_batch}."
        )
        lines += [f"  - {how}" for how in option.how.split("; ")]
        # Item by item, so that its figure can be traced (the table's stacked column adds
        # every strategy above a row; this combination only the ones it needs).
        items = ", ".join(
            f"{label} {value}" for label, value in _breakdown_rows(report, option.breakdown)
        )
        unit = "per GPU" if report.machine.gpus else f"in {_budget_column(report)}"
        lines.append(f"  - {unit}: {items}; total {gib(option.breakdown.device_bytes)}")
        if option.breakdown.host_offload_bytes:
            lines.append(f"  - {offload_text(report, option.breakdown)}")
    else:
        lines.append(
            "None of the strategies above makes it fit on this machine."
            if report.options
            else "No strategy dlready knows makes it fit on this machine."
        )
    if report.request.offload and report.asked.host_offload_bytes:
        room = report.machine.ram_available_bytes
        lines.append(
            f"Host RAM for offloading: {gib(report.asked.host_offload_bytes)}; "
            + (f"{gib(room)} available" if room is not None else _host_room_words(report))
            + ("." if host_offload_fits(report.asked, report.machine) else ": too little.")
        )
    if report.parallelism:
        lines.append(f"Several GPUs: {report.parallelism}.")
    files = f"{report.model.checkpoint_dtype} files"
    if report.model.origin == "count":
        files += " assumed: only the count is known"
    processes = report.host_load_processes
    if processes > 1:
        each = gib(report.host_load_total_bytes / processes)
        files = f"{processes} processes, one per GPU, each reading {each} of {files}"
    host = f"Host RAM to load the checkpoint: {gib(report.host_load_total_bytes)} ({files})"
    room = report.machine.ram_available_bytes
    short = ", too little to read it at once (see the note)" if report.host_ok is False else ""
    lines.append(host + (f"; {gib(room)} available{short}." if room else "."))
    return lines


def _breakdown_rows(report: FitReport, breakdown: Breakdown) -> list[tuple[str, str]]:
    return [
        (item_label(report, name), gib(value)) for name, value in breakdown.items().items() if value
    ]


def _budget_column(report: FitReport) -> str:
    if report.machine.gpus:
        return "per GPU"
    return "unified memory" if report.machine.unified_memory else "RAM"


def render_text(report: FitReport, streams: Streams, measurement: Measurement | None) -> None:
    """The human report."""
    from rich.markup import escape
    from rich.table import Table

    console = streams.console
    # Prose wraps at words on a terminal, `commands` whole; a pipe gets whole lines.
    model = printable(model_line(report))
    print_prose(console, f"[bold]{escape(model)}[/]: ", f"{model}: ", describe_request(report))
    print_prose(console, "on ", "on ", describe_machine(report))
    for line in left_out_lines(report):
        print_prose(console, "", "", line)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("item")
    table.add_column(_budget_column(report), justify="right")
    for label, value in _breakdown_rows(report, report.asked):
        table.add_row(label, value)
    table.add_row("[bold]total[/]", f"[bold]{gib(report.asked.device_bytes)}[/]")
    console.print(table)
    style = (
        "green"
        if report.fits and not report.tight
        else ("yellow" if report.fits or report.unknown else "red")
    )
    print_prose(console, "", "", headline(report), style=style)
    if report.options and not report.fits:
        goal = _goal(report)
        console.print(f"What would make it {goal}, least costly first:")
        options = Table(show_edge=False, pad_edge=False)
        options.add_column("strategy")
        options.add_column("alone", justify="right")
        options.add_column("with those above", justify="right")
        options.add_column("fits")
        for option in report.options:
            alone = gib(option.alone.device_bytes) if option.alone else "-"
            fits = fits_word(report, option)
            options.add_row(escape(option.title), alone, gib(option.breakdown.device_bytes), fits)
        console.print(options)
    for line in advice(report):
        print_prose(console, "", "", line)
    if measurement is not None:
        render_measurement(measurement, console)
    for note in report.notes:
        print_prose(console, "[dim]note:[/] ", "note: ", note, style="dim")


def render_measurement(measurement: Measurement, console: Console) -> None:
    """Estimate against measurement, item by item."""
    from rich.markup import escape
    from rich.table import Table

    print_prose(
        console,
        f"Measured on {escape(measurement.device)}: ",
        f"Measured on {measurement.device}: ",
        measurement.what,
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("item", "estimate", "measured", "estimate / measured"):
        table.add_column(column, justify="left" if column == "item" else "right")
    for item in measurement.items:
        ratio = f"{item.ratio:.2f}" if item.ratio is not None else "-"
        label = ITEM_LABELS.get(item.name, item.name)
        table.add_row(label, gib(item.estimate_bytes), gib(item.measured_bytes), ratio)
    console.print(table)
    for note in measurement.notes:
        print_prose(console, "[dim]note:[/] ", "note: ", note, style="dim")


def render_markdown(report: FitReport, measurement: Measurement | None) -> str:
    """The report as Markdown."""
    spec = report.model
    lines = [
        f"## dlready fit: {printable(spec.hf_id or spec.id)}",
        "",
        f"{model_line(report)}; {describe_request(report)}; on {describe_machine(report)}.",
        "",
        *(f"- {line}" for line in left_out_lines(report)),
        *([""] if report.machine.left_out else []),
        f"| item | {_budget_column(report)} |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in _breakdown_rows(report, report.asked)),
        f"| **total** | **{gib(report.asked.device_bytes)}** |",
        "",
        f"**{headline(report)}**",
        "",
    ]
    if report.options and not report.fits:
        lines += [
            "| strategy | alone | with those above | fits |",
            "|---|---|---|---|",
        ]
        for option in report.options:
            alone = gib(option.alone.device_bytes) if option.alone else "-"
            fits = fits_word(report, option)
            lines.append(
                f"| {option.title} | {alone} | {gib(option.breakdown.device_bytes)} | {fits} |"
            )
        lines.append("")
    lines += [line if line.startswith("  - ") else f"- {line}" for line in advice(report)]
    if measurement is not None:
        lines += [
            "",
            f"Measured on {measurement.device}: {measurement.what}",
            "",
            "| item | estimate | measured | estimate / measured |",
            "|---|---|---|---|",
        ]
        for item in measurement.items:
            ratio = f"{item.ratio:.2f}" if item.ratio is not None else "-"
            lines.append(
                f"| {ITEM_LABELS.get(item.name, item.name)} | {gib(item.estimate_bytes)} | "
                f"{gib(item.measured_bytes)} | "
                f"{ratio} |"
            )
    lines += [f"- note: {printable(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _breakdown_jsonable(breakdown: Breakdown) -> dict[str, Any]:
    return {
        "items_bytes": {name: round(value) for name, value in breakdown.items().items()},
        "total_bytes": round(breakdown.device_bytes),
        "host_offload_bytes": round(breakdown.host_offload_bytes),
        "trainable_parameters": breakdown.trainable_parameters,
    }


def _request_jsonable(request: Request, report: FitReport) -> dict[str, Any]:
    return {
        "task": request.task,
        "dtype": request.dtype,
        "batch": request.batch,
        "seq": effective_seq(report.model, request),  # the length used, not 0 for the default
        "optimizer": request.optimizer,
        "gradient_checkpointing": request.recompute,
        "attention": request.attention,
        "lora_rank": request.lora_rank,
        "sharding": request.sharding,
        "gpus": request.gpus,
        "offload": request.offload,
        "device": request.device,
    }


def _offload_ok(report: FitReport) -> bool | None:
    """Whether the RAM holds what the request offloads; None when nothing is offloaded, or
    when it fits only within the total RAM (what is available was not read: not a pass)."""
    machine = report.machine
    if not report.asked.host_offload_bytes or machine.host_room_bytes is None:
        return None
    fits = host_offload_fits(report.asked, machine)
    return None if fits and machine.ram_available_bytes is None else fits


def report_jsonable(report: FitReport, measurement: Measurement | None) -> dict[str, Any]:
    """The ``data`` of ``fit --json`` (docs/json-schema.md)."""
    spec = report.model
    request = report.request
    return {
        "model": {
            "id": spec.id,
            "hf_id": spec.hf_id,
            "family": spec.family,
            "origin": spec.origin,
            "parameters": parameter_count(spec),
            "stated_parameters": spec.stated_parameters,
            "sources": spec.sources,
        },
        "request": _request_jsonable(request, report),
        "machine": {
            "device": report.machine.device,
            "gpus": [
                {
                    "index": gpu.index,
                    "name": gpu.name,
                    "total_bytes": gpu.total_bytes,
                    "free_bytes": gpu.free_bytes,
                }
                for gpu in report.machine.gpus
            ],
            "budget_bytes": report.budget_bytes,
            "ram_available_bytes": report.machine.ram_available_bytes,
            "budget_read": report.machine.budget_read,
            "unified_memory": report.machine.unified_memory,
            "left_out": list(report.machine.left_out),
        },
        "estimate": _breakdown_jsonable(report.asked),
        "fits": None if report.unknown else report.fits,
        "blocked": report.blocked,
        "tight": report.tight,
        "margin_bytes": round(report.margin_bytes),
        "largest_batch": report.largest_batch,
        "options": [
            {
                "key": option.key,
                "title": option.title,
                "how": option.how,
                "request": _request_jsonable(option.request, report),
                "estimate": _breakdown_jsonable(option.breakdown),
                "fits": option.fits,
                "alone_total_bytes": round(option.alone.device_bytes) if option.alone else None,
                "alone_fits": option.alone_fits,
            }
            for option in report.options
        ],
        "recommended": report.recommended.key if report.recommended else None,
        "recommended_largest_batch": report.recommended_largest_batch,
        "host": {
            "load_bytes": round(report.host_load_total_bytes),
            "load_processes": report.host_load_processes,
            "ok": report.host_ok,
            "offload_bytes": round(report.asked.host_offload_bytes),
            "offload_ok": _offload_ok(report),
        },
        "parallelism": report.parallelism,
        "notes": list(report.notes),
        "measurement": measurement.jsonable() if measurement else None,
    }
