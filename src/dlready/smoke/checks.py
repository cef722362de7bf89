"""The correctness checks of ``dlready smoke`` (imports torch; runs in the worker).

Each check takes a :class:`DeviceContext`, returns an :class:`Outcome` (pass / skipped) or
raises :class:`CheckFailedError` with what was expected and what came out. Every value is built
from fixed seeds and explicit data (never uninitialised memory), and every comparison is against
an independent reference: exact values from the book (shared/SEED.md section 3-4), a float64
CPU computation, or an analytic gradient.

Tests prove each check can fail by calling it in-process with a patched torch op.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from msgspec import Struct, field

from dlready.render.text import format_number, format_percent
from dlready.smoke.archcompat import ArchSupport, cuda_arch_support, rocm_arch_support, sm_name
from dlready.smoke.outcome import CheckFailedError, Outcome, expect, passed, skipped

SEED = 20201224
"""Every random tensor comes from a generator seeded with this (the study note's month)."""

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    # TF32 keeps 10 explicit mantissa bits, like float16: inputs are rounded to 2**-11.
    "tf32": 2.0**-11,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
"""Unit roundoff u of each compute format (half the distance from 1 to the next number)."""

MATMUL_DTYPES = ("float32", "tf32", "float16", "bfloat16")


class DeviceContext(Struct):
    """The device the checks run on and what it supports."""

    device: torch.device
    full: bool = False
    unsupported: dict[str, str] = field(default_factory=dict)
    """dtype key (``float16``, ``bfloat16``, ``tf32``, ``float64``) -> why it is not supported."""
    slow: dict[str, str] = field(default_factory=dict)
    """dtype key -> why it runs but not natively (emulated): no point timing it."""

    @property
    def type(self) -> str:
        """``cpu``, ``cuda`` or ``mps``."""
        return self.device.type


def torch_dtype(key: str) -> torch.dtype:
    """The storage dtype of a compute format (TF32 is stored as float32)."""
    return torch.float32 if key == "tf32" else getattr(torch, key)


def synchronize(device: torch.device) -> None:
    """Wait for queued work on the device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def matmul_precision(device: torch.device, tf32: bool) -> Iterator[None]:
    """Allow TF32 matmuls on CUDA (or forbid them), restoring the user's setting afterwards."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9 API; the old flag is deprecated there
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = previous
    else:
        previous_flag = matmul.allow_tf32
        matmul.allow_tf32 = tf32
        try:
            yield
        finally:
            matmul.allow_tf32 = previous_flag


def _generator(seed: int = SEED) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _book_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The book's shapes: x 16x10, W 10x5, b 5 (float64 on the CPU, seeded)."""
    gen = _generator()
    x = torch.randn(16, 10, generator=gen, dtype=torch.float64)
    w = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(5, generator=gen, dtype=torch.float64)
    return x, w, b


def linear_error_ratio(
    result: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    unit_roundoff: float,
) -> tuple[float, float]:
    """Compare ``result`` with the float64 value of ``x @ w + b`` (inputs as given).

    The bound per element is the classical one for a dot product of length K plus two roundings
    of the output (Higham, "Accuracy and Stability of Numerical Algorithms", section 3.1):
    ``|err| <= (K + 2) * u * (|x| @ |w| + |b|)``. It holds for every summation order a library
    may pick, so a pass never depends on the device's blocking.

    Returns:
        (largest absolute error, largest error divided by its bound); the check passes when the
        ratio is at most 1.
    """
    x64, w64, b64 = x.double().cpu(), w.double().cpu(), b.double().cpu()
    reference = x64 @ w64 + b64
    scale = x64.abs() @ w64.abs() + b64.abs()
    bound = (x64.shape[1] + 2) * unit_roundoff * scale
    error = (result.detach().double().cpu() - reference).abs()
    if not torch.isfinite(error).all():
        return math.inf, math.inf
    ratio = error / bound.clamp_min(1e-300)
    return float(error.max()), float(ratio.max())


# --- tensors ------------------------------------------------------------------------------------


def check_tensors_create(ctx: DeviceContext) -> Outcome:
    """``torch.Tensor([[1, 2], [3, 4]])`` is float32 ``[[1., 2.], [3., 4.]]``, on the device too."""
    expected = [[1.0, 2.0], [3.0, 4.0]]
    host = torch.Tensor([[1, 2], [3, 4]])
    expect(host.dtype == torch.float32, f"torch.Tensor(list) gave {host.dtype}, not float32")
    expect(host.tolist() == expected, f"torch.Tensor(list) gave {host.tolist()}, not {expected}")
    on_device = torch.tensor([[1.0, 2.0], [3.0, 4.0]], device=ctx.device)
    expect(
        on_device.device.type == ctx.type,
        f"tensor created with device={ctx.device} lives on {on_device.device}",
    )
    expect(
        on_device.cpu().tolist() == expected,
        f"tensor created on {ctx.device} reads back as {on_device.cpu().tolist()}",
    )
    total = int(torch.arange(9, device=ctx.device).view(3, 3).sum().item())
    expect(total == 36, f"arange(9).view(3, 3).sum() on {ctx.device} gave {total}, not 36")
    transposed = torch.arange(9, device=ctx.device).view(3, 3).t().cpu().tolist()
    expect(
        transposed == [[0, 3, 6], [1, 4, 7], [2, 5, 8]],
        f"arange(9).view(3, 3).t() on {ctx.device} gave {transposed}",
    )
    return passed("float32 from lists; values exact on the device", dtype=str(host.dtype))


def check_tensors_from_numpy(ctx: DeviceContext) -> Outcome:
    """``torch.from_numpy`` keeps the integer dtype and shares memory with the array."""
    try:
        import numpy as np
    except ImportError as exc:
        return skipped(f"numpy is not installed ({exc}); pip install numpy")
    array = np.array([[1, 2], [3, 4]], dtype=np.int64)
    tensor = torch.from_numpy(array)
    expect(
        tensor.dtype == torch.int64,
        f"from_numpy of an int64 array gave {tensor.dtype}, not torch.int64",
    )
    expect(tensor.tolist() == [[1, 2], [3, 4]], f"from_numpy gave {tensor.tolist()}")
    array[0, 0] = 10
    expect(
        int(tensor[0, 0]) == 10,
        "from_numpy does not share memory: a change to the array did not show in the tensor",
    )
    back = tensor.to(ctx.device).cpu().numpy()
    expect(
        back.dtype == np.int64 and back.tolist() == array.tolist(),
        f"int64 tensor through {ctx.device} came back as {back.dtype} {back.tolist()}",
    )
    return passed("int64 kept, memory shared, device round trip exact", dtype=str(tensor.dtype))


def check_tensors_round_trip(ctx: DeviceContext) -> Outcome:
    """CPU -> device -> CPU is bit-exact for every dtype the device supports."""
    count = 4_000_000 if ctx.full else 1_000_000
    gen = _generator()
    base = torch.randn(count, generator=gen, dtype=torch.float64)
    dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]
    if "float64" not in ctx.unsupported:
        dtypes.insert(0, torch.float64)
    checked = []
    for dtype in dtypes:
        if dtype is torch.bool:
            host = base > 0
        elif dtype in (torch.int64, torch.uint8):
            host = (base * 1000).to(torch.int64).remainder(256 if dtype is torch.uint8 else 2**40)
            host = host.to(dtype)
        else:
            host = base.to(dtype)
        back = host.to(ctx.device).cpu()
        expect(back.dtype == dtype, f"{dtype} came back as {back.dtype}")
        expect(
            torch.equal(back, host),
            f"{dtype}: {int((back != host).sum())} of {count} values changed on the way through "
            f"{ctx.device}",
        )
        checked.append(str(dtype).replace("torch.", ""))
    return passed(
        f"{len(checked)} dtypes x {count:,} values exact", dtypes=checked, values_per_dtype=count
    )


