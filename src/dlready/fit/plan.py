"""Judge an estimate against a machine, and list what would make it fit (pure; docs/fit.md)."""

from __future__ import annotations

from collections.abc import Callable

from msgspec import Struct

from dlready.fit.catalog import ModelSpec
from dlready.fit.estimate import (
    Breakdown,
    Request,
    compute_dtype,
    effective_seq,
    estimate,
    kv_cache_bytes,
    largest_batch,
    shape_stand_in,
)
from dlready.model import GpuInfo, GpuVendor, MachineSnapshot, StackState
from dlready.probes.pci import nvidia_card_ruled_out
from dlready.render.text import format_number, gpu_range_label
from dlready.words import vendor_words

TIGHT_SHARE = 0.05
"""A fit with less than 5 % of the memory left over is called tight."""


class MachineError(ValueError):
    """The machine cannot be judged (nothing readable, or --gpus asks for more than it has)."""


class GpuUnusableError(MachineError):
    """A GPU is evidently here but cannot be used (broken driver, lost card): judging the
    request against the RAM instead would answer for a machine that is not this one."""

    def __init__(self, problem: str, fix: str, evidence: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.evidence = evidence


class FitGpu(Struct, frozen=True):
    """One GPU as the planner sees it."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int | None
    bf16: bool | None
    """Whether it computes in bfloat16 (compute capability 8.0 or later); None: unknown."""
    vendor: GpuVendor = GpuVendor.NVIDIA

    @property
    def usable_bytes(self) -> int:
        """Free memory when it was read (other processes may hold some), else the total."""
        return self.free_bytes if self.free_bytes is not None else self.total_bytes


class FitMachine(Struct, frozen=True):
    """The GPUs that may be used, and the host's RAM."""

    gpus: tuple[FitGpu, ...]
    ram_available_bytes: int | None
    ram_total_bytes: int | None
    notes: tuple[str, ...] = ()
    unified_memory: bool = False
    """An Apple GPU: it shares the RAM, which is the budget (judged like the CPU)."""
    left_out: tuple[str, ...] = ()
    """GPUs of this machine not planned for, each with why (for people)."""
    usable_gpu_count: int = 0
    """Working GPUs of this machine, planned for or not."""

    @property
    def device(self) -> str:
        """``cuda`` when there is a GPU to use (ROCm builds of torch call it cuda too), else
        ``cpu``."""
        return "cuda" if self.gpus else "cpu"

    @property
    def vendor(self) -> GpuVendor | None:
        """The vendor of the GPUs used (None on the CPU)."""
        return self.gpus[0].vendor if self.gpus else None

    @property
    def budget_bytes(self) -> int | None:
        """What one GPU offers (the smallest of those used), or the RAM on a CPU machine."""
        if self.gpus:
            return min(gpu.usable_bytes for gpu in self.gpus)
        return self.host_room_bytes

    @property
    def batch_words(self) -> str:
        """What one batch is here: per GPU where there are GPUs (a CPU run has one batch)."""
        return "per-GPU batch" if self.gpus else "batch"

    @property
    def budget_read(self) -> bool:
        """Whether the budget is what was read as free (GPUs) or available (RAM); False: a
        total stands in for it, an upper bound that cannot make a pass."""
        if self.gpus:
            return all(gpu.free_bytes is not None for gpu in self.gpus)
        return self.ram_available_bytes is not None

    @property
    def host_room_bytes(self) -> int | None:
        """RAM for the checkpoint load and offloaded states: available, else total (an upper
        bound: see :attr:`budget_read`)."""
        if self.ram_available_bytes is not None:
            return self.ram_available_bytes
        return self.ram_total_bytes

    @property
    def bf16(self) -> bool:
        """Whether bfloat16 is the half-precision type to suggest (else float16)."""
        return all(gpu.bf16 is not False for gpu in self.gpus)


def _label(gpu: GpuInfo) -> str:
    return f"GPU {gpu.index}" + (f" ({gpu.name.value})" if gpu.name.ok else "")


def _fit_gpu(gpu: GpuInfo) -> FitGpu:
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
    name = str(gpu.name.value) if gpu.name.ok else _label(gpu)
    return FitGpu(gpu.index, name, total_bytes, free, bf16, gpu.vendor)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _choose_gpus(gpus: list[FitGpu], gpu_limit: int | None) -> list[FitGpu]:
    """The GPUs to plan for. One model copy is sized by the smallest GPU it uses, so mixing a
    small card into a group of large ones shrinks every GPU's budget: plan for the group of
    identical GPUs (same name and memory) with the most memory in all, fewer GPUs on a tie
    (a single large card beats two small ones that add up to the same). ``--gpus N`` takes N
    from that group first, then the next largest others."""
    groups: dict[tuple[GpuVendor, str, int], list[FitGpu]] = {}
    for gpu in gpus:
        groups.setdefault((gpu.vendor, gpu.name, gpu.total_bytes), []).append(gpu)

    def richness(group: list[FitGpu]) -> tuple[int, int]:
        return sum(g.usable_bytes for g in group), -len(group)

    best = max(groups.values(), key=richness)
    if gpu_limit is None:
        return best
    best = sorted(best, key=lambda g: g.usable_bytes, reverse=True)
    others = sorted((g for g in gpus if g not in best), key=lambda g: g.usable_bytes, reverse=True)
    return (best + others)[:gpu_limit]


def machine_from_snapshot(
    snapshot: MachineSnapshot, gpu_limit: int | None = None, cpu_only: bool = False
) -> FitMachine:
    """The planner's view of a snapshot: the GPUs to plan for, and the RAM.

    Display-only GPUs (an integrated GPU beside a discrete card, as ``check`` leaves them out)
    and broken ones are left out; of GPUs that differ, the best group of identical ones is
    used (:func:`_choose_gpus`). ``cpu_only``: judge against the RAM whatever GPUs there are.

    Raises:
        MachineError: ``gpu_limit`` exceeds the usable GPUs, or nothing could be read.
        GpuUnusableError: a GPU is evidently here, none can be used, and ``cpu_only`` is off.
    """
    notes: list[str] = []
    left_out: list[str] = []
    usable: list[FitGpu] = []
    unified = False
    display_only_ids: set[int] = set()
    if len(snapshot.gpus) > 1:  # a display-only GPU sits beside a discrete card
        from dlready.spec.verdict import display_only_gpus

        display_only_ids = {id(gpu) for gpu in display_only_gpus(snapshot.gpus)}
    broken: list[tuple[str, str]] = []
    for gpu in () if cpu_only else snapshot.gpus:
        label = _label(gpu)
        if gpu.vendor not in (GpuVendor.NVIDIA, GpuVendor.AMD):
            if gpu.vendor is GpuVendor.APPLE:
                unified = True  # said once, in the plan's notes
            else:
                notes.append(f"{label}: shares the system memory; judged with the RAM")
            continue
        if id(gpu) in display_only_ids:
            left_out.append(f"{label}: integrated or display-only GPU")
            continue
        if gpu.error or not gpu.memory_total_bytes.ok:
            from dlready.spec.verdict import broken_gpu_reason

            reason = broken_gpu_reason(gpu) or (
                f"its memory could not be read ({gpu.memory_total_bytes.reason or 'not read'})"
            )
            broken.append((label, reason))
            left_out.append(f"{label}: installed but does not work: {reason}")
            continue
        if gpu.mig_mode_enabled.ok and gpu.mig_mode_enabled.value:
            notes.append(f"{label}: MIG is on; a process sees one MIG slice, which may be smaller")
        usable.append(_fit_gpu(gpu))
    if not usable and not cpu_only:
        _raise_if_gpu_unusable(snapshot, broken)
    gpus = _choose_gpus(usable, gpu_limit) if usable else []
    if gpu_limit is not None and gpu_limit > len(gpus):
        have = _plural(len(usable), "usable GPU")
        if unified and not usable:
            raise MachineError(
                f"--gpus {gpu_limit}: --gpus counts NVIDIA and AMD GPUs; this machine's Apple "
                "GPU shares its memory with the CPU and is judged as that one pool (leave "
                "--gpus out)"
            )
        raise MachineError(f"--gpus {gpu_limit}: this machine has {have}")
    chosen = {gpu.index for gpu in gpus}
    unchosen = [gpu for gpu in usable if gpu.index not in chosen]
    if unchosen:
        why = (
            f"--gpus {gpu_limit} asked for fewer"
            if gpu_limit is not None
            else "another model than the GPUs planned for (one model copy is sized by the "
            f"smallest GPU it uses; --gpus {len(usable)} plans for all of them)"
        )
        by_name: dict[str, list[int]] = {}
        for left in unchosen:
            by_name.setdefault(left.name, []).append(left.index)
        left_out += [
            f"{gpu_range_label(indices)} ({name}): {why}" for name, indices in by_name.items()
        ]
    gpus.sort(key=lambda g: g.index)
    memory = snapshot.memory
    available = memory.available_bytes.value if memory.available_bytes.ok else None
    total = memory.effective_total_bytes.value if memory.effective_total_bytes.ok else None
    if not gpus and available is None and total is None:
        raise MachineError("neither GPU memory nor RAM could be read on this machine")
    notes += [
        f"GPU {gpu.index} ({gpu.name}): its free memory could not be read; its total stands "
        "in, an upper bound (other processes may hold some)"
        for gpu in gpus
        if gpu.free_bytes is None
    ]
    if available is None and total is not None:
        why = memory.available_bytes.reason or "not read"
        notes.append(
            f"the RAM available could not be read ({why}); the total stands in, an upper "
            "bound (other programs hold some)"
        )
    return FitMachine(
        tuple(gpus),
        available,
        total,
        tuple(notes),
        unified and not gpus,
        tuple(left_out),
        len(usable),
    )


def _raise_if_gpu_unusable(snapshot: MachineSnapshot, broken: list[tuple[str, str]]) -> None:
    """No GPU can be used: raise when one is evidently here (its driver fails, it is on the
    PCI bus without a driver, or it is lost), as ``install-cmd`` refuses a CPU build then."""
    from dlready.install.facts import facts_from_snapshot

    fault = facts_from_snapshot(snapshot).nvidia_fault
    if fault is not None:
        raise GpuUnusableError(
            f"fix the NVIDIA driver first: {fault.problem}", fault.fix, fault.evidence
        )
    no_nvidia_card = nvidia_card_ruled_out(snapshot.pci_display_devices, snapshot.platform.is_wsl)
    for stack in snapshot.driver_stacks:
        leftover = stack.vendor is GpuVendor.NVIDIA and no_nvidia_card
        if stack.state in _BROKEN_STACK_STATES and not leftover:
            words = vendor_words(stack.vendor.value)
            evidence, fix = _BROKEN_STACK_STATES[stack.state]
            raise GpuUnusableError(
                f"fix the {words} GPU driver first: {stack.reason or 'it does not answer'}",
                stack.hint or fix.format(words=words),
                evidence.format(words=words),
            )
    if broken:
        label, reason = broken[0]
        raise GpuUnusableError(
            f"fix the GPU first: {label} is installed but does not work",
            reason,
            "; ".join(f"{label}: {reason}" for label, reason in broken),
        )


_BROKEN_STACK_STATES = {  # the evidence, and the fix when the driver stack gave no hint
    StackState.DRIVER_NOT_LOADED: (
        "the {words} GPU is there but its driver is not loaded",
        "install or load the {words} GPU driver, then try again",
    ),
    StackState.VERSION_MISMATCH: (
        "the {words} driver's library and its loaded kernel module are different versions",
        "reboot (or reload the kernel module) after a driver update, then try again",
    ),
    StackState.NO_PERMISSION: (
        "the {words} GPU driver answered but refused this user access",
        "give this user access to the GPU's device files (the video or render group), then "
        "try again",
    ),
    StackState.TIMED_OUT: (
        "the {words} GPU driver did not answer in time",
        "the GPU or its driver hangs: check the kernel log (`dmesg`); a reset or a reboot may "
        "be needed",
    ),
    StackState.FAILED: (
        "the {words} GPU driver answered, with an error",
        "the driver is loaded but failed: check the kernel log (`dmesg`) for GPU errors, and "
        "reboot if the driver was just updated",
    ),
}


class Option(Struct, frozen=True):
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
    adds: bool = True
    """Whether it lowers the figure of the rows above (False: it helps only alone)."""


class FitReport(Struct, frozen=True):
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
    host_load_processes: int = 1
    """Processes that each read the whole checkpoint (data parallelism: one per GPU)."""
    blocked: str | None = None
    """Why it cannot run as asked whatever the memory (8-/4-bit without a GPU); None: it can."""
    unknown: bool = False
    """It fits only within a total that stands in for memory that could not be read (a GPU's
    free memory, the RAM available): not a pass (``fits`` is False), not a failure."""


_Step = tuple[str, str, str, Callable[[Request], Request | None]]
_BITSANDBYTES_STEPS = ("adamw_8bit", "qlora", "int8", "int4")
SHORTER_KEYS = ("shorter_context", "shorter_sequence")


def _half(machine: FitMachine) -> str:
    return "bf16" if machine.bf16 else "fp16"


def _training_steps(
    request: Request,
    machine: FitMachine,
    transformer: bool,
    longest_seq: Callable[[Request], int],
    current_seq: int,
) -> list[_Step]:
    half = _half(machine)
    n = len(machine.gpus)
    steps: list[_Step] = [
        ("mixed_precision", f"{half} mixed precision",
         f"train in {half} autocast (float32 master weights)",
         lambda r: r.with_(dtype=half) if r.dtype == "fp32" else None),
    ]  # fmt: skip
    if n > 1 and request.task != "infer":
        steps.append(
            ("zero2", f"ZeRO-2 over {n} GPUs",
             f"shard gradients and optimizer states over the {n} GPUs (DeepSpeed ZeRO stage 2, "
             "FSDP SHARD_GRAD_OP)",
             lambda r: r.with_(sharding="zero2", gpus=n) if r.sharding == "none" else None)
        )  # fmt: skip
    steps.append(
        ("gradient_checkpointing", "gradient checkpointing",
         "recompute each block in the backward pass (`model.gradient_checkpointing_enable()`)",
         lambda r: r.with_(recompute=True) if not r.recompute else None)
    )  # fmt: skip
    if n > 1 and request.task != "infer":
        steps.append(
            ("zero3", f"ZeRO-3 / FSDP over {n} GPUs",
             f"shard weights too (DeepSpeed ZeRO stage 3, FSDP FULL_SHARD) over the {n} GPUs",
             lambda r: r.with_(sharding="zero3", gpus=n) if r.sharding != "zero3" else None)
        )  # fmt: skip
    steps.append(
        ("adamw_8bit", "8-bit AdamW",
         "bitsandbytes 8-bit AdamW (`optim='adamw_bnb_8bit'`)",
         lambda r: r.with_(optimizer="adamw-8bit") if r.optimizer == "adamw" else None)
    )  # fmt: skip
    if machine.device == "cuda":
        steps.append(
            ("cpu_offload", "CPU offload",
             "keep gradients and optimizer states in CPU RAM (DeepSpeed ZeRO-Offload), slower",
             lambda r: r.with_(offload=True) if not r.offload else None)
        )  # fmt: skip
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
    steps.append(
        ("shorter_sequence", "a shorter sequence",
         "fewer tokens per sequence (split or truncate long examples): fewer activations",
         _shorter(longest_seq, current_seq))
    )  # fmt: skip
    return steps


def _shorter(
    longest_seq: Callable[[Request], int], current_seq: int
) -> Callable[[Request], Request | None]:
    """The step to the longest sequence that fits, when the sequence is what does not fit."""

    def change(r: Request) -> Request | None:
        tokens = longest_seq(r)
        return r.with_(seq=tokens) if 0 < tokens < (r.seq or current_seq) else None

    return change


def _with_length(key: str, title: str, how: str, request: Request) -> tuple[str, str]:
    """A shorter context or sequence names how short: the longest that fits."""
    if key not in SHORTER_KEYS:
        return title, how
    tokens = format_number(request.seq)
    return f"{title} ({tokens} tokens)", f"{how}, at most {tokens} tokens"


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
    ]  # fmt: skip
    if n > 1:
        steps.append(
            ("split", f"split over {n} GPUs",
             f"spread the layers over the {n} GPUs (`device_map='auto'`, or tensor "
             "parallelism in vLLM)",
             lambda r: r.with_(sharding="split", gpus=n) if r.sharding != "split" else None)
        )  # fmt: skip
    steps += [
        ("int8", "8-bit weights", "bitsandbytes `load_in_8bit=True` (LLM.int8())",
         lambda r: r.with_(dtype="int8") if r.dtype in ("fp32", "bf16", "fp16") else None),
        ("int4", "4-bit weights", "bitsandbytes `load_in_4bit=True`, NF4 with double quantisation",
         lambda r: r.with_(dtype="int4") if r.dtype != "int4" else None),
    ]  # fmt: skip
    steps.append(
        ("shorter_context", "a shorter context",
         "fewer tokens per sequence (prompt plus output): a smaller KV cache",
         _shorter(longest_context, current_seq))
    )  # fmt: skip
    if machine.device == "cuda":
        steps.append(
            ("cpu_offload", "CPU offload",
             "keep layers in CPU RAM and stream them in (`device_map='auto'` with `max_memory`), "
             "much slower",
             lambda r: r.with_(offload=True) if not r.offload else None)
        )  # fmt: skip
    return steps


