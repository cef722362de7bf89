"""The named checks of ``dlready smoke``, in the order they run, with their time limits.

This module is pure (no torch): the parent process reads it to know what to expect from the
worker and how long to wait for each check. ``dlready.smoke.checks.CHECKS`` implements the same
names (a test holds the two in step).
"""

from __future__ import annotations

from msgspec import Struct


class CheckSpec(Struct, frozen=True):
    """One check: its name, what it proves, and how long it may take."""

    name: str
    proves: str
    timeout_quick_s: float
    timeout_full_s: float

    def timeout_s(self, full: bool) -> float:
        """The time limit for the chosen mode."""
        return self.timeout_full_s if full else self.timeout_quick_s


# Why these limits: the first CUDA call on a cold multi-GPU host without persistence mode
# takes seconds per GPU (ECC scrubbing; docs/smoke.md), and the first kernel of each kind may
# be JIT-compiled from PTX. Correctness checks are tiny; 30 s only catches a real hang.
_DEVICE_TIMEOUT_S = 90.0
_SMALL_TIMEOUT_S = 30.0

DEVICE = CheckSpec(
    "device",
    "torch sees the device; the build carries code for its architecture",
    _DEVICE_TIMEOUT_S,
    _DEVICE_TIMEOUT_S,
)

CORRECTNESS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "tensors.create",
        "tensors from Python lists are float32 with the right values, on the device too",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "tensors.from_numpy",
        "from_numpy keeps the integer dtype and shares memory with the array",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "tensors.round_trip",
        "CPU -> device -> CPU copies are bit-exact for every supported dtype",
        _SMALL_TIMEOUT_S,
        60.0,
    ),
    CheckSpec(
        "autograd.book_example",
        "w=2, z=5w²+3 gives z=23 and dz/dw=20 on the device",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "autograd.tracking",
        "requires_grad_ tracks operations; nothing is tracked under torch.no_grad()",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "linear.float32",
        "x @ W + b in float32 matches a float64 CPU reference",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "linear.tf32",
        "x @ W + b with TF32 tensor cores matches a float64 CPU reference",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "linear.float16",
        "x @ W + b in float16 matches a float64 CPU reference",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "linear.bfloat16",
        "x @ W + b in bfloat16 matches a float64 CPU reference",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "linear.nn_linear",
        "nn.Linear(10, 5) equals the hand-written x @ W + b with the same weights",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "module.parameters",
        "plain tensor attributes are not parameters; nn.Parameter ones are (10x5 and 5)",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "module.state_dict",
        "state_dict save and load round trip restores the same weights and outputs",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "backprop.book_loss",
        "loss = 100 - y.sum() gives the analytic gradients; a non-scalar loss is refused",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "backprop.training",
        "gradient descent fits a known linear map (loss below the threshold)",
        _SMALL_TIMEOUT_S,
        60.0,
    ),
    CheckSpec(
        "modes.dropout",
        "a module starts in train mode; dropout acts in train() and not in eval()",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "modes.batchnorm",
        "batch norm uses batch statistics in train() and running statistics in eval()",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "amp.float16",
        "autocast to float16 gives float16 results close to float32",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
    CheckSpec(
        "amp.bfloat16",
        "autocast to bfloat16 gives bfloat16 results close to float32",
        _SMALL_TIMEOUT_S,
        _SMALL_TIMEOUT_S,
    ),
)

SPEED: tuple[CheckSpec, ...] = (
    CheckSpec("speed.matmul.float32", "float32 matmul TFLOP/s (result verified)", 60.0, 180.0),
    CheckSpec("speed.matmul.tf32", "TF32 matmul TFLOP/s (result verified)", 60.0, 180.0),
    CheckSpec("speed.matmul.float16", "float16 matmul TFLOP/s (result verified)", 60.0, 180.0),
    CheckSpec("speed.matmul.bfloat16", "bfloat16 matmul TFLOP/s (result verified)", 60.0, 180.0),
    CheckSpec(
        "speed.memory_copy",
        "device memory bandwidth of a large copy (read + write counted)",
        60.0,
        120.0,
    ),
    CheckSpec("speed.h2d", "pinned host-to-device bandwidth vs the PCIe link", 60.0, 120.0),
    CheckSpec("speed.d2h", "pinned device-to-host bandwidth vs the PCIe link", 60.0, 120.0),
)

DISTRIBUTED = CheckSpec(
    "distributed.all_reduce",
    "all_reduce through torch.distributed across the ranks torchrun started",
    120.0,
    120.0,
)

BURN = CheckSpec(
    "burn",
    "sustained matmul load: results stay right, temperature and clocks stay healthy",
    60.0,
    60.0,
)
"""The burn check's limits are added to the requested burn duration."""

ALL_CHECKS: tuple[CheckSpec, ...] = (DEVICE, *CORRECTNESS, *SPEED, DISTRIBUTED, BURN)
_BY_NAME = {spec.name: spec for spec in ALL_CHECKS}


def spec_for(name: str) -> CheckSpec:
    """The spec of a named check; raises KeyError for an unknown name."""
    return _BY_NAME[name]


def suite(*, distributed: bool = False) -> tuple[str, ...]:
    """The check names one device runs, in order (the burn is requested separately)."""
    names = [DEVICE.name, *(s.name for s in CORRECTNESS), *(s.name for s in SPEED)]
    if distributed:
        names.append(DISTRIBUTED.name)
    return tuple(names)


def timeout_for(name: str, *, full: bool, burn_s: float = 0.0, override_s: float | None) -> float:
    """Seconds the runner waits for one check before it declares a hang.

    ``override_s`` (``--timeout``) replaces every limit except that a burn always gets its own
    duration on top.
    """
    spec = spec_for(name)
    base = override_s if override_s is not None else spec.timeout_s(full)
    return base + (burn_s if name == BURN.name else 0.0)