# --- autograd -----------------------------------------------------------------------------------


def check_autograd_book_example(ctx: DeviceContext) -> Outcome:
    """The book: ``w = 2; y = w**2; z = 5*y + 3`` gives ``z = 23`` and ``dz/dw = 2*5*w = 20``."""
    w = torch.tensor(2.0, requires_grad=True, device=ctx.device)
    y = w**2
    z = 5 * y + 3
    z.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    z_value = float(z.item())
    expect(w.grad is not None, "z.backward() left w.grad empty")
    grad = float(w.grad.item()) if w.grad is not None else math.nan
    expect(z_value == 23.0, f"z = 5*w**2 + 3 at w=2 gave {z_value}, not 23", z=z_value)
    expect(grad == 20.0, f"dz/dw at w=2 gave {grad}, not 20", z=z_value, dz_dw=grad)
    return passed("z = 23, dz/dw = 20", z=z_value, dz_dw=grad)


def check_autograd_tracking(ctx: DeviceContext) -> Outcome:
    """``requires_grad_`` starts tracking; ``torch.no_grad()`` stops it; (x²).sum() gives 2x."""
    y = torch.ones(2, 2, device=ctx.device)
    expect(not y.requires_grad, "a fresh tensor already requires grad")
    y.requires_grad_(True)
    tracked = (y * 3).sum()
    expect(
        tracked.requires_grad and tracked.grad_fn is not None,
        "an operation on a tensor with requires_grad_(True) was not tracked",
    )
    with torch.no_grad():
        untracked = y * 3
    expect(
        not untracked.requires_grad and untracked.grad_fn is None,
        "an operation inside torch.no_grad() was tracked",
    )
    x = torch.randn(8, generator=_generator(), dtype=torch.float32).to(ctx.device)
    x.requires_grad_(True)
    (x**2).sum().backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    expect(x.grad is not None, "(x**2).sum().backward() left x.grad empty")
    grad = x.grad.detach().cpu() if x.grad is not None else torch.zeros(0)
    largest_error = float((grad - 2 * x.detach().cpu()).abs().max())
    expect(
        largest_error <= 4 * UNIT_ROUNDOFF["float32"] * float(x.detach().abs().max()),
        f"d/dx of (x**2).sum() differs from 2x by {largest_error:.3g}",
        largest_error=largest_error,
    )
    return passed("tracked with requires_grad_, untracked under no_grad, d(x²)/dx = 2x")