def _fits(breakdown: Breakdown, budget: float, machine: FitMachine) -> bool:
    if breakdown.device_bytes > budget:
        return False
    return host_offload_fits(breakdown, machine)


def host_offload_fits(breakdown: Breakdown, machine: FitMachine) -> bool:
    """Whether the host RAM holds what is offloaded (True when nothing is; False when the RAM
    could not be read: an unread figure is never counted as a pass)."""
    if not breakdown.host_offload_bytes:
        return True
    room = machine.host_room_bytes
    return room is not None and breakdown.host_offload_bytes <= room


def plan(model: ModelSpec, request: Request, machine: FitMachine) -> FitReport:
    """Estimate ``request`` on ``machine`` and, if it does not fit, what would.

    Raises:
        RequestError: a request that makes no sense (from :func:`estimate`).
        MachineError: nothing on the machine could be measured.
    """
    request = request.with_(device=machine.device)
    # Judged against RAM (a CPU run, or a Mac's unified memory): "CPU RAM" is the memory the
    # run uses already, so offloading to it frees nothing; counting it as freed would be wrong.
    offload_ignored = machine.device == "cpu" and request.offload
    if offload_ignored:
        request = request.with_(offload=False)
    budget = machine.budget_bytes
    if budget is None:
        raise MachineError("neither GPU memory nor RAM could be read on this machine")
    asked = estimate(model, request)
    blocked: str | None = None
    forced: list[_Step] = []
    base = request
    if machine.device == "cpu":
        swap = _without_bitsandbytes(request, _half(machine))
        if swap is not None:
            blocked, step = swap
            forced = [step]
            base = step[3](request) or request
    within = blocked is None and _fits(asked, budget, machine)
    # A fit judged against a total standing in for unread free memory is not a pass.
    guessed = not machine.budget_read or (
        asked.host_offload_bytes > 0 and machine.ram_available_bytes is None
    )
    unknown = within and guessed
    fits = within and not guessed
    margin = budget - asked.device_bytes
    biggest = largest_batch(model, request, budget) if blocked is None else 0

    def longest_seq(r: Request) -> int:
        return _longest_seq(model, r, budget)

    if request.task == "infer":
        steps = _inference_steps(base, machine, longest_seq, effective_seq(model, base))
    else:
        steps = _training_steps(
            base, machine, shape_stand_in(model).is_transformer, longest_seq,
            effective_seq(model, base),
        )  # fmt: skip
    if machine.device == "cpu":  # bitsandbytes' 8- and 4-bit kernels need a GPU
        steps = [step for step in steps if step[0] not in _BITSANDBYTES_STEPS]
    if unknown:  # it fits within the total: no strategy can say more than that
        steps = forced = []
    options: list[Option] = []
    current = request
    reference = estimate(model, base)  # what each step alone is compared with
    previous = asked  # the figure of the row above
    deferred: list[_Step] = []  # steps that lowered nothing where they stood (docs/fit.md)

    def lowers(after: Breakdown, before: Breakdown) -> bool:
        return after.device_bytes < before.device_bytes - 0.5 or (
            _fits(after, budget, machine) and not _fits(before, budget, machine)
        )

    for step in forced + steps:
        key, title, how, change = step
        is_forced = bool(forced) and key == forced[0][0]
        alone_request = change(base) if forced and not is_forced else change(request)
        combined = change(current)
        changed = combined is not None and combined != current
        if not changed:
            if alone_request is None:
                continue  # changes nothing here: no row
            combined = current
        stacked = estimate(model, combined or current)
        alone = estimate(model, alone_request) if alone_request else None
        helps_alone = alone is not None and lowers(alone, reference)
        adds = changed and lowers(stacked, previous)
        if not (is_forced or helps_alone or adds):
            # It lowers nothing alone nor on those above (a peak in the optimizer step makes
            # recomputation useless until the states shrink): no row, and it waits for a
            # later row on which it does lower the figure.
            if changed:
                deferred.append(step)
            continue
        current = combined or current
        joined: list[_Step] = []
        for waiting in list(deferred) if changed else []:
            trial = waiting[3](current)
            if trial is None or trial == current:
                continue
            trial_breakdown = estimate(model, trial)
            if lowers(trial_breakdown, stacked):
                current, stacked = trial, trial_breakdown
                joined.append(waiting)
                deferred.remove(waiting)
        # A row that changes something only alone is named by what it does alone (the
        # sequence the shorter-sequence step would take), not by the unchanged request.
        labelled = current if changed or alone_request is None else alone_request
        title, how = _with_length(key, title, how, labelled)
        if joined:  # a waiting step lowers the figure from here on: named on this row
            title = " + ".join([title, *(w[1] for w in joined)])
            how = "; ".join([how, *(w[2] for w in joined)])
        options.append(
            Option(
                key, title, how, current, stacked, _fits(stacked, budget, machine),
                alone, _fits(alone, budget, machine) if alone else None,
                adds or bool(joined),
            )
        )  # fmt: skip
        previous = stacked
    if request.batch > 1:
        smaller = largest_batch(model, current, budget)
        if 0 < smaller < request.batch:
            current = current.with_(batch=smaller)
            options.append(
                Option(
                    "smaller_batch", f"batch {smaller}",
                    _smaller_batch_how(smaller, request.task, machine),
                    current, estimate(model, current), True,
                )
            )  # fmt: skip
    recommended = (
        None if fits or unknown else _cheapest(model, base, forced, steps, budget, machine)
    )
    recommended_batch = largest_batch(model, recommended.request, budget) if recommended else 0
    n = len(machine.gpus)
    processes = n if (n > 1 and request.sharding == "none" and request.task != "infer") else 1
    host_total = asked.host_load_bytes * processes
    room = machine.host_room_bytes
    host_ok = None if room is None else host_total <= room
    if host_ok and machine.ram_available_bytes is None:
        host_ok = None  # within the total RAM only: what is available was not read
    notes = list(machine.notes) + list(asked.notes)
    if offload_ignored:
        notes.append(
            "--offload frees nothing here: the run already lives in this machine's RAM"
            + (" (the Mac's unified memory)" if machine.unified_memory else "")
            + ", so it is judged without it"
        )
    if machine.device == "cpu":
        if machine.unified_memory:
            notes.append(
                "the Apple GPU (PyTorch's mps device) and the CPU share this memory: judged "
                "against what is available of it"
            )
        else:
            notes.append(
                "no usable GPU: judged against this machine's RAM; running on the CPU works "
                "but is far slower than on a GPU"
            )
        if not fits and not unknown:
            notes.append(
                "8-bit and 4-bit strategies (bitsandbytes) are left out: they need an NVIDIA "
                "or AMD GPU"
            )
    if host_ok is False:
        notes.append(
            "reading the whole checkpoint at once needs more RAM than is available; "
            "safetensors with device_map (or `low_cpu_mem_usage=True`) loads it shard by "
            "shard, which needs far less"
            + ("" if machine.device == "cuda" else ", beside the weights the run keeps in RAM")
        )
    trained = model.max_positions
    if model.family == "decoder" and trained and request.seq > trained:
        notes.append(
            f"--seq {format_number(request.seq)} is beyond the {format_number(trained)} tokens "
            f"{model.id} was trained on: it needs RoPE scaling (`rope_scaling` in its config), "
            "and the quality of its output may drop"
        )
    no_bf16 = [gpu for gpu in machine.gpus if gpu.bf16 is False]
    if "bf16" in (request.dtype, compute_dtype(request)) and no_bf16:
        names = ", ".join(sorted({gpu.name for gpu in no_bf16}))
        notes.append(
            f"bf16 is asked, but {names} cannot compute in bfloat16 (it came with compute "
            "capability 8.0, Ampere): PyTorch refuses or emulates it slowly; use --dtype fp16"
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
        host_load_processes=processes,
        blocked=blocked,
        unknown=unknown,
    )


