"""Judge an estimate against a machine, and list what would make it fit (pure; docs/fit.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dlready.fit.catalog import ModelSpec
from dlready.fit.estimate import (
    Breakdown,
    Request,
    effective_seq,
    estimate,
    kv_cache_bytes,
    largest_batch,
    shape_stand_in,
)
from dlready.model import GpuVendor, MachineSnapshot

TIGHT_SHARE = 0.05
"""A fit with less than 5 % of the memory left over is called tight."""


class MachineError(ValueError):
    """The machine cannot be judged (nothing readable, or --gpus asks for more than it has)."""


@dataclass(frozen=True)
class FitGpu:
    """One GPU as the planner sees it."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int | None
    bf16: bool | None
    """Whether it computes in bfloat16 (compute capability 8.0 or later); None: unknown."""

    @property
    def usable_bytes(self) -> int:
        """Free memory when it was read (other processes may hold some), else the total."""
        return self.free_bytes if self.free_bytes is not None else self.total_bytes


@dataclass(frozen=True)
class FitMachine:
    """The GPUs that may be used, and the host's RAM."""

    gpus: tuple[FitGpu, ...]
    ram_available_bytes: int | None
    ram_total_bytes: int | None
    notes: tuple[str, ...] = ()

    @property
    def device(self) -> str:
        """``cuda`` when there is a GPU to use, else ``cpu``."""
        return "cuda" if self.gpus else "cpu"

    @property
    def budget_bytes(self) -> int | None:
        """What one GPU offers (the smallest of those used), or the RAM on a CPU machine."""
        if self.gpus:
            return min(gpu.usable_bytes for gpu in self.gpus)
        return self.ram_available_bytes or self.ram_total_bytes

    @property
    def bf16(self) -> bool:
        """Whether bfloat16 is the half-precision type to suggest (else float16)."""
        return all(gpu.bf16 is not False for gpu in self.gpus)


def machine_from_snapshot(snapshot: MachineSnapshot, gpu_limit: int | None = None) -> FitMachine:
    """The planner's view of a snapshot: GPUs whose memory was read, and the RAM.

    Raises:
        MachineError: ``gpu_limit`` exceeds the usable GPUs.
    """
    notes: list[str] = []
    gpus: list[FitGpu] = []
    for gpu in snapshot.gpus:
        label = f"GPU {gpu.index}" + (f" ({gpu.name.value})" if gpu.name.ok else "")
        if gpu.vendor not in (GpuVendor.NVIDIA, GpuVendor.AMD):
            notes.append(f"{label}: shares system memory; judged with the RAM instead")
            continue
        if gpu.error or not gpu.memory_total_bytes.ok:
            reason = gpu.error or gpu.memory_total_bytes.reason or "not read"
            notes.append(f"{label}: memory could not be read ({reason}); not counted")
            continue
        if gpu.mig_mode_enabled.ok and gpu.mig_mode_enabled.value:
            notes.append(f"{label}: MIG is on; a process sees one MIG slice, which may be smaller")
        capability = gpu.compute_capability.value if gpu.compute_capability.ok else None
        bf16 = None
        if capability and gpu.vendor is GpuVendor.NVIDIA:
            try:
                bf16 = int(str(capability).split(".")[0]) >= 8
            except ValueError:
                bf16 = None
        total_bytes = int(gpu.memory_total_bytes.value or 0)
        free_value = gpu.memory_free_bytes.value if gpu.memory_free_bytes.ok else None
        free = int(free_value) if free_value is not None else None
        name = str(gpu.name.value) if gpu.name.ok else label
        gpus.append(FitGpu(gpu.index, name, total_bytes, free, bf16))
    if gpu_limit is not None:
        if gpu_limit > len(gpus):
            have = f"{len(gpus)} usable GPU" + ("" if len(gpus) == 1 else "s")
            raise MachineError(f"--gpus {gpu_limit}: this machine has {have}")
        # Use the GPUs with the most usable memory.
        gpus = sorted(gpus, key=lambda g: g.usable_bytes, reverse=True)[:gpu_limit]
        gpus.sort(key=lambda g: g.index)
    memory = snapshot.memory
    available = memory.available_bytes.value if memory.available_bytes.ok else None
    total = memory.effective_total_bytes.value if memory.effective_total_bytes.ok else None
    if not gpus and available is None and total is None:
        raise MachineError("neither GPU memory nor RAM could be read on this machine")
    return FitMachine(tuple(gpus), available, total, tuple(notes))


