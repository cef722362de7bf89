"""Every smoke check passes on this CPU, and fails with a useful message when an op lies.

The checks run in-process here (the worker runs the same functions); each fault is a patched
torch op, so a check that could never fail would show up as a passing "fault" test.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import pytest
import torch

from dlready.smoke import catalog
from dlready.smoke.checks import CHECKS, DeviceContext, linear_error_ratio, probe_device
from dlready.smoke.outcome import CheckFailedError, Outcome
from dlready.smoke.speed import SPEED_CHECKS


@pytest.fixture(scope="module")
def cpu() -> DeviceContext:
    probe = probe_device("cpu")
    assert probe.context is not None
    return probe.context


def _all_dtypes_cpu() -> DeviceContext:
    """A CPU context that claims every dtype, so the TF32 code path runs too (as on a GPU)."""
    return DeviceContext(device=torch.device("cpu"), unsupported={})


def _run(name: str, ctx: DeviceContext) -> Outcome:
    return {**CHECKS, **SPEED_CHECKS}[name](ctx)


def test_every_catalog_check_has_an_implementation() -> None:
    implemented = {*CHECKS, *SPEED_CHECKS, "device", "burn"}
    assert {spec.name for spec in catalog.ALL_CHECKS} == implemented


# Checks that cannot run on a CPU, with the reason the CPU run must give.
CPU_SKIPS = {
    "linear.tf32": "TF32",
    "speed.matmul.tf32": "TF32",
    "speed.h2d": "no host-to-device link",
    "speed.d2h": "no device-to-host link",
    "distributed.all_reduce": "torchrun",
}


@pytest.mark.parametrize("name", [*CHECKS, *SPEED_CHECKS])
def test_check_passes_on_cpu(
    name: str, cpu: DeviceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    outcome = _run(name, cpu)
    if name in CPU_SKIPS:
        assert outcome.status == "skipped"
        assert CPU_SKIPS[name] in outcome.message
    else:
        assert outcome.status == "pass", outcome.message


def test_tf32_check_runs_where_tf32_is_claimed() -> None:
    assert _run("linear.tf32", _all_dtypes_cpu()).status == "pass"


# --- faults -------------------------------------------------------------------------------------


def _wrong_mm(monkeypatch: pytest.MonkeyPatch, delta: float = 1.0) -> None:
    original = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b: original(a, b) + delta)


def _scaled_mm(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b: original(a, b) * 2)


def _arange_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.arange
    monkeypatch.setattr(torch, "arange", lambda *a, **k: original(*a, **k) + 1)


def _copying_from_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "from_numpy", lambda array: torch.tensor(array.copy()))


def _float_from_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.from_numpy
    monkeypatch.setattr(torch, "from_numpy", lambda array: original(array).float())


def _corrupting_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.Tensor.cpu

    def cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = original(self, *args, **kwargs).clone()
        if result.numel() > 1000 and result.dtype is torch.float32:
            result.view(-1)[123] += 1
        return result

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)


def _silent_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: None)


def _cubing_pow(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.Tensor.__pow__
    monkeypatch.setattr(torch.Tensor, "__pow__", lambda self, exponent: original(self, 3))


def _no_grad_that_tracks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "no_grad", contextlib.nullcontext)


def _off_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.nn.functional.linear
    monkeypatch.setattr(
        torch.nn.functional, "linear", lambda x, w, b=None: original(x, w, b) + 1e-3
    )


def _no_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.nn.Module, "parameters", lambda self, recurse=True: iter(()))


def _zeroing_load(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.load

    def load(*args: Any, **kwargs: Any) -> Any:
        state = original(*args, **kwargs)
        first = next(iter(state))
        state[first] = torch.zeros_like(state[first])
        return state

    monkeypatch.setattr(torch, "load", load)


def _detached_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.nn.functional.mse_loss
    monkeypatch.setattr(
        torch.nn.functional,
        "mse_loss",
        lambda a, b: original(a, b).detach().requires_grad_(True),
    )


def _eval_that_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.nn.Module, "eval", lambda self: self)


def _dropout_always_on(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.nn.functional.dropout
    monkeypatch.setattr(
        torch.nn.functional,
        "dropout",
        lambda x, p=0.5, training=True, inplace=False: original(x, p, True, inplace),
    )


def _batchnorm_always_training(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.nn.functional.batch_norm

    def batch_norm(x: torch.Tensor, mean: Any, var: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["training"] = True
        if len(args) >= 3:
            args = (*args[:2], True, *args[3:])
            kwargs.pop("training")
        return original(x, mean, var, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "batch_norm", batch_norm)


def _autocast_that_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: contextlib.nullcontext())


def _matmul_that_writes_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> Any:
        if out is None:
            return torch.zeros(a.shape[0], b.shape[1], dtype=a.dtype)
        return out.zero_()

    monkeypatch.setattr(torch, "matmul", matmul)


def _matmul_one_wrong_row(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.matmul

    def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> Any:
        result = original(a, b, out=out) if out is not None else original(a, b)
        # Shift every row by one: plausible numbers, all in the wrong place.
        result.copy_(torch.roll(result.clone(), shifts=1, dims=0))
        return result

    monkeypatch.setattr(torch, "matmul", matmul)


def _copy_that_drops_a_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.Tensor.copy_

    def copy_(self: torch.Tensor, source: torch.Tensor, non_blocking: bool = False) -> Any:
        result = original(self, source, non_blocking)
        if self.dtype is torch.uint8 and self.numel() > 1000:
            self.view(-1)[7] ^= 0xFF
        return result

    monkeypatch.setattr(torch.Tensor, "copy_", copy_)


Fault = Callable[[pytest.MonkeyPatch], None]

FAULTS: list[Any] = [
    pytest.param("tensors.create", _arange_off_by_one, "not 36", id="create-arange"),
    pytest.param("tensors.from_numpy", _copying_from_numpy, "share memory", id="numpy-copy"),
    pytest.param("tensors.from_numpy", _float_from_numpy, "not torch.int64", id="numpy-dtype"),
    pytest.param("tensors.round_trip", _corrupting_cpu, "values changed", id="round-trip"),
    pytest.param("autograd.book_example", _silent_backward, "w.grad empty", id="no-backward"),
    pytest.param("autograd.book_example", _cubing_pow, "not 23", id="wrong-power"),
    pytest.param("autograd.tracking", _no_grad_that_tracks, "no_grad", id="no-grad-tracks"),
    pytest.param("linear.float32", _wrong_mm, "float64 reference", id="linear-float32"),
    pytest.param("linear.float16", _wrong_mm, "float64 reference", id="linear-float16"),
    pytest.param("linear.bfloat16", _wrong_mm, "float64 reference", id="linear-bfloat16"),
    pytest.param("linear.nn_linear", _off_linear, "nn.Linear output", id="nn-linear"),
    pytest.param("module.parameters", _no_parameters, "registered shapes", id="parameters"),
    pytest.param("module.state_dict", _zeroing_load, "round trip", id="state-dict"),
    pytest.param("backprop.book_loss", _scaled_mm, "dloss/dW", id="book-loss"),
    pytest.param("backprop.training", _detached_loss, "not below", id="training"),
    pytest.param("modes.dropout", _eval_that_does_nothing, "eval()", id="eval-no-op"),
    pytest.param("modes.dropout", _dropout_always_on, "eval mode", id="dropout-in-eval"),
    pytest.param("modes.batchnorm", _batchnorm_always_training, "eval-mode", id="batchnorm"),
    pytest.param("amp.float16", _autocast_that_does_nothing, "produced", id="amp-float16"),
    pytest.param("amp.bfloat16", _autocast_that_does_nothing, "produced", id="amp-bfloat16"),
    pytest.param("speed.matmul.float32", _matmul_that_writes_zeros, "wrong values", id="mm32"),
    pytest.param("speed.matmul.float16", _matmul_one_wrong_row, "wrong values", id="mm16"),
    pytest.param("speed.matmul.bfloat16", _matmul_one_wrong_row, "wrong values", id="mmbf16"),
    pytest.param("speed.memory_copy", _copy_that_drops_a_byte, "differs", id="copy"),
]


@pytest.mark.parametrize(("name", "fault", "says"), FAULTS)
def test_check_fails_when_an_op_lies(
    name: str, fault: Fault, says: str, cpu: DeviceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault(monkeypatch)
    with pytest.raises(CheckFailedError) as failed:
        _run(name, cpu)
    assert says in failed.value.message


def test_tf32_check_fails_when_an_op_lies(monkeypatch: pytest.MonkeyPatch) -> None:
    _wrong_mm(monkeypatch, delta=0.5)
    with pytest.raises(CheckFailedError, match="tf32 x @ W"):
        _run("linear.tf32", _all_dtypes_cpu())


def test_speed_tf32_check_fails_when_an_op_lies(monkeypatch: pytest.MonkeyPatch) -> None:
    _matmul_that_writes_zeros(monkeypatch)
    ctx = DeviceContext(device=torch.device("cpu"), unsupported={})
    # The CPU plan has no TF32 size; borrow the float32 one to exercise the TF32 bound.
    from dlready.smoke import speed

    original = speed.plan_for
    monkeypatch.setattr(
        speed,
        "plan_for",
        lambda kind, full: speed.Plan(
            {**original(kind, full).matmul_n, "tf32": 256}, 1, 3, 0.1, 1 << 20, 0
        ),
    )
    with pytest.raises(CheckFailedError, match="wrong values"):
        speed.measure_matmul(ctx, "tf32")


# --- the linear-layer tolerance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "unit_roundoff"),
    [
        pytest.param(torch.float32, 2.0**-24, id="float32"),
        pytest.param(torch.float16, 2.0**-11, id="float16"),
        pytest.param(torch.bfloat16, 2.0**-8, id="bfloat16"),
    ],
)
def test_linear_bound_accepts_the_dtype_and_rejects_one_ulp_too_coarse(
    dtype: torch.dtype, unit_roundoff: float
) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 10, generator=gen, dtype=torch.float64).to(dtype)
    w = torch.randn(10, 5, generator=gen, dtype=torch.float64).to(dtype)
    b = torch.randn(5, generator=gen, dtype=torch.float64).to(dtype)
    exact = x.double() @ w.double() + b.double()
    _, ratio = linear_error_ratio(exact.to(dtype), x, w, b, unit_roundoff)
    assert ratio <= 1.0
    # A result rounded far more coarsely than the dtype (to whole numbers) is out of bound.
    _, coarse = linear_error_ratio(exact.round(), x, w, b, unit_roundoff)
    assert coarse > 1.0


# --- the device check ---------------------------------------------------------------------------


def test_device_auto_on_this_machine_is_the_cpu() -> None:
    probe = probe_device("auto")
    assert probe.outcome.status == "pass"
    assert probe.outcome.measured["device"] == "cpu"
    assert probe.outcome.measured["cuda_available"] is False
    assert probe.context is not None
    assert "tf32" in probe.context.unsupported


@pytest.mark.parametrize(
    ("requested", "says", "usage"),
    [
        pytest.param("cuda", "torch.cuda.is_available() is False", False, id="cuda"),
        pytest.param("cuda:3", "torch.cuda.is_available() is False", False, id="cuda-3"),
        pytest.param("mps", "mps requested", True, id="mps"),
        pytest.param("tpu", "unknown device", True, id="unknown"),
    ],
)
def test_device_that_is_not_here_fails(requested: str, says: str, usage: bool) -> None:
    probe = probe_device(requested)
    assert probe.outcome.status == "fail"
    assert says in probe.outcome.message
    assert probe.context is None
    assert probe.usage_error is usage


def test_device_check_fails_when_the_first_kernel_is_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch, "ones", torch.zeros)
    probe = probe_device("cpu")
    assert probe.outcome.status == "fail"
    assert "not 8" in probe.outcome.message


# --- distributed (one rank, gloo) ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))


@pytest.mark.usefixtures("one_rank")
def test_all_reduce_passes_with_one_gloo_rank(cpu: DeviceContext) -> None:
    outcome = _run("distributed.all_reduce", cpu)
    assert outcome.status == "pass"
    assert outcome.measured["backend"] == "gloo"


@pytest.mark.usefixtures("one_rank")
def test_all_reduce_fails_when_the_collective_lies(
    cpu: DeviceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    original = dist.all_reduce

    def all_reduce(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        result = original(tensor, *args, **kwargs)
        tensor.mul_(2)
        return result

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    with pytest.raises(CheckFailedError, match=r"all_reduce over 1 ranks gave 2\.0"):
        _run("distributed.all_reduce", cpu)


def test_autocast_refused_by_the_device_is_a_skip_with_the_reason(
    cpu: DeviceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def autocast(*_args: Any, **_kwargs: Any) -> Any:
        # torch's text on GPUs older than compute capability 8.0
        raise RuntimeError(
            "Current CUDA Device does not support bfloat16. Please switch dtype to float16."
        )

    monkeypatch.setattr(torch, "autocast", autocast)
    outcome = _run("amp.bfloat16", cpu)
    assert outcome.status == "skipped"
    assert "does not support bfloat16" in outcome.message


@pytest.mark.parametrize("to_device", [True, False], ids=["h2d", "d2h"])
def test_transfer_measurement_runs_and_verifies(to_device: bool) -> None:
    """The host-copy code path, on the CPU without pinning (pinning needs an accelerator)."""
    from dlready.smoke.speed import plan_for, transfer_bandwidth

    outcome = transfer_bandwidth(
        torch.device("cpu"), 4 << 20, to_device, plan_for("cpu", False), pin=False
    )
    assert outcome.status == "pass"
    assert outcome.measured["unit"] == "GB/s"
    assert outcome.measured["value"] > 0


@pytest.mark.parametrize("to_device", [True, False], ids=["h2d", "d2h"])
def test_transfer_measurement_fails_when_a_copy_changes_the_data(
    to_device: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlready.smoke.speed import plan_for, transfer_bandwidth

    original = torch.Tensor.copy_

    def copy_(self: torch.Tensor, source: torch.Tensor, non_blocking: bool = False) -> Any:
        result = original(self, source, non_blocking)
        if self.dtype is torch.uint8 and self.numel() > 1000:
            self.view(-1)[7] = (int(source.view(-1)[7]) + 1) % 256
        return result

    monkeypatch.setattr(torch.Tensor, "copy_", copy_)
    with pytest.raises(CheckFailedError, match="copy changed the data"):
        transfer_bandwidth(
            torch.device("cpu"), 4 << 20, to_device, plan_for("cpu", False), pin=False
        )