def _without_bitsandbytes(request: Request, half: str) -> tuple[str, _Step] | None:
    """On a machine without a usable GPU: why the request cannot run (bitsandbytes' 8- and
    4-bit kernels need a GPU), and the step to the nearest request that can; None when it can.
    """
    parts: list[tuple[str, str]] = []  # (what was asked, what runs instead)
    if request.task == "qlora":
        parts.append(("QLoRA (4-bit base weights)", "LoRA"))
    if request.dtype in ("int8", "int4"):
        parts.append((f"{request.dtype[3:]}-bit weights", f"{half} weights"))
    if request.optimizer == "adamw-8bit":
        parts.append(("8-bit AdamW", "AdamW"))
    if not parts:
        return None

    def change(r: Request) -> Request | None:
        changed = r.with_(
            task="lora" if r.task == "qlora" else r.task,
            dtype=half if r.dtype in ("int8", "int4") else r.dtype,
            optimizer="adamw" if r.optimizer == "adamw-8bit" else r.optimizer,
        )
        return changed if changed != r else None

    asked = " and ".join(what for what, _ in parts)
    reason = (
        f"{asked}: bitsandbytes' GPU kernels are needed, and this machine has no usable "
        "NVIDIA or AMD GPU"
    )
    title = "; ".join(f"{instead} instead of {what}" for what, instead in parts)
    how = "; ".join(f"{instead} (runs on the CPU) instead of {what}" for what, instead in parts)
    return reason, ("without_bitsandbytes", title, how, change)