@dataclass(frozen=True)
class Option:
    """One way to run it: the request, its estimate and whether it fits."""

    key: str
    title: str
    how: str
    request: Request
    breakdown: Breakdown
    fits: bool
    alone: Breakdown | None = None
    """This strategy on its own (without the ones listed before it)."""
    alone_fits: bool | None = None


@dataclass(frozen=True)
class FitReport:
    """The answer of ``dlready fit``."""

    model: ModelSpec
    request: Request
    machine: FitMachine
    budget_bytes: int
    asked: Breakdown
    fits: bool
    margin_bytes: float
    tight: bool
    largest_batch: int
    options: tuple[Option, ...]
    recommended: Option | None
    recommended_largest_batch: int
    host_load_total_bytes: float
    host_ok: bool | None
    parallelism: str | None
    notes: tuple[str, ...]


_Step = tuple[str, str, str, Callable[[Request], Request | None]]
_BITSANDBYTES_STEPS = ("adamw_8bit", "qlora", "int8", "int4")


def _half(machine: FitMachine) -> str:
    return "bf16" if machine.bf16 else "fp16"


def _training_steps(request: Request, machine: FitMachine, transformer: bool) -> list[_Step]:
    half = _half(machine)
    n = len(machine.gpus)
    steps: list[_Step] = [
        ("mixed_precision", f"{half} mixed precision",
         f"train in {half} autocast (float32 master weights)",
         lambda r: r.with_(dtype=half) if r.dtype == "fp32" else None),
        ("gradient_checkpointing", "gradient checkpointing",
         "recompute each block in the backward pass (`model.gradient_checkpointing_enable()`)",
         lambda r: r.with_(recompute=True) if not r.recompute else None),
        ("adamw_8bit", "8-bit AdamW",
         "bitsandbytes 8-bit AdamW (`optim='adamw_bnb_8bit'`)",
         lambda r: r.with_(optimizer="adamw-8bit") if r.optimizer == "adamw" else None),
    ]  # fmt: skip
    if n > 1 and request.task != "infer":
        steps += [
            ("zero2", f"ZeRO-2 over {n} GPUs",
             f"shard gradients and optimizer states over the {n} GPUs (DeepSpeed ZeRO stage 2, "
             "FSDP SHARD_GRAD_OP)",
             lambda r: r.with_(sharding="zero2", gpus=n) if r.sharding == "none" else None),
            ("zero3", f"ZeRO-3 / FSDP over {n} GPUs",
             f"shard weights too (DeepSpeed ZeRO stage 3, FSDP FULL_SHARD) over the {n} GPUs",
             lambda r: r.with_(sharding="zero3", gpus=n) if r.sharding != "zero3" else None),
        ]  # fmt: skip
    if request.task == "train" and transformer:
        steps.append(
            ("lora", "LoRA", "train low-rank adapters on every linear layer, "
             f"rank {request.lora_rank}, instead of all weights (`peft.LoraConfig`)",
             lambda r: r.with_(task="lora", dtype=half if r.dtype == "fp32" else r.dtype)
             if r.task == "train" else None)
        )  # fmt: skip
    if request.task in ("train", "lora") and transformer:
        steps.append(
            ("qlora", "QLoRA", "4-bit NF4 base weights with LoRA adapters (bitsandbytes "
             "`bnb_4bit_use_double_quant=True`)",
             lambda r: r.with_(task="qlora", dtype=half) if r.task != "qlora" else None)
        )  # fmt: skip
    if machine.device == "cuda":
        steps.append(
            ("cpu_offload", "CPU offload",
             "keep gradients and optimizer states in CPU RAM (DeepSpeed ZeRO-Offload); slower",
             lambda r: r.with_(offload=True) if not r.offload else None)
        )  # fmt: skip
    return steps


