"""The child process of ``dlready fit --measure``: ``python -m dlready.fit.measure_worker``.

Reads one job (JSON) on stdin, builds one transformer block of the model's real shapes with
torch, runs it as asked, and writes what it measured (JSON) on stdout. The only module of
``dlready.fit`` that imports torch; the parent (``measure.py``) kills it after a time limit.

What is measured, per block:

- weights, gradients: the bytes of the parameters and of their ``.grad`` after backward;
- optimizer: the bytes of every optimizer state tensor after a first step, plus the float32 master
  copy when training in bf16/fp16 (kept by hand here, as DeepSpeed and Megatron do);
- activations: the bytes of every tensor autograd saves for the backward pass, counted once per
  storage through ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded). This sees
  exactly what the estimate counts, on the CPU as on a GPU, which neither ``tracemalloc`` (blind
  to torch's allocator) nor RSS (noisy, page-granular) does;
- KV cache (inference): the bytes of the keys and values one block keeps;
- the peak: live tensor bytes per phase (forward, backward, optimizer step; ``_LiveBytes``),
  from which the parent takes the transient (what exists only for a moment beyond the rest);
  inference: the forward's working set;
- on CUDA also the memory the process's CUDA context took (``mem_get_info`` before allocating,
  minus what the allocator holds).
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class _RMSNorm(nn.Module):
    """Hugging Face's ``LlamaRMSNorm``, line for line (float32 inside)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + 1e-6)
        return self.weight * x.to(dtype)