# --- linear layer -------------------------------------------------------------------------------


def _linear_in(ctx: DeviceContext, key: str) -> Outcome:
    if key in ctx.unsupported:
        return skipped(ctx.unsupported[key])
    dtype = torch_dtype(key)
    x64, w64, b64 = _book_inputs()
    # Round the inputs to the dtype first, so the bound covers only the computation.
    x, w, b = x64.to(dtype), w64.to(dtype), b64.to(dtype)
    with matmul_precision(ctx.device, tf32=key == "tf32"):
        result = torch.mm(x.to(ctx.device), w.to(ctx.device)) + b.to(ctx.device)
        synchronize(ctx.device)
    expect(
        tuple(result.shape) == (16, 5), f"x @ W + b has shape {tuple(result.shape)}, not (16, 5)"
    )
    expect(result.dtype == dtype, f"x @ W + b in {key} came out as {result.dtype}")
    largest_error, ratio = linear_error_ratio(result, x, w, b, UNIT_ROUNDOFF[key])
    measured = {
        "largest_abs_error": largest_error,
        "error_to_bound_ratio": ratio,
        "unit_roundoff": UNIT_ROUNDOFF[key],
    }
    expect(
        ratio <= 1.0,
        f"{key} x @ W + b is off the float64 reference by {largest_error:.3g}, "
        f"{ratio:.3g}x the bound (K+2)·u·(|x||W|+|b|) for {key}",
        **measured,
    )
    return passed(
        f"16x5 result: largest error {largest_error:.2g}, {format_percent(100 * ratio)} of what {key} rounding "
        "allows",
        **measured,
    )


def check_linear_float32(ctx: DeviceContext) -> Outcome:
    """``x @ W + b`` in float32 (TF32 off) vs float64 on the CPU."""
    return _linear_in(ctx, "float32")


def check_linear_tf32(ctx: DeviceContext) -> Outcome:
    """``x @ W + b`` with TF32 tensor cores allowed vs float64 on the CPU."""
    return _linear_in(ctx, "tf32")


def check_linear_float16(ctx: DeviceContext) -> Outcome:
    """``x @ W + b`` in float16 vs float64 on the CPU."""
    return _linear_in(ctx, "float16")


def check_linear_bfloat16(ctx: DeviceContext) -> Outcome:
    """``x @ W + b`` in bfloat16 vs float64 on the CPU."""
    return _linear_in(ctx, "bfloat16")


def check_linear_nn_linear(ctx: DeviceContext) -> Outcome:
    """``nn.Linear(10, 5)`` with W and b loaded equals ``torch.mm(x, W) + b``."""
    x64, w64, b64 = _book_inputs()
    x, w, b = x64.float().to(ctx.device), w64.float().to(ctx.device), b64.float().to(ctx.device)
    layer = torch.nn.Linear(10, 5).to(ctx.device)
    shapes = [tuple(p.shape) for p in layer.parameters()]
    expect(shapes == [(5, 10), (5,)], f"nn.Linear(10, 5) has parameter shapes {shapes}")
    with torch.no_grad():
        layer.weight.copy_(w.t())
        layer.bias.copy_(b)
    with matmul_precision(ctx.device, tf32=False), torch.no_grad():
        by_module = layer(x)
        by_hand = torch.mm(x, w) + b
    expect(
        tuple(by_module.shape) == (16, 5),
        f"nn.Linear output has shape {tuple(by_module.shape)}, not (16, 5)",
    )
    # Both are float32 computations of the same sum: each is within the bound of the exact
    # value, so they are within twice the bound of each other.
    error_module, ratio_module = linear_error_ratio(by_module, x, w, b, UNIT_ROUNDOFF["float32"])
    _, ratio_hand = linear_error_ratio(by_hand, x, w, b, UNIT_ROUNDOFF["float32"])
    difference = float((by_module - by_hand).abs().max())
    measured = {"largest_difference": difference, "error_to_bound_ratio": ratio_module}
    expect(
        ratio_module <= 1.0,
        f"nn.Linear output is off the float64 reference by {error_module:.3g} "
        f"({ratio_module:.3g}x the float32 bound)",
        **measured,
    )
    expect(
        ratio_hand <= 1.0,
        f"torch.mm(x, W) + b is off the float64 reference ({ratio_hand:.3g}x the float32 bound)",
        **measured,
    )
    return passed(f"nn.Linear equals x @ W + b (largest difference {difference:.2g})", **measured)