def _longest_seq(model: ModelSpec, request: Request, budget: float) -> int:
    """The most tokens per sequence that fit (0: none, or a model whose sequence is fixed or
    whose inference has no KV cache for the context to shrink)."""
    shape = shape_stand_in(model)
    if shape.family not in ("decoder", "gpt2", "encoder"):
        return 0  # ViT's patches and ResNet's image are not a sequence to shorten
    if request.task == "infer" and kv_cache_bytes(model, request.with_(seq=1)) == 0:
        return 0
    low, high = 0, effective_seq(model, request)
    if estimate(model, request.with_(seq=high)).device_bytes <= budget:
        return high  # it fits as it is: nothing to shorten
    while high - low > 1:
        middle = (low + high) // 2
        if estimate(model, request.with_(seq=middle)).device_bytes <= budget:
            low = middle
        else:
            high = middle
    return low // 256 * 256 if low >= 512 else low


def _cheapest(
    model: ModelSpec,
    base: Request,
    forced: list[_Step],
    steps: list[_Step],
    budget: float,
    machine: FitMachine,
) -> Option | None:
    """The least costly combination of strategies that fits (docs/fit.md, "Cheapest way").

    The ladder is ordered from the least to the most costly strategy; a combination costs what
    its most costly strategy costs, ties broken by the next one, then by fewer strategies (the
    combinations compared as their step ranks sorted from high to low). Every strategy only
    lowers the memory, so when all of them together do not fit, none of the combinations does:
    then the batch is lowered too (training keeps its effective batch by accumulation).
    """
    base = _apply(base, forced)
    everything = _apply(base, steps)
    shrink_batch = not _fits(estimate(model, everything), budget, machine)
    if shrink_batch and (base.batch == 1 or largest_batch(model, everything, budget) < 1):
        return None

    def attempt(ranks: set[int]) -> Request | None:
        """The request with these steps (and the batch lowered if it must be), if it fits."""
        trial = _apply(base, [steps[rank] for rank in sorted(ranks)])
        if shrink_batch:
            batch = largest_batch(model, trial, budget)
            if batch < 1:
                return None
            trial = trial.with_(batch=batch)
        return trial if _fits(estimate(model, trial), budget, machine) else None

    # The least costly combination, most costly step first: as every step only lowers the
    # memory, the most costly step needed is the first j for which steps 0..j together fit;
    # then the same for the rest, below j. Equal to trying every combination in order of cost
    # (tests/test_fit_machines.py checks it against that), with O(n log n) estimates, not 2^n.
    chosen: set[int] = set()
    upper = len(steps) - 1
    found = attempt(chosen)
    while found is None:
        # Steps 0..upper with those chosen fit (all of them did, checked above): bisect for
        # the first j that is enough.
        low, high = 0, upper
        while low < high:
            middle = (low + high) // 2
            if attempt(chosen | set(range(middle + 1))) is not None:
                high = middle
            else:
                low = middle + 1
        needed = low
        if steps[needed][0] in SHORTER_KEYS:
            # A shorter sequence changes what is asked: every cheaper strategy comes with it,
            # so that the sequence stays as long as it can (docs/fit.md).
            chosen = _changing(base, steps, chosen | set(range(needed + 1)))
            found = attempt(chosen)
            break
        chosen.add(needed)
        upper = needed - 1
        found = attempt(chosen)
    assert found is not None  # steps 0..needed fit, and the closure is the same request
    titles = [
        (key, *_with_length(key, title, how, found))
        for key, title, how, _ in forced + [steps[rank] for rank in sorted(chosen)]
    ]
    if shrink_batch:
        titles.append(
            (
                "smaller_batch",
                f"batch {found.batch}",
                _smaller_batch_how(found.batch, base.task, machine),
            )
        )
    if not titles:
        return None
    return Option(
        "+".join(t[0] for t in titles),
        " + ".join(t[1] for t in titles),
        "; ".join(t[2] for t in titles),
        found,
        estimate(model, found),
        True,
    )