def _inference_steps(
    request: Request,
    machine: FitMachine,
    longest_context: Callable[[Request], int],
    current_seq: int,
) -> list[_Step]:
    half = _half(machine)
    n = len(machine.gpus)
    steps: list[_Step] = [
        ("half_precision", f"{half} weights", f"load the weights in {half} (`torch_dtype=torch.{'bfloat16' if half == 'bf16' else 'float16'}`)",
         lambda r: r.with_(dtype=half) if r.dtype == "fp32" else None),
        ("int8", "8-bit weights", "bitsandbytes `load_in_8bit=True` (LLM.int8())",
         lambda r: r.with_(dtype="int8") if r.dtype in ("fp32", "bf16", "fp16") else None),
        ("int4", "4-bit weights", "bitsandbytes `load_in_4bit=True`, NF4 with double quantisation",
         lambda r: r.with_(dtype="int4") if r.dtype != "int4" else None),
    ]  # fmt: skip
    if n > 1:
        steps.append(
            ("split", f"split over {n} GPUs",
             f"spread the layers over the {n} GPUs (`device_map='auto'`, or tensor "
             "parallelism in vLLM)",
             lambda r: r.with_(sharding="split", gpus=n) if r.sharding != "split" else None)
        )  # fmt: skip

    def shorter(r: Request) -> Request | None:
        tokens = longest_context(r)
        return r.with_(seq=tokens) if 0 < tokens < (r.seq or current_seq) else None

    steps.append(
        ("shorter_context", "a shorter context",
         "fewer tokens per sequence (prompt plus output): a smaller KV cache",
         shorter)
    )  # fmt: skip
    if machine.device == "cuda":
        steps.append(
            ("cpu_offload", "CPU offload",
             "keep layers in CPU RAM and stream them in (`device_map='auto'` with `max_memory`); "
             "much slower",
             lambda r: r.with_(offload=True) if not r.offload else None)
        )  # fmt: skip
    return steps


def _fits(breakdown: Breakdown, budget: float, machine: FitMachine) -> bool:
    if breakdown.device_bytes > budget:
        return False
    if breakdown.host_offload_bytes:
        room = machine.ram_available_bytes or machine.ram_total_bytes
        return room is not None and breakdown.host_offload_bytes <= room
    return True


def plan(model: ModelSpec, request: Request, machine: FitMachine) -> FitReport:
    """Estimate ``request`` on ``machine`` and, if it does not fit, what would.

    Raises:
        RequestError: a request that makes no sense (from :func:`estimate`).
        MachineError: nothing on the machine could be measured.
    """
    request = request.with_(device=machine.device)
    budget = machine.budget_bytes
    if budget is None:
        raise MachineError("neither GPU memory nor RAM could be read on this machine")
    asked = estimate(model, request)
    fits = _fits(asked, budget, machine)
    margin = budget - asked.device_bytes
    biggest = largest_batch(model, request, budget)
    if request.task == "infer":

        def longest_context(r: Request) -> int:
            return _longest_context(model, r, budget)

        steps = _inference_steps(request, machine, longest_context, effective_seq(model, request))
    else:
        steps = _training_steps(request, machine, shape_stand_in(model).is_transformer)
    if machine.device == "cpu":  # bitsandbytes' 8- and 4-bit kernels need a GPU
        steps = [step for step in steps if step[0] not in _BITSANDBYTES_STEPS]
    options: list[Option] = []
    current = request
    for key, title, how, change in steps:
        alone_request = change(request)
        combined = change(current)
        if combined is None and alone_request is None:
            continue
        current = combined or current
        breakdown = estimate(model, current)
        alone = estimate(model, alone_request) if alone_request else None
        options.append(
            Option(
                key, title, how, current, breakdown, _fits(breakdown, budget, machine),
                alone, _fits(alone, budget, machine) if alone else None,
            )
        )  # fmt: skip
    if request.batch > 1:
        smaller = largest_batch(model, current, budget)
        if 0 < smaller < request.batch:
            current = current.with_(batch=smaller)
            options.append(
                Option(
                    "smaller_batch", f"batch {smaller}",
                    f"a per-GPU batch of {smaller}"
                    + (" with gradient accumulation" if request.task != "infer" else ""),
                    current, estimate(model, current), True,
                )
            )  # fmt: skip
    recommended = _cheapest(model, request, steps, options, budget, machine) if not fits else None
    recommended_batch = largest_batch(model, recommended.request, budget) if recommended else 0
    n = len(machine.gpus)
    processes = n if (n > 1 and request.sharding == "none" and request.task != "infer") else 1
    host_total = asked.host_load_bytes * processes
    room = machine.ram_available_bytes or machine.ram_total_bytes
    host_ok = None if room is None else host_total <= room
    notes = list(machine.notes) + list(asked.notes)
    if machine.device == "cpu":
        notes.append(
            "no usable GPU: judged against this machine's RAM; running on the CPU works but is "
            "far slower than on a GPU"
        )
        if not fits:
            notes.append("8-bit and 4-bit strategies (bitsandbytes) are left out: they need a GPU")
    if host_ok is False and machine.device == "cuda":  # on the CPU the weights stay in RAM
        notes.append(
            "loading the checkpoint needs more RAM than is available; safetensors with "
            "device_map loads it shard by shard, which needs far less"
        )
    if shape_stand_in(model) is not model and request.task != "infer":
        notes.append("the batch and sequence only scale a guessed activation figure")
    parallelism = _parallelism(request, machine, fits, options)
    return FitReport(
        model=model,
        request=request,
        machine=machine,
        budget_bytes=budget,
        asked=asked,
        fits=fits,
        margin_bytes=margin,
        tight=fits and margin < TIGHT_SHARE * budget,
        largest_batch=biggest,
        options=tuple(options),
        recommended=recommended,
        recommended_largest_batch=recommended_batch,
        host_load_total_bytes=host_total,
        host_ok=host_ok,
        parallelism=parallelism,
        notes=tuple(notes),
    )