# --- nn.Module ----------------------------------------------------------------------------------


class _PlainTensors(torch.nn.Module):
    """The book's first attempt: W and b as plain tensor attributes (not registered)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.zeros(10, 5)
        self.b = torch.zeros(5)


class _WithParameters(torch.nn.Module):
    """The book's fix: wrap them in nn.Parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(10, 5))
        self.b = torch.nn.Parameter(torch.zeros(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mm(x, self.W) + self.b


def check_module_parameters(ctx: DeviceContext) -> Outcome:
    """Plain tensors register no parameters; nn.Parameter registers W (10x5) and b (5)."""
    plain = list(_PlainTensors().to(ctx.device).parameters())
    expect(plain == [], f"a module with plain tensor attributes has {len(plain)} parameters")
    module = _WithParameters().to(ctx.device)
    shapes = [tuple(p.shape) for p in module.parameters()]
    expect(shapes == [(10, 5), (5,)], f"nn.Parameter attributes registered shapes {shapes}")
    devices = {p.device.type for p in module.parameters()}
    expect(devices == {ctx.type}, f"module.to({ctx.device}) left parameters on {devices}")
    names = [name for name, _ in module.named_parameters()]
    expect(names == ["W", "b"], f"parameter names are {names}, not ['W', 'b']")
    return passed("no parameters from plain tensors; W (10, 5) and b (5,) registered")


def check_module_state_dict(ctx: DeviceContext) -> Outcome:
    """``state_dict`` saved to bytes and loaded into a fresh module restores weights and outputs."""
    torch.manual_seed(SEED)
    source = torch.nn.Sequential(torch.nn.Linear(10, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).to(
        ctx.device
    )
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    saved_bytes = buffer.tell()
    buffer.seek(0)
    torch.manual_seed(SEED + 1)
    target = torch.nn.Sequential(torch.nn.Linear(10, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).to(
        ctx.device
    )
    try:
        state = torch.load(buffer, map_location=ctx.device, weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        buffer.seek(0)
        state = torch.load(buffer, map_location=ctx.device)
    target.load_state_dict(state)
    for (name, a), (_, b) in zip(
        source.state_dict().items(), target.state_dict().items(), strict=True
    ):
        expect(torch.equal(a, b), f"state_dict entry {name} changed in the save/load round trip")
    x = torch.randn(4, 10, generator=_generator(), dtype=torch.float32).to(ctx.device)
    with torch.no_grad():
        expect(
            torch.equal(source(x), target(x)),
            "the reloaded module gives different outputs for the same input",
        )
    return passed(
        f"{len(state)} tensors restored exactly ({format_number(saved_bytes)} bytes)",
        saved_bytes=saved_bytes,
    )


# --- back-propagation ---------------------------------------------------------------------------


def check_backprop_book_loss(ctx: DeviceContext) -> Outcome:
    """``loss = 100 - (x @ W + b).sum()``: dloss/dW[k, j] = -Σ_i x[i, k], dloss/db[j] = -16."""
    x64, w64, b64 = _book_inputs()
    x = x64.float().to(ctx.device)
    w = w64.float().to(ctx.device).requires_grad_(True)
    b = b64.float().to(ctx.device).requires_grad_(True)
    with matmul_precision(ctx.device, tf32=False):
        y = torch.mm(x, w) + b
        loss = 100 - y.sum()
    expect(loss.dim() == 0, f"loss has shape {tuple(loss.shape)}, not a scalar")
    try:
        y.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    except RuntimeError:
        pass
    else:
        raise CheckFailedError(
            "backward() on a 16x5 (non-scalar) output was accepted without error"
        )
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    expect(w.grad is not None and b.grad is not None, "loss.backward() left gradients empty")
    assert w.grad is not None  # for the type checker
    assert b.grad is not None
    # Each expected gradient entry is a sum of 16 float32 values: 18·u·Σ|x| bounds its error.
    expected_w = -x64.sum(dim=0, keepdim=True).t().expand(10, 5)
    bound_w = 18 * UNIT_ROUNDOFF["float32"] * x64.abs().sum(dim=0, keepdim=True).t().expand(10, 5)
    error_w = (w.grad.double().cpu() - expected_w).abs()
    expect(
        bool((error_w <= bound_w + 1e-30).all()),
        f"dloss/dW differs from -Σ_i x[i, k] by up to {float(error_w.max()):.3g}",
        largest_error_dw=float(error_w.max()),
    )
    grad_b = b.grad.cpu().tolist()
    expect(grad_b == [-16.0] * 5, f"dloss/db is {grad_b}, not [-16.0] * 5")
    return passed(
        "scalar loss; dW = -Σx, db = -16; non-scalar backward refused",
        largest_error_dw=float(error_w.max()),
        loss=float(loss.item()),
    )


def check_backprop_training(ctx: DeviceContext) -> Outcome:
    """Gradient descent fits a known linear map: the mean squared error falls below 1e-6."""
    gen = _generator()
    true_w = torch.randn(3, 4, generator=gen)
    true_b = torch.randn(3, generator=gen)
    x = torch.randn(256, 4, generator=gen)
    target = x @ true_w.t() + true_b
    x, target = x.to(ctx.device), target.to(ctx.device)
    torch.manual_seed(SEED)
    model = torch.nn.Linear(4, 3).to(ctx.device)
    # Plain gradient descent written out, as in the book. (torch.optim would do the same, but
    # its first use imports torch._dynamo: a second of import time on a small CPU.)
    learning_rate = 0.5
    steps = 300 if ctx.full else 100
    threshold = 1e-6
    losses = []
    with matmul_precision(ctx.device, tf32=False):
        for _ in range(steps):
            loss = torch.nn.functional.mse_loss(model(x), target)
            model.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            with torch.no_grad():
                for parameter in model.parameters():
                    if parameter.grad is not None:
                        parameter.sub_(learning_rate * parameter.grad)
            losses.append(loss.detach())
    first, last = float(losses[0].item()), float(losses[-1].item())
    weight_error = float((model.weight.detach().cpu() - true_w).abs().max())
    measured = {"first_loss": first, "final_loss": last, "steps": steps}
    expect(math.isfinite(last), f"the loss became {last} during training", **measured)
    expect(
        last < threshold,
        f"after {steps} SGD steps the loss is {last:.3g} (from {first:.3g}), not below "
        f"{threshold:g}",
        **measured,
    )
    expect(
        weight_error < 1e-3,
        f"the fitted weights are off the true map by {weight_error:.3g}",
        **measured,
    )
    return passed(f"loss {first:.3g} -> {last:.2g} in {steps} steps", **measured)


# --- train() / eval() ---------------------------------------------------------------------------


def check_modes_dropout(ctx: DeviceContext) -> Outcome:
    """A module starts in training mode; dropout zeroes and rescales in train() only."""
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Dropout(p=0.5)).to(ctx.device)
    expect(model.training, "a new module is not in training mode")
    x = torch.ones(64, 100, device=ctx.device)
    torch.manual_seed(SEED)
    trained = model(x).cpu()
    zero_fraction = float((trained == 0).float().mean())
    kept = trained[trained != 0]
    # 6400 draws with p = 0.5: the fraction is 0.5 ± 0.00625 (one sd); 0.4-0.6 is 16 sd wide.
    expect(
        0.4 <= zero_fraction <= 0.6,
        f"dropout(0.5) in train mode zeroed {100 * zero_fraction:.1f} % of values",
        zero_fraction=zero_fraction,
    )
    expect(
        bool((kept == 2.0).all()),
        "dropout(0.5) in train mode did not scale kept values by 2",
        zero_fraction=zero_fraction,
    )
    model.eval()
    expect(
        not any(m.training for m in model.modules()),
        "eval() left a submodule in training mode",
    )
    evaluated = model(x).cpu()
    expect(torch.equal(evaluated, x.cpu()), "dropout changed values in eval mode")
    model.train()
    expect(all(m.training for m in model.modules()), "train() did not restore training mode")
    return passed(
        f"train: {format_percent(100 * zero_fraction)} dropped, kept x2; eval: identity",
        zero_fraction=zero_fraction,
    )


def check_modes_batchnorm(ctx: DeviceContext) -> Outcome:
    """BatchNorm normalises with batch statistics in train() and running ones in eval()."""
    gen = _generator()
    bn = torch.nn.BatchNorm1d(4, momentum=None).to(ctx.device)  # cumulative running average
    batches = [3.0 + 2.0 * torch.randn(256, 4, generator=gen) for _ in range(8)]
    for batch in batches:
        out = bn(batch.to(ctx.device))
    everything = torch.cat(batches)
    expected_mean = everything.mean(dim=0)
    batch_mean_after = float(out.detach().mean(dim=0).abs().max().cpu())
    expect(
        batch_mean_after < 1e-4,
        f"train-mode batch norm output has mean {batch_mean_after:.3g}, not 0",
    )
    running_mean = bn.running_mean.detach().cpu()  # type: ignore[union-attr]
    running_var = bn.running_var.detach().cpu()  # type: ignore[union-attr]
    # With momentum=None the running mean is the plain average of the 8 batch means.
    mean_error = float((running_mean - expected_mean).abs().max())
    expect(
        mean_error < 1e-4,
        f"running_mean is off the mean of the batches by {mean_error:.3g}",
        running_mean_error=mean_error,
    )
    bn.eval()
    shifted = (10.0 + torch.randn(64, 4, generator=gen)).to(ctx.device)
    with torch.no_grad():
        evaluated = bn(shifted).cpu()
    weight = bn.weight.detach().cpu()
    bias = bn.bias.detach().cpu()
    by_hand = (shifted.cpu() - running_mean) / torch.sqrt(running_var + bn.eps) * weight + bias
    difference = float((evaluated - by_hand).abs().max())
    expect(
        difference < 1e-4,
        f"eval-mode batch norm differs from (x - running_mean)/sqrt(running_var + eps) by "
        f"{difference:.3g}",
        eval_difference=difference,
    )
    eval_mean = float(evaluated.mean())
    # The shifted batch has mean 10 and the running mean is about 3: eval must keep the shift.
    expect(
        eval_mean > 1.0,
        f"eval-mode output has mean {eval_mean:.3g}: it normalised with batch statistics",
    )
    bn.train()
    return passed(
        f"train: batch stats (mean {batch_mean_after:.1g}); eval: running stats (mean "
        f"{eval_mean:.2f})",
        eval_difference=difference,
        running_mean_error=mean_error,
    )


# --- mixed precision ----------------------------------------------------------------------------


def _autocast_check(ctx: DeviceContext, key: str) -> Outcome:
    if key in ctx.unsupported:
        return skipped(ctx.unsupported[key])
    dtype = torch_dtype(key)
    gen = _generator()
    x = torch.randn(128, 64, generator=gen).to(ctx.device)
    torch.manual_seed(SEED)
    layer = torch.nn.Linear(64, 32).to(ctx.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type=ctx.type, dtype=dtype), torch.no_grad():
                mixed = layer(x)
        except RuntimeError as exc:
            # e.g. "Current CUDA Device does not support bfloat16. Please switch dtype to
            # float16." on GPUs older than compute capability 8.0
            if "not support" in str(exc) or "unsupported" in str(exc).lower():
                return skipped(f"autocast to {key} is not supported on {ctx.type}: {exc}")
            raise
    disabled = [str(w.message) for w in caught if "autocast" in str(w.message).lower()]
    if disabled and mixed.dtype != dtype:
        return skipped(f"autocast to {key} is not supported on {ctx.type}: {disabled[0]}")
    expect(mixed.dtype == dtype, f"autocast to {key} produced {mixed.dtype}")
    # Autocast rounds x and W to the dtype, then computes: compare against float64 of the
    # rounded inputs with the same bound as the linear checks.
    weight = layer.weight.detach().t().to(dtype)
    largest_error, ratio = linear_error_ratio(
        mixed, x.to(dtype), weight, layer.bias.detach().to(dtype), UNIT_ROUNDOFF[key]
    )
    with matmul_precision(ctx.device, tf32=False), torch.no_grad():
        full_precision = layer(x)
    drift = float((mixed.float() - full_precision).abs().max())
    measured = {"largest_abs_error": largest_error, "error_to_bound_ratio": ratio, "drift": drift}
    expect(
        ratio <= 1.0,
        f"autocast {key} result is off by {largest_error:.3g} ({ratio:.3g}x the {key} bound)",
        **measured,
    )
    return passed(
        f"{key} output: largest error {largest_error:.2g}, {format_percent(100 * ratio)} of what {key} rounding "
        f"allows; {drift:.2g} from float32",
        **measured,
    )


def check_amp_float16(ctx: DeviceContext) -> Outcome:
    """``torch.autocast(dtype=float16)`` gives float16 results within float16 accuracy."""
    return _autocast_check(ctx, "float16")


def check_amp_bfloat16(ctx: DeviceContext) -> Outcome:
    """``torch.autocast(dtype=bfloat16)`` gives bfloat16 results within bfloat16 accuracy."""
    return _autocast_check(ctx, "bfloat16")


# --- distributed --------------------------------------------------------------------------------


def check_distributed_all_reduce(ctx: DeviceContext) -> Outcome:
    """Under torchrun: all_reduce of (rank + 1) gives 1 + 2 + ... + world_size on every rank."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return skipped("not launched by torchrun: RANK and WORLD_SIZE are not set")
    import datetime

    import torch.distributed as dist

    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    use_nccl = ctx.type == "cuda" and dist.is_nccl_available()
    backend = "nccl" if use_nccl else "gloo"
    if use_nccl:
        torch.cuda.set_device(ctx.device)
    started = time.perf_counter()
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=60))
    try:
        value = torch.full((4,), float(rank + 1), device=ctx.device)
        dist.all_reduce(value)
        dist.barrier()
        synchronize(ctx.device)
        got = value.cpu().tolist()
    finally:
        dist.destroy_process_group()
    expected = world_size * (world_size + 1) / 2
    measured = {"backend": backend, "rank": rank, "world_size": world_size}
    expect(
        got == [expected] * 4,
        f"all_reduce over {world_size} ranks gave {got[0]}, not {expected}",
        **measured,
    )
    return passed(
        f"{backend} all_reduce over {world_size} ranks = {expected:g} "
        f"({time.perf_counter() - started:.2f} s)",
        **measured,
    )


# --- the device itself --------------------------------------------------------------------------


def torch_build_info() -> dict[str, Any]:
    """Versions of the imported torch; touches no device."""
    cudnn: int | None = None
    with contextlib.suppress(Exception):  # cuDNN may be absent or fail to load
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    return {
        "version": str(torch.__version__),
        "cuda": getattr(torch.version, "cuda", None),
        "hip": getattr(torch.version, "hip", None),
        "cudnn": cudnn,
        "location": os.path.dirname(getattr(torch, "__file__", "") or "") or None,
    }


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _cpu_name() -> str | None:
    from dlready.probes.hostfs import RealHostFiles

    text = RealHostFiles().read_text("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or None


class DeviceProbe(Struct):
    """What the ``device`` check found; ``context`` is None when nothing can run there."""

    outcome: Outcome
    context: DeviceContext | None
    usage_error: bool = False


def _resolve(requested: str, cuda_ok: bool, cuda_count: int, mps_ok: bool) -> str:
    if requested == "auto":
        if cuda_ok and cuda_count > 0:
            local_rank = os.environ.get("LOCAL_RANK")
            # Under torchrun each rank smoke-tests its own GPU.
            if local_rank is not None and local_rank.isdigit() and int(local_rank) < cuda_count:
                return f"cuda:{local_rank}"
            return "cuda:0"
        return "mps" if mps_ok else "cpu"
    if requested == "cuda":
        return "cuda:0"
    return requested


def _probe_support(device: torch.device, key: str) -> str | None:
    """Run a tiny op in the dtype; return why it cannot run, or None."""
    try:
        ones = torch.ones(4, 4, dtype=torch_dtype(key), device=device)
        (ones @ ones).sum().item()
    except Exception as exc:  # noqa: BLE001  # any failure means "not supported here"
        return f"{key} matmul does not run on {device.type}: {type(exc).__name__}: {exc}"
    return None


def _capabilities(
    device: torch.device, major: int | None, minor: int | None, is_rocm: bool
) -> tuple[dict[str, str], dict[str, str]]:
    unsupported: dict[str, str] = {}
    slow: dict[str, str] = {}
    for key in ("float64", "float16", "bfloat16"):
        reason = _probe_support(device, key)
        if reason:
            unsupported[key] = reason
    if device.type == "cuda" and not is_rocm:
        if major is not None and major < 8:
            unsupported["tf32"] = (
                f"TF32 tensor cores need compute capability 8.0 or newer; this GPU is "
                f"{major}.{minor}"
            )
            if "bfloat16" not in unsupported:
                slow["bfloat16"] = (
                    f"bfloat16 is emulated below compute capability 8.0 (this GPU is "
                    f"{major}.{minor}): a speed figure would be meaningless"
                )
    elif device.type == "cuda":
        unsupported["tf32"] = "TF32 is an NVIDIA tensor-core mode; this is a ROCm build"
    else:
        unsupported["tf32"] = (
            f"TF32 is an NVIDIA tensor-core mode (compute capability 8.0+), not a {device.type} "
            "format"
        )
    return unsupported, slow


def probe_device(
    requested: str, *, full: bool = False, nvidia_gpu_present: bool | None = None
) -> DeviceProbe:
    """Resolve the requested device, describe it and run a first kernel on it.

    ``nvidia_gpu_present`` (from the parent's PCI/NVML probe) is recorded only: the parent
    turns "auto fell back to the CPU although an NVIDIA GPU is installed" into a failure that
    says why (``dlready.smoke.judge``).
    """
    info: dict[str, Any] = {"requested": requested, "nvidia_gpu_present": nvidia_gpu_present}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cuda_ok = bool(torch.cuda.is_available())
        cuda_count = int(torch.cuda.device_count()) if cuda_ok else 0
    init_warnings = [str(w.message).strip() for w in caught]
    is_rocm = getattr(torch.version, "hip", None) is not None
    mps_ok = _mps_available()
    info.update(
        cuda_available=cuda_ok,
        cuda_device_count=cuda_count,
        cuda_init_warning=init_warnings[0] if init_warnings else None,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        mps_available=mps_ok,
    )
    resolved = _resolve(requested, cuda_ok, cuda_count, mps_ok)
    info["device"] = resolved

    def fail(message: str, *, usage: bool = False) -> DeviceProbe:
        info["usable"] = False
        return DeviceProbe(Outcome("fail", message, info), None, usage_error=usage)

    if resolved.startswith("cuda"):
        if not cuda_ok:
            why = f": {init_warnings[0]}" if init_warnings else ""
            return fail(f"{resolved} requested but torch.cuda.is_available() is False{why}")
        index = int(resolved.split(":", 1)[1]) if ":" in resolved else 0
        if index >= cuda_count:
            known = ", ".join(f"cuda:{i}" for i in range(cuda_count))
            return fail(f"{resolved} does not exist: this machine has {known}", usage=True)
    elif resolved == "mps" and not mps_ok:
        return fail("mps requested but torch.backends.mps.is_available() is False", usage=True)
    elif resolved not in ("cpu", "mps"):
        return fail(f"unknown device {resolved!r}", usage=True)

    device = torch.device(resolved)
    major = minor = None
    arch_support = None
    if device.type == "cuda":
        torch.cuda.set_device(device)  # events and default streams follow the current device
        props = torch.cuda.get_device_properties(device)
        major, minor = int(props.major), int(props.minor)
        arch_list = list(torch.cuda.get_arch_list())
        info.update(
            name=str(props.name),
            compute_capability=f"{major}.{minor}",
            total_memory_bytes=int(props.total_memory),
            multi_processor_count=int(props.multi_processor_count),
            uuid=str(getattr(props, "uuid", "")) or None,
            pci_bus_id=getattr(props, "pci_bus_id", None),
            arch_list=arch_list,
        )
        if is_rocm:
            gcn = str(getattr(props, "gcnArchName", ""))
            info["arch"] = gcn.split(":", 1)[0] or None
            arch_support = rocm_arch_support(gcn, arch_list)
        else:
            info["arch"] = sm_name(major, minor)
            arch_support = cuda_arch_support(major, minor, arch_list)
        info["arch_in_build"] = str(arch_support)
        with contextlib.suppress(Exception):  # absent on old torch or some platforms
            free, _total = torch.cuda.mem_get_info(device)
            info["free_memory_bytes"] = int(free)
    elif device.type == "mps":
        info["name"] = "Apple GPU (Metal Performance Shaders)"
    else:
        info["name"] = _cpu_name()
        info["threads"] = torch.get_num_threads()
        with contextlib.suppress(Exception):
            info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()

    started = time.perf_counter()
    first = torch.ones(4, device=device)
    value = float((first * 2).sum().item())
    info["first_kernel_s"] = round(time.perf_counter() - started, 4)
    if value != 8.0:
        return fail(f"a first kernel on {resolved} computed {value}, not 8")
    unsupported, slow = _capabilities(device, major, minor, is_rocm)
    info["unsupported"] = dict(unsupported)
    info["usable"] = True
    context = DeviceContext(device=device, full=full, unsupported=unsupported, slow=slow)

    if arch_support is ArchSupport.MISSING:
        info["usable"] = False
        return DeviceProbe(
            Outcome(
                "fail",
                f"this torch build has no code for {info.get('arch')} (builds: "
                f"{' '.join(info.get('arch_list', []))})",
                info,
            ),
            None,
        )
    summary = f"{resolved}: {info.get('name') or resolved}"
    if major is not None:
        summary += f" (compute capability {major}.{minor}, {info['arch']} {arch_support})"
    return DeviceProbe(Outcome("pass", summary, info), context)


CheckFunction = Callable[[DeviceContext], Outcome]

CHECKS: dict[str, CheckFunction] = {
    "tensors.create": check_tensors_create,
    "tensors.from_numpy": check_tensors_from_numpy,
    "tensors.round_trip": check_tensors_round_trip,
    "autograd.book_example": check_autograd_book_example,
    "autograd.tracking": check_autograd_tracking,
    "linear.float32": check_linear_float32,
    "linear.tf32": check_linear_tf32,
    "linear.float16": check_linear_float16,
    "linear.bfloat16": check_linear_bfloat16,
    "linear.nn_linear": check_linear_nn_linear,
    "module.parameters": check_module_parameters,
    "module.state_dict": check_module_state_dict,
    "backprop.book_loss": check_backprop_book_loss,
    "backprop.training": check_backprop_training,
    "modes.dropout": check_modes_dropout,
    "modes.batchnorm": check_modes_batchnorm,
    "amp.float16": check_amp_float16,
    "amp.bfloat16": check_amp_bfloat16,
    "distributed.all_reduce": check_distributed_all_reduce,
}
"""Every check that takes a ready device (``device`` and ``burn`` are run by the worker)."""