def _smaller_batch_how(batch: int, task: str, machine: FitMachine) -> str:
    """A smaller batch, per GPU only where there are GPUs (a CPU run has one batch)."""
    accumulate = " with gradient accumulation" if task != "infer" else ""
    return f"a {machine.batch_words} of {batch}{accumulate}"


def _changing(base: Request, steps: list[_Step], ranks: set[int]) -> set[int]:
    """The ranks whose step changes the result, applied in order: those that change nothing,
    or whose change a later one replaces (8-bit weights before 4-bit), are left out."""

    def result(chosen: set[int]) -> Request:
        return _apply(base, [steps[rank] for rank in sorted(chosen)])

    changing = set(ranks)
    final = result(changing)
    for rank in sorted(ranks):
        if result(changing - {rank}) == final:
            changing.discard(rank)
    return changing


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
        if request.sharding == "split":  # --gpus N asked for the split
            if fits:
                return f"the model split over the {n} GPUs fits, as asked"
            return f"the model does not fit split over the {n} GPUs, as asked"
        if fits:
            return f"each of the {n} GPUs can hold its own copy of the model"
        split = next((o for o in options if o.key == "split"), None)
        if split and split.alone_fits:
            return f"one copy does not fit on one GPU; split over the {n} GPUs it does"
        return f"the model does not fit on one GPU, nor split over the {n} GPUs alone"
    if request.sharding != "none":
        return f"model states sharded over the {n} GPUs as asked"
    if fits:
        return f"data parallelism fits: each of the {n} GPUs holds a full copy"
    for key in ("zero2", "zero3"):
        option = next((o for o in options if o.key == key), None)
        if option and option.alone_fits:
            return f"data parallelism does not fit; sharding does: {option.title}"
    return "neither data parallelism nor sharding alone fits; see the options"