class Block(nn.Module):
    """One transformer block: pre-norm (GPT-2, Llama, ViT) or post-norm (BERT)."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__()
        h, heads, kv_heads, head_dim = (
            job["hidden_size"], job["num_heads"], job["num_kv_heads"], job["head_dim"]
        )  # fmt: skip
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.family = job["family"]
        self.gated = job["gated_mlp"]
        self.eager = job["attention"] == "eager"
        self.dropout = job["dropout"]
        self.causal = self.family in ("decoder", "gpt2")
        decoder = self.family == "decoder"
        bias = not decoder
        qkv_bias = job["qkv_bias"] or bias

        def norm() -> nn.Module:
            return _RMSNorm(h) if decoder else nn.LayerNorm(h)

        self.norms = nn.ModuleList(norm() for _ in range(job["norms_per_layer"]))
        self.q = nn.Linear(h, heads * head_dim, bias=qkv_bias)
        self.k = nn.Linear(h, kv_heads * head_dim, bias=qkv_bias)
        self.v = nn.Linear(h, kv_heads * head_dim, bias=qkv_bias)
        self.o = nn.Linear(heads * head_dim, h, bias=bias)
        inner = job["intermediate_size"]
        if self.gated:
            self.gate = nn.Linear(h, inner, bias=False)
            self.up = nn.Linear(h, inner, bias=False)
            self.down = nn.Linear(inner, h, bias=False)
        else:
            self.fc1 = nn.Linear(h, inner)
            self.fc2 = nn.Linear(inner, h)

    def attention(self, y: torch.Tensor, cache: list[torch.Tensor] | None) -> torch.Tensor:
        b, s, _ = y.shape
        q = self.q(y).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(y).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(y).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        if cache is not None:  # what a KV cache keeps: keys and values before repetition
            cache += [k.contiguous(), v.contiguous()]
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        p = self.dropout if self.training else 0.0
        if self.eager:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            if self.causal:
                mask = torch.full((s, s), float("-inf"), device=y.device, dtype=scores.dtype)
                scores = scores + torch.triu(mask, diagonal=1)
            probs = F.dropout(torch.softmax(scores, dim=-1), p, self.training)
            out = probs @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        projected: torch.Tensor = self.o(
            out.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)
        )
        return projected

    def mlp(self, y: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = (
            self.down(F.silu(self.gate(y)) * self.up(y))
            if self.gated
            else self.fc2(F.gelu(self.fc1(y)))
        )
        return out

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        norms = list(self.norms)
        if self.family == "encoder":  # BERT: post-norm
            x = norms[0](x + F.dropout(self.attention(x, cache), p, self.training))
            out: torch.Tensor = norms[1](x + F.dropout(self.mlp(x), p, self.training))
            return out
        a = self.attention(norms[0](x), cache)
        if len(norms) == 4:  # Gemma 2 normalises each sub-block's output too
            a = norms[2](a)
        x = x + F.dropout(a, p, self.training)
        m = self.mlp(norms[1](x))
        if len(norms) == 4:
            m = norms[3](m)
        return x + F.dropout(m, p, self.training)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 convolution)."""

    def __init__(self, channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or channels != 4 * width:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels, 4 * width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(4 * width),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        result: torch.Tensor = self.relu(out)
        return result


def resnet(job: dict[str, Any]) -> nn.Module:
    """ResNet-50 as torchvision builds it (bottlenecks per stage from the job)."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    channels = 64
    for stage, blocks in enumerate(job["stage_blocks"]):
        width = 64 * 2**stage
        for block in range(blocks):
            stride = 2 if (block == 0 and stage > 0) else 1
            layers.append(Bottleneck(channels, width, stride))
            channels = 4 * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, job["num_classes"])]
    return nn.Sequential(*layers)


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class _LiveBytes:
    """The peak of live tensor bytes per phase, above the level when it started.

    On the CPU: the profiler's allocation and free events (``profile_memory=True``), every one
    of the CPU allocator, added up in order; exact to the byte. On CUDA: the caching
    allocator's ``max_memory_allocated``, reset at each phase.
    """

    _MARK = "dlready_phase:"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.names = ["start"]
        self.cuda_peaks: dict[str, int] = {}
        self.profiler: torch.profiler.profile | None = None

    def __enter__(self) -> _LiveBytes:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
            )
            self.profiler.__enter__()  # type: ignore[no-untyped-call]  # unannotated in torch
        return self

    def _close_phase(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self.base
            self.cuda_peaks[self.names[-1]] = peak
            torch.cuda.reset_peak_memory_stats(self.device)

    def mark(self, name: str) -> None:
        """A new phase starts here."""
        self._close_phase()
        self.names.append(name)
        if not self.cuda:
            with torch.profiler.record_function(self._MARK + name):
                pass

    def __exit__(self, *exc: object) -> None:
        self._close_phase()
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)  # type: ignore[no-untyped-call]

    def peaks(self) -> dict[str, int]:
        """Peak bytes above the starting level, per phase."""
        if self.cuda:
            return self.cuda_peaks
        assert self.profiler is not None
        assert self.profiler.profiler is not None
        results: Any = self.profiler.profiler.kineto_results
        events: list[Any] = list(results.events())
        starts = {
            e.name()[len(self._MARK) :]: e.start_ns()
            for e in events
            if e.name().startswith(self._MARK)
        }
        memory = sorted(
            (e.start_ns(), e.nbytes())
            for e in events
            if e.name() == "[memory]" and e.device_type().name == "CPU"
        )
        peaks = dict.fromkeys(self.names, 0)
        live, phase = 0, 0
        for time_ns, nbytes in memory:
            while phase + 1 < len(self.names) and time_ns >= starts[self.names[phase + 1]]:
                phase += 1
                peaks[self.names[phase]] = live
            live += nbytes
            name = self.names[phase]
            peaks[name] = max(peaks[name], live)
        return peaks


_FREE_SHARE = 0.9
"""Of the free memory, what the measurement may plan to use (the rest for torch itself)."""


class DoesNotFitError(Exception):
    """The measurement would need more memory than the device has free."""


def _refuse_when_it_cannot_fit(job: dict[str, Any], device: torch.device) -> None:
    """Refuse before allocating anything when the estimate says the job cannot fit: a swap
    storm or the out-of-memory killer would tell the user far less, far later."""
    expected = (job.get("expected_peak_bytes") or {}).get(device.type)
    if device.type == "cuda":
        free: int | None = torch.cuda.mem_get_info(device)[0]
        where = f"free on {torch.cuda.get_device_name(device)}"
    else:
        free = job.get("host_available_bytes")
        where = "of RAM available"
    if expected is None or free is None or expected <= _FREE_SHARE * free:
        return
    gib = 2**30
    raise DoesNotFitError(
        f"measuring needs about {expected / gib:.1f} GiB and this machine has "
        f"{free / gib:.1f} GiB {where}; measure a smaller --batch or --seq (the estimate "
        "scales from it), or on a machine with more memory"
    )


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Build, run and measure one block."""
    wanted = job["device"]
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(wanted)
    cuda = device.type == "cuda"
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "device": "CPU" if not cuda else str(device),
        "device_type": device.type,
    }
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("this torch cannot use the GPU (torch.cuda.is_available() is False)")
        torch.cuda.init()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        torch.zeros(1, device=device)
        free, total = torch.cuda.mem_get_info(device)
        result["cuda_used_before_bytes"] = total - free - torch.cuda.memory_reserved(device)
        result["device"] = torch.cuda.get_device_name(device)
        torch.cuda.reset_peak_memory_stats(device)
    _refuse_when_it_cannot_fit(job, device)
    dtype = _DTYPES[job["dtype"]]
    train = job["task"] == "train"
    torch.manual_seed(0)
    block = (resnet(job) if job["family"] == "resnet" else Block(job)).to(device, dtype)
    block.train(train)
    result["weights_bytes"] = _bytes(block.parameters())
    if not train:
        cache: list[torch.Tensor] = []
        with _LiveBytes(device) as live, torch.no_grad():
            # the input counts: the caller holds it (the batch, or the previous block's output)
            if job["family"] == "resnet":
                side = job["image_size"]
                x = torch.randn(job["batch"], 3, side, side, device=device, dtype=dtype)
                block(x)
            else:
                b, s, h = job["batch"], job["seq"], job["hidden_size"]
                x = torch.randn(b, s, h, device=device, dtype=dtype)
                block(x, cache if job["kv_cache"] else None)
        result["kv_cache_bytes"] = _bytes(cache)
        # the working set: the forward's peak with its input, less the keys and values kept
        result["activations_bytes"] = live.peaks()["start"] - result["kv_cache_bytes"]
        return result
    parameter_storages = {p.untyped_storage().data_ptr() for p in block.parameters()}
    params: list[torch.Tensor] = list(block.parameters())
    mixed = dtype != torch.float32
    # float32 master weights, updated by the optimizer and copied back (kept by hand, as
    # DeepSpeed and Megatron do)
    masters = [p.detach().float().clone().requires_grad_(True) for p in params] if mixed else params
    if job["optimizer"] == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(masters, lr=1e-4)
    elif job["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(masters, lr=1e-4, momentum=0.9)
    else:
        raise RuntimeError("the 8-bit optimizer needs bitsandbytes and a GPU; not measured")

    def new_input() -> torch.Tensor:
        if job["family"] == "resnet":
            side = job["image_size"]
            return torch.randn(job["batch"], 3, side, side, device=device, dtype=dtype)
        b, s, h = job["batch"], job["seq"], job["hidden_size"]
        return torch.randn(b, s, h, device=device, dtype=dtype, requires_grad=True)

    def forward(x: torch.Tensor, saved: dict[int, int]) -> torch.Tensor:
        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            pointer = storage.data_ptr()
            if pointer and pointer not in parameter_storages:
                saved[pointer] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            if job["recompute"]:
                from torch.utils.checkpoint import checkpoint

                out: torch.Tensor = checkpoint(block, x, use_reentrant=False)
            else:
                out = block(x)
        return out

    def step() -> None:
        if mixed:  # the optimizer updates the float32 masters from float32 gradients
            for master, p in zip(masters, params, strict=True):
                master.grad = None if p.grad is None else p.grad.float()
        optimizer.step()
        if mixed:
            with torch.no_grad():
                for master, p in zip(masters, params, strict=True):
                    p.copy_(master)
                    master.grad = None

    # A first iteration creates the gradients and the optimizer states; the measured one then
    # runs as every later step does, with them in memory (gradients zeroed in place, as with
    # gradient accumulation or zero_grad(set_to_none=False)).
    warm = forward(new_input(), {})
    torch.autograd.backward(warm, torch.ones_like(warm))
    del warm
    step()
    result["gradients_bytes"] = _bytes(p.grad for p in params)
    states = [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    result["optimizer_bytes"] = _bytes(states) + (_bytes(masters) if mixed else 0)
    for p in params:
        if p.grad is not None:
            p.grad.zero_()
    saved: dict[int, int] = {}
    with _LiveBytes(device) as live:
        x = new_input()
        out = forward(x, saved)
        result["block_output_bytes"] = _bytes([out])
        live.mark("backward")
        # the gradient of the block's output, as the block above (or the loss) hands it down
        torch.autograd.backward(out, torch.ones_like(out))
        del out, x
        live.mark("step")
        step()
    result["activations_bytes"] = sum(saved.values())
    phases = live.peaks()
    result["peak_forward_backward_bytes"] = max(phases["start"], phases["backward"])
    result["peak_step_bytes"] = phases["step"]
    if job["family"] in ("decoder", "gpt2") and job.get("vocab_size"):
        result.update(measure_loss_head(job, device, dtype))
    return result


def measure_loss_head(
    job: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> dict[str, int]:
    """A decoder's end: the final norm, the output head and the loss over the vocabulary, as
    Hugging Face computes it (logits in the compute dtype, held by the model's output; cross
    entropy in float32). Returns what it keeps for backward and its forward and backward peak
    beyond that, with the head's gradient already in memory."""
    b, s, h, vocab = job["batch"], job["seq"], job["hidden_size"], job["vocab_size"]
    norm = (_RMSNorm(h) if job["family"] == "decoder" else nn.LayerNorm(h)).to(device, dtype)
    head = nn.Linear(h, vocab, bias=False).to(device, dtype)
    labels = torch.randint(0, vocab, (b * s,), device=device)
    weights = {p.untyped_storage().data_ptr() for p in (*norm.parameters(), *head.parameters())}

    def loss_of(hidden: torch.Tensor, saved: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() and storage.data_ptr() not in weights:
                saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            logits = head(norm(hidden))
            loss = F.cross_entropy(logits.float().view(-1, vocab), labels)
        return logits, loss

    def hidden_state() -> torch.Tensor:
        return torch.randn(b, s, h, device=device, dtype=dtype, requires_grad=True)

    torch.autograd.backward(loss_of(hidden_state(), {})[1])  # the head's gradient exists
    saved: dict[int, int] = {}
    with _LiveBytes(device) as live:
        hidden = hidden_state()
        logits, loss = loss_of(hidden, saved)
        live.mark("backward")
        torch.autograd.backward(loss)
        del logits, loss, hidden
    phases = live.peaks()
    return {
        "loss_activations_bytes": sum(saved.values()),
        "loss_peak_bytes": max(phases["start"], phases["backward"]),
    }


def main() -> int:
    """Read the job, run it, print the result; a failure is one JSON error line."""
    try:
        job = json.loads(sys.stdin.read())
        result = run(job)
    except DoesNotFitError as exc:
        print(json.dumps({"error": str(exc), "refused": True}))
        return 1
    except Exception as exc:  # noqa: BLE001  # reported to the parent, never a traceback
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