def _longest_context(model: ModelSpec, request: Request, budget: float) -> int:
    """The most tokens per sequence that fit (0: none; only models with a KV cache)."""
    if kv_cache_bytes(model, request.with_(seq=1)) == 0:
        return 0
    low, high = 0, effective_seq(model, request)
    while high - low > 1:
        middle = (low + high) // 2
        if estimate(model, request.with_(seq=middle)).device_bytes <= budget:
            low = middle
        else:
            high = middle
    return low // 256 * 256 if low >= 512 else low


def _cheapest(
    model: ModelSpec,
    request: Request,
    steps: list[_Step],
    options: list[Option],
    budget: float,
    machine: FitMachine,
) -> Option | None:
    """The first rung of the ladder that fits, without the earlier rungs it does not need."""
    first = next((o for o in options if o.fits), None)
    if first is None or first.key == "smaller_batch":
        return first
    applied = [o.key for o in options[: options.index(first) + 1]]
    chosen = [step for step in steps if step[0] in applied]
    for step in list(chosen[:-1]):
        trial = [s for s in chosen if s is not step]
        trial_request = _apply(request, trial)
        if _fits(estimate(model, trial_request), budget, machine):
            chosen = trial
    final = _apply(request, chosen)
    breakdown = estimate(model, final)
    return Option(
        "+".join(step[0] for step in chosen),
        " + ".join(step[1] for step in chosen),
        "; ".join(step[2] for step in chosen),
        final,
        breakdown,
        True,
    )


def _apply(request: Request, steps: list[_Step]) -> Request:
    for step in steps:
        request = step[3](request) or request
    return request


def _parallelism(
    request: Request, machine: FitMachine, fits: bool, options: list[Option]
) -> str | None:
    n = len(machine.gpus)
    if n < 2:
        return None
    if request.task == "infer":
        if fits:
            return f"each of the {n} GPUs can hold its own copy of the model"
        split = next((o for o in options if o.key == "split"), None)
        if split and split.alone_fits:
            return f"one copy does not fit on one GPU; split over the {n} GPUs it does"
        return f"the model does not fit on one GPU, nor split over the {n} GPUs as asked"
    if request.sharding != "none":
        return f"model states sharded over the {n} GPUs as asked"
    if fits:
        return f"data parallelism fits: each of the {n} GPUs holds a full copy"
    for key in ("zero2", "zero3"):
        option = next((o for o in options if o.key == key), None)
        if option and option.alone_fits:
            return f"data parallelism does not fit; sharding does: {option.title}"
    return "neither data parallelism nor sharding alone fits; see the options"
