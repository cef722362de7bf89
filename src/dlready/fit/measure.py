"""The parent side of ``dlready fit --measure`` (no torch here).

It sends one job to ``python -m dlready.fit.measure_worker`` (a child process, as ``smoke``
does), waits at most ``timeout_s``, kills the child's whole process group on a hang, and sets
the child's per-block figures beside the estimate's per-block figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from typing import Any

from msgspec import Struct

from dlready.fit.catalog import ModelSpec, layer_parameters, parameter_count
from dlready.fit.estimate import (
    DTYPE_BYTES,
    LOG_SOFTMAX_BYTES,
    Request,
    backward_transient_bytes,
    block_backward_transient_bytes,
    compute_dtype,
    effective_seq,
    estimate,
    kv_cache_bytes,
    loss_backward_transient_bytes,
    loss_head_activation_bytes,
    optimizer_step_transient_bytes,
    peak_transient_bytes,
    transformer_layer_activation_bytes,
)
from dlready.render.text import format_number

WORKER_MODULE = "dlready.fit.measure_worker"
DEFAULT_TIMEOUT_S = 300.0
NEGLIGIBLE_BYTES = 64 * 2**10
PEAK_ITEMS = ("weights", "gradients", "optimizer", "activations", "transient")


class MeasureError(Exception):
    """The measurement could not run; ``torch_missing`` when torch is not installed."""

    def __init__(self, message: str, torch_missing: bool = False) -> None:
        super().__init__(message)
        self.torch_missing = torch_missing


class MeasuredItem(Struct, frozen=True):
    """One item: the estimate for one block against what the child measured."""

    name: str
    estimate_bytes: float
    measured_bytes: float

    @property
    def ratio(self) -> float | None:
        """Estimate divided by measurement (None when both are next to nothing: an SGD step's
        temporaries, a KV cache an encoder does not have)."""
        if max(self.estimate_bytes, self.measured_bytes) < NEGLIGIBLE_BYTES:
            return None
        return self.estimate_bytes / self.measured_bytes if self.measured_bytes else None


class Measurement(Struct, frozen=True):
    """What ``--measure`` found."""

    device: str
    what: str
    items: tuple[MeasuredItem, ...]
    notes: tuple[str, ...]
    raw: dict[str, Any]

    def jsonable(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "device": self.device,
            "what": self.what,
            "items": [
                {
                    "name": item.name,
                    "estimate_bytes": round(item.estimate_bytes),
                    "measured_bytes": round(item.measured_bytes),
                    "ratio": None if item.ratio is None else round(item.ratio, 4),
                }
                for item in self.items
            ],
            "notes": list(self.notes),
            "raw": self.raw,
        }


def measurable(spec: ModelSpec, request: Request) -> str | None:
    """Why this request cannot be measured, or None."""
    if not spec.is_transformer and spec.family != "resnet":
        return "--measure needs the model's shape; only a parameter count is known"
    if spec.num_experts > 1:
        return "--measure does not build mixture-of-experts blocks"
    if spec.qk_norm:
        return "--measure does not build blocks that normalise Q and K (Qwen3, Gemma 3)"
    if spec.ungated_mlp or spec.layer_norm:
        return "--measure does not build Falcon's block (LayerNorm, an MLP without a gate)"
    if request.task not in ("infer", "train") or request.dtype not in ("fp32", "bf16", "fp16"):
        return "--measure covers inference and full training in fp32, bf16 or fp16"
    if request.task == "train" and request.optimizer == "adamw-8bit":
        return "--measure does not run the 8-bit optimizer (it needs bitsandbytes)"
    return None


def _job(spec: ModelSpec, request: Request, device: str) -> dict[str, Any]:
    if spec.family == "resnet":
        return {
            "family": "resnet",
            "stage_blocks": list(spec.stage_blocks),
            "num_classes": spec.num_classes,
            "image_size": spec.image_size,
            "task": request.task,
            "dtype": request.dtype,
            "optimizer": request.optimizer,
            "recompute": request.recompute,
            "batch": request.batch,
            "kv_cache": False,
            "device": device,
        }
    return {
        "family": spec.family,
        "hidden_size": spec.hidden_size,
        "num_heads": spec.num_heads,
        "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.attention_head_dim,
        "intermediate_size": spec.intermediate_size,
        "gated_mlp": spec.gated_mlp,
        "qkv_bias": spec.qkv_bias,
        "norms_per_layer": spec.norms_per_layer,
        "dropout": spec.dropout,
        "attention": request.attention,
        "task": request.task,
        "dtype": request.dtype,
        "optimizer": request.optimizer,
        "recompute": request.recompute,
        "batch": request.batch,
        "seq": effective_seq(spec, request),
        "kv_cache": spec.family in ("decoder", "gpt2"),
        "vocab_size": spec.vocab_size,
        "device": device,
    }


def block_estimate(spec: ModelSpec, request: Request) -> dict[str, float]:
    """The estimate's figures for one block (what the child builds), with the optimizer
    step's temporaries on their own (``step``) and the transient (the peak beyond the rest)."""
    whole = estimate(spec, request.with_(sharding="none", gpus=1, offload=False))
    if spec.family == "resnet":  # the whole network is built
        if request.task != "train":
            return {"weights": whole.weights_bytes, "activations": whole.activations_bytes}
        return {
            "weights": whole.weights_bytes,
            "gradients": whole.gradients_bytes,
            "optimizer": whole.optimizer_bytes,
            "activations": whole.activations_bytes,
            "transient": whole.transient_bytes,
            "backward": backward_transient_bytes(spec, request),
            "step": optimizer_step_transient_bytes(spec, request, whole.trainable_parameters),
        }
    share = layer_parameters(spec) / parameter_count(spec)
    seq = effective_seq(spec, request)
    if request.task == "infer":
        logits = LOG_SOFTMAX_BYTES * request.batch * spec.vocab_size
        return {
            "weights": whole.weights_bytes * share,
            # the working set of one block (the next-token logits are outside the blocks)
            "activations": whole.activations_bytes
            - (logits if spec.family in ("decoder", "gpt2") else 0),
            # only decoders keep a KV cache: no row for an encoder or ViT
            **(
                {"kv_cache": kv_cache_bytes(spec, request) / spec.num_layers}
                if spec.family in ("decoder", "gpt2")
                else {}
            ),
        }
    layer = transformer_layer_activation_bytes(spec, request, seq)
    backward = block_backward_transient_bytes(spec, request, seq)
    if request.recompute:  # a checkpointed block keeps its input; backward rebuilds the rest
        value = DTYPE_BYTES[compute_dtype(request)]
        activations = float(value * request.batch * seq * spec.hidden_size)
        backward += layer
    else:
        activations = layer
    step = optimizer_step_transient_bytes(spec, request, layer_parameters(spec), whole_model=False)
    return {
        "weights": whole.weights_bytes * share,
        "gradients": whole.gradients_bytes * share,
        "optimizer": whole.optimizer_bytes * share,
        "activations": activations,
        "transient": peak_transient_bytes(activations, backward, step),
        "backward": backward,
        "step": step,
        "loss_activations": loss_head_activation_bytes(spec, request, seq),
        "loss_transient": loss_backward_transient_bytes(spec, request, seq),
    }


def measured_backward_transient_bytes(raw: dict[str, Any]) -> float:
    """The forward and backward passes' peak beyond the activations and beyond the block's
    output (which stands for the next block's input, one of its activations)."""
    peak = raw["peak_forward_backward_bytes"]
    return float(peak - raw["activations_bytes"] - raw["block_output_bytes"])


def _host_available_bytes() -> int | None:
    """RAM this machine has free now (for a measurement on the CPU), or None if unknown."""
    from dlready.probes.host_gateway import RealHost
    from dlready.probes.hostfs import RealHostFiles
    from dlready.probes.memory import probe_memory

    try:
        memory = probe_memory(RealHostFiles(), RealHost())
    except Exception:  # noqa: BLE001  # unknown: the child then does not check
        return None
    known = [
        int(reading.value)
        for reading in (memory.available_bytes, memory.effective_total_bytes)
        if reading.ok and reading.value is not None
    ]
    return min(known) if known else None  # a container's limit caps what the host has free


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the child's whole process group (it leads its own session) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError):
        process.communicate()


def run_worker(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the child and return its result.

    Raises:
        MeasureError: torch missing, a timeout, a crash or an error in the child.
    """
    if importlib.util.find_spec("torch") is None:
        raise MeasureError("--measure needs torch, which is not installed", torch_missing=True)
    process = subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", WORKER_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(json.dumps(job), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise MeasureError(f"the measurement did not finish within {timeout_s:g} s") from None
    except BaseException:
        # Ctrl-C, SIGTERM/SIGHUP (StopSignals raises here) or any error: the child runs in its
        # own session, so nothing else would end it; it would outlive us holding its memory.
        _kill_group(process)
        raise
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    try:
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if "error" in result:
        said = "cannot measure" if result.get("refused") else "the measurement failed"
        raise MeasureError(f"{said}: {result['error']}")
    if process.returncode != 0 or not result:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasureError(f"the measurement process ended with code {process.returncode}: {last}")
    return result


def job_peak_bytes(spec: ModelSpec, request: Request) -> float:
    """What the child will hold at most, by the estimate: the block (or ResNet) at its peak,
    then, for a decoder, the output head beside it (its weight and gradient, the logits and
    the loss). The child refuses to start when the device has less free (see measure_worker)."""
    expected = block_estimate(spec, request)
    total = sum(expected.get(name, 0.0) for name in (*PEAK_ITEMS, "kv_cache"))
    if "loss_activations" in expected and spec.vocab_size:
        head_weight = DTYPE_BYTES[request.dtype] * spec.vocab_size * spec.hidden_size
        total += 2 * head_weight + expected["loss_activations"] + expected["loss_transient"]
    return total


def measure(
    spec: ModelSpec, request: Request, device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S
) -> Measurement:
    """Build one block of ``spec`` on ``device`` (``auto``: the GPU when torch can use one,
    else the CPU) and compare the estimate with what it really takes.

    Raises:
        MeasureError: the request cannot be measured, or the measurement failed.
    """
    reason = measurable(spec, request)
    if reason:
        raise MeasureError(reason)
    job = _job(spec, request, device)
    job["expected_peak_bytes"] = {
        kind: round(job_peak_bytes(spec, request.with_(device=kind))) for kind in ("cpu", "cuda")
    }
    job["host_available_bytes"] = _host_available_bytes()
    raw = run_worker(job, timeout_s)
    measured_on = str(raw.get("device_type", "cpu"))
    expected = block_estimate(spec, request.with_(device=measured_on))
    items = [
        MeasuredItem(name, expected[name], float(raw[f"{name}_bytes"]))
        for name in ("weights", "gradients", "optimizer", "activations", "kv_cache")
        if name in expected and f"{name}_bytes" in raw
    ]
    if "transient" in expected and "peak_step_bytes" in raw:
        backward = measured_backward_transient_bytes(raw)
        step = float(raw["peak_step_bytes"])
        # composed as the estimate's: the step's peak counts beyond the freed activations
        transient = peak_transient_bytes(raw["activations_bytes"], backward, step)
        kept = sum(item.measured_bytes for item in items)
        items += [
            MeasuredItem("transient", expected["transient"], transient),
            MeasuredItem("- in the backward pass", expected["backward"], backward),
            MeasuredItem("- in the optimizer step", expected["step"], step),
            MeasuredItem(
                "peak (all items)",
                sum(expected[name] for name in PEAK_ITEMS),
                kept + transient,
            ),
        ]
    if "loss_peak_bytes" in raw:  # a decoder's output head and loss, built beside the block
        head_kept = float(raw["loss_activations_bytes"])
        items += [
            MeasuredItem("loss and head: activations", expected["loss_activations"], head_kept),
            MeasuredItem(
                "loss and head: temporaries",
                expected["loss_transient"],
                raw["loss_peak_bytes"] - head_kept,
            ),
        ]
    notes = (
        ["the whole network was built"]
        if spec.family == "resnet"
        else [
            "figures are for one block of the model (the estimate multiplies by "
            f"{spec.num_layers} blocks)"
        ]
    )
    if request.device != measured_on:
        notes.append(
            f"measured on this machine's {'GPU' if measured_on == 'cuda' else 'CPU'}; the "
            "per-block figures here are estimated for that device"
        )
    if "cuda_used_before_bytes" in raw:
        notes.append(
            f"GPU memory in use before allocating (this process's CUDA context and any other "
            f"process): {raw['cuda_used_before_bytes'] / 2**20:.0f} MiB"
        )
    batch = format_number(request.batch)
    shape = (
        f"the whole network, batch {batch} at {spec.image_size}x{spec.image_size}"
        if spec.family == "resnet"
        else f"one block, batch {batch} x {format_number(effective_seq(spec, request))} tokens"
    )
    task = {"infer": "inference", "train": "training"}.get(request.task, request.task)
    what = f"{shape}, {task}, {request.dtype}, torch {raw.get('torch', '?')}"
    return Measurement(str(raw.get("device", device)), what, tuple(items), tuple(notes), raw)
