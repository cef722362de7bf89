"""``dlready fit`` on machines that are not a row of identical, working GPUs: mixed cards, an
integrated GPU beside a discrete one, broken drivers, lost GPUs, no GPU; and the words, numbers
and codes of its output (docs/fit.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.fit.catalog import resolve_model
from dlready.fit.estimate import Request, estimate
from dlready.fit.plan import (
    FitMachine,
    GpuUnusableError,
    MachineError,
    machine_from_snapshot,
    plan,
)
from dlready.model import MachineSnapshot, to_jsonable
from dlready.render.fit_render import count_words, gib
from machines import replay_snapshot
from scenarios_gpu import (
    NVML_FAILURES,
    RTX_2080_TI,
    RTX_4090,
    RX_7900_XTX_DESKTOP_FILES,
    NvidiaScenario,
    amd_without_driver_file_texts,
    library_not_found,
    nvidia_scenario,
)

runner = CliRunner()
GIB = 2**30


def _rtx_4090_beside_2080_ti() -> MachineSnapshot:
    # A desktop that kept its old RTX 2080 Ti (11 GB, Turing: no bfloat16) in the second slot
    # after an RTX 4090 (24 GB, Ada) went into the first.
    scenario = NvidiaScenario(
        id="rtx-4090-and-2080-ti",
        description="An RTX 4090 and the RTX 2080 Ti it replaced, in one desktop",
        cards=(RTX_4090, RTX_2080_TI),
        bus_ids=("00000000:01:00.0", "00000000:02:00.0"),
    )
    return replay_snapshot("h100-80gb-hbm3", nvml=scenario.replay())


def _amd_desktop() -> MachineSnapshot:
    # The RX 7900 XTX desktop with its Ryzen APU's integrated GPU (512 MiB carve-out).
    return replay_snapshot(
        "cpu-only-epyc-vm", nvml=library_not_found(), files_extra=dict(RX_7900_XTX_DESKTOP_FILES)
    )


def _amd_desktop_without_driver() -> MachineSnapshot:
    return replay_snapshot(
        "cpu-only-epyc-vm",
        nvml=library_not_found(),
        files_extra=dict(amd_without_driver_file_texts()),
    )


def _nvidia_on_bus_without_driver() -> MachineSnapshot:
    # The H100 server with its driver uninstalled: the card is still on the PCI bus.
    return replay_snapshot(
        "h100-80gb-hbm3",
        nvml=library_not_found(),
        files_extra={
            "/sys/bus/pci/devices/0000:00:06.0/class": "0x030200\n",
            "/sys/bus/pci/devices/0000:00:06.0/vendor": "0x10de\n",
            "/sys/bus/pci/devices/0000:00:06.0/device": "0x2330\n",
        },
    )


def _four_4090() -> MachineSnapshot:
    return replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("4x-rtx-4090").replay())


def _save(tmp_path: Path, name: str, snapshot: MachineSnapshot) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(to_jsonable(snapshot)))
    return str(path)


def _fit(*args: str) -> Any:
    return runner.invoke(app, ["fit", *args])


# --- which GPUs are planned for --------------------------------------------------------------


def test_mixed_gpus_plan_for_the_largest_card_not_the_smallest() -> None:
    machine = machine_from_snapshot(_rtx_4090_beside_2080_ti())
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA GeForce RTX 4090"]
    assert machine.bf16  # the dtype follows the GPU used, not the Turing card left out
    assert len(machine.left_out) == 1
    assert machine.left_out[0].startswith("GPU 1 ")
    assert "--gpus 2" in machine.left_out[0]
    report = plan(resolve_model("llama-3-8b"), Request(task="infer", dtype="bf16"), machine)
    assert report.fits
    assert report.budget_bytes > 20 * GIB


def test_mixed_gpus_with_gpus_2_use_both_and_the_smaller_sets_the_budget_and_dtype() -> None:
    machine = machine_from_snapshot(_rtx_4090_beside_2080_ti(), 2)
    assert len(machine.gpus) == 2
    assert not machine.bf16  # the 2080 Ti computes in float16 only
    assert machine.budget_bytes is not None
    assert machine.budget_bytes < 12 * GIB
    assert machine.left_out == ()


def test_mixed_gpus_cli_says_which_gpu_was_left_out(tmp_path: Path) -> None:
    result = _fit("llama-3-8b", "--snapshot", _save(tmp_path, "mixed", _rtx_4090_beside_2080_ti()))
    assert result.exit_code == 0, result.stdout
    assert "on NVIDIA GeForce RTX 4090 (24.0 GiB" in result.stdout
    assert "left out: GPU 1 (NVIDIA GeForce RTX 2080 Ti)" in result.stdout
    assert "bf16 weights" in result.stdout


def test_integrated_gpu_beside_a_discrete_card_is_left_out_as_check_does() -> None:
    machine = machine_from_snapshot(_amd_desktop())
    assert len(machine.gpus) == 1
    assert machine.gpus[0].total_bytes > 20 * GIB
    assert any("integrated or display-only" in line for line in machine.left_out)


def test_amd_output_names_rocm_not_cuda(tmp_path: Path) -> None:
    result = _fit("llama-3-8b", "--snapshot", _save(tmp_path, "amd", _amd_desktop()))
    assert "ROCm (HIP) context" in result.stdout
    assert "CUDA" not in result.stdout
    assert "512 MiB total per GPU" not in result.stdout
    assert "left out: GPU 1" in result.stdout


# --- a GPU that is there but does not work -----------------------------------------------------

BROKEN_DRIVER = [
    f for f in NVML_FAILURES if f.gpu_count == 0 and f.expected_state != "not_installed"
]


@pytest.mark.parametrize("failure", BROKEN_DRIVER, ids=lambda f: f.id)
def test_broken_nvidia_driver_stops_with_its_fix(tmp_path: Path, failure: Any) -> None:
    path = _save(tmp_path, failure.id, replay_snapshot("h100-80gb-hbm3", nvml=failure.backend()))
    result = _fit("llama-3-8b", "--snapshot", path, "--json")
    assert result.exit_code == 2, result.stdout
    error = json.loads(result.stdout)["errors"][0]
    assert error["code"] == "gpu_unusable"
    assert "driver first" in error["message"]
    if failure.hint_contains:
        assert failure.hint_contains in error["hint"]
    human = _fit("llama-3-8b", "--snapshot", path)
    assert human.exit_code == 2
    assert "Fits" not in human.stdout
    assert "--device cpu" in human.stderr
    on_cpu = _fit("llama-3-8b", "--snapshot", path, "--device", "cpu")
    assert on_cpu.exit_code == 0
    assert "of RAM" in on_cpu.stdout


@pytest.mark.parametrize(
    ("snapshot", "words"),
    [
        (_nvidia_on_bus_without_driver, "fix the NVIDIA driver first"),
        (_amd_desktop_without_driver, "fix the AMD GPU driver first"),
    ],
)
def test_gpu_without_a_working_driver_is_not_judged_as_a_cpu_machine(
    snapshot: Any, words: str
) -> None:
    with pytest.raises(GpuUnusableError, match=words) as raised:
        machine_from_snapshot(snapshot())
    assert raised.value.fix
    assert machine_from_snapshot(snapshot(), cpu_only=True).device == "cpu"


def test_a_lost_gpu_is_left_out_and_the_others_are_used() -> None:
    failure = next(f for f in NVML_FAILURES if f.id == "gpu-lost-handle")
    machine = machine_from_snapshot(replay_snapshot("h100-80gb-hbm3", nvml=failure.backend()))
    assert [gpu.index for gpu in machine.gpus] == [0, 1, 3]
    assert any(line.startswith("GPU 2") and "does not work" in line for line in machine.left_out)


def test_apple_gpu_is_judged_against_unified_memory(tmp_path: Path) -> None:
    from test_scenarios import _apple_m2

    result = _fit("gpt2", "--snapshot", _save(tmp_path, "m2", _apple_m2()))
    assert result.exit_code == 0
    assert "unified memory, shared by its Apple GPU and CPU" in result.stdout
    assert "running on the CPU" not in result.stdout
    assert "CUDA" not in result.stdout


def test_a_machine_without_gpu_is_still_judged_against_ram() -> None:
    machine = machine_from_snapshot(replay_snapshot("cpu-only-epyc-vm"))
    assert machine.device == "cpu"


# --- the least costly combination --------------------------------------------------------------


def test_cheapest_is_the_least_lossy_combination_that_fits() -> None:
    machine = machine_from_snapshot(_four_4090(), 4)
    report = plan(resolve_model("llama-3-70b"), Request(task="infer", dtype="bf16"), machine)
    assert not report.fits
    assert report.recommended is not None
    assert report.recommended.key == "split+int8"  # 8-bit fits split over 4: no need for 4-bit
    assert report.recommended.request.dtype == "int8"


def test_option_rows_each_change_something() -> None:
    machine = machine_from_snapshot(_four_4090(), 4)
    for task in ("infer", "train"):
        report = plan(resolve_model("llama-3-70b"), Request(task=task, dtype="bf16"), machine)
        previous = report.asked.device_bytes
        for option in report.options:
            assert option.breakdown.device_bytes != previous or option.alone is not None, option
            previous = option.breakdown.device_bytes


def test_cheapest_training_prefers_sharding_to_quantisation() -> None:
    machine = machine_from_snapshot(_four_4090())
    report = plan(resolve_model("llama-2-7b"), Request(task="train", dtype="bf16"), machine)
    assert report.recommended is not None
    assert "qlora" not in report.recommended.key
    assert "lora" not in report.recommended.key
    # ZeRO-3 with 8-bit AdamW misses by the float32 gradients the mixed-precision step makes
    # (docs/fit.md, "The peak: temporaries"); keeping the states in CPU RAM moves the step there.
    assert report.recommended.request.task == "train"
    assert report.recommended.request.dtype == "bf16"
    assert any(key in report.recommended.key for key in ("zero", "cpu_offload"))


def test_shorter_context_is_not_offered_when_the_context_already_fits() -> None:
    machine = machine_from_snapshot(_four_4090(), 4)
    report = plan(resolve_model("llama-3-70b"), Request(task="infer", dtype="bf16"), machine)
    assert all(o.key != "shorter_context" for o in report.options)


# --- 8- and 4-bit without a GPU ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "request_", "instead"),
    [
        ("gpt2", Request(task="qlora", dtype="bf16"), {"task": "lora"}),
        ("bert-base", Request(task="infer", dtype="int4"), {"dtype": "bf16"}),
        ("bert-base", Request(task="infer", dtype="int8"), {"dtype": "bf16"}),
        (
            "gpt2",
            Request(task="train", dtype="bf16", optimizer="adamw-8bit"),
            {"optimizer": "adamw"},
        ),
    ],
)
def test_bitsandbytes_without_gpu_does_not_fit_and_says_what_runs(
    model: str, request_: Request, instead: dict[str, str]
) -> None:
    machine = machine_from_snapshot(replay_snapshot("cpu-only-epyc-vm"))
    report = plan(resolve_model(model), request_, machine)
    assert not report.fits
    assert report.blocked is not None
    assert "GPU" in report.blocked
    assert report.recommended is not None
    for field, value in instead.items():
        assert getattr(report.recommended.request, field) == value


def test_cpu_qlora_cli_exit_1(tmp_path: Path) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit("gpt2", "--task", "qlora", "--snapshot", path)
    assert result.exit_code == 1
    assert "Does not run as asked" in result.stdout
    assert "Cheapest way to make it run: LoRA instead of QLoRA" in result.stdout


# --- numbers, labels, flags, codes -------------------------------------------------------------


def test_numbers_for_people() -> None:
    assert count_words(7_000_000_000_000) == "7.0 trillion"
    assert count_words(7_000_000_000) == "7.0 billion"
    assert count_words(66_000) == "66,000"
    assert gib(13038.5 * GIB) == "12.7 TiB"
    assert gib(1500 * 1024 * GIB) == "1,500 TiB"
    assert gib(17.2 * GIB) == "17.2 GiB"
    assert gib(512 * 2**20) == "512 MiB"


def test_bare_count_header(tmp_path: Path) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit("7T", "--snapshot", path)
    assert result.stdout.startswith("7.0 trillion parameters: inference")
    assert "7000" not in result.stdout
    assert "TiB" in result.stdout


def test_host_load_label_counts_the_processes(tmp_path: Path) -> None:
    path = _save(tmp_path, "4x4090", _four_4090())
    result = _fit("llama-3-70b", "--task", "qlora", "--snapshot", path)
    spec = resolve_model("llama-3-70b")
    each = gib(estimate(spec, Request(task="qlora", dtype="bf16")).host_load_bytes)
    assert f"(4 processes, one per GPU, each reading {each} of bfloat16 files)" in result.stdout


def test_markdown_header_names_the_unit(tmp_path: Path) -> None:
    gpu = _fit("gpt2", "--markdown", "--snapshot", _save(tmp_path, "g", _four_4090()))
    assert "| item | per GPU |" in gpu.stdout
    cpu = _fit(
        "gpt2",
        "--markdown",
        "--snapshot",
        _save(tmp_path, "c", replay_snapshot("cpu-only-epyc-vm")),
    )
    assert "| item | RAM |" in cpu.stdout
    assert "bytes |" not in gpu.stdout + cpu.stdout


def test_shard_with_one_gpu_asked_says_what_was_asked(tmp_path: Path) -> None:
    path = _save(tmp_path, "4x4090", _four_4090())
    result = _fit(
        "llama-2-7b", "--task", "train", "--shard", "zero2", "--gpus", "1", "--snapshot", path
    )
    assert result.exit_code == 2
    assert "--gpus 1" in result.stderr
    assert "4 usable GPUs" in result.stderr
    assert "offers 1" not in result.stderr


def test_help_has_named_placeholders() -> None:
    result = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert "<int range>" not in result.stdout
    assert "<str>" not in result.stdout
    assert "--gpus N" in result.stdout


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("nosuchmodel", "unknown_model"),
        ("llama-4", "unknown_model"),
        ("0B", "bad_parameter_count"),
    ],
)
def test_model_error_codes(tmp_path: Path, model: str, code: str) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit(model, "--json", "--snapshot", path)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["errors"][0]["code"] == code


def test_bad_config_file_code(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama"}')
    result = _fit(
        str(config),
        "--json",
        "--snapshot",
        _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm")),
    )
    assert json.loads(result.stdout)["errors"][0]["code"] == "bad_model_config"


def test_fit_machine_default_is_cpu() -> None:
    assert FitMachine((), 8 * GIB, 8 * GIB).device == "cpu"


def _exhaustive_cheapest(spec: Any, request: Request, machine: FitMachine) -> str | None:
    """docs/fit.md's definition, literally: every combination of the ladder's steps in order
    of cost (their ranks sorted from high to low, compared as tuples), the first that fits."""
    from itertools import combinations

    from dlready.fit.estimate import effective_seq, largest_batch, shape_stand_in
    from dlready.fit.plan import (
        _BITSANDBYTES_STEPS,
        SHORTER_KEYS,
        _changing,
        _fits,
        _inference_steps,
        _longest_seq,
        _training_steps,
    )

    request = request.with_(device=machine.device)
    budget = machine.budget_bytes
    assert budget is not None

    def longest(r: Request) -> int:
        return _longest_seq(spec, r, budget)

    seq = effective_seq(spec, request)
    if request.task == "infer":
        steps = _inference_steps(request, machine, longest, seq)
    else:
        steps = _training_steps(request, machine, shape_stand_in(spec).is_transformer, longest, seq)
    if machine.device == "cpu":
        steps = [s for s in steps if s[0] not in _BITSANDBYTES_STEPS]
    subsets = [c for n in range(len(steps) + 1) for c in combinations(range(len(steps)), n)]
    subsets.sort(key=lambda c: sorted(c, reverse=True))
    # A shorter sequence comes with every cheaper strategy that changes something.
    shorter = [rank for rank, step in enumerate(steps) if step[0] in SHORTER_KEYS]
    subsets = [
        c
        for c in subsets
        if not (shorter and shorter[0] in c)
        or set(c) == _changing(request, steps, set(c) | set(range(shorter[0] + 1)))
    ]
    for shrink in (False, True):
        for subset in subsets:
            trial = request
            for rank in subset:
                changed = steps[rank][3](trial)
                if changed is None or changed == trial:
                    break
                trial = changed
            else:
                keys = [steps[rank][0] for rank in subset]
                if shrink:
                    batch = largest_batch(spec, trial, budget)
                    if batch < 1:
                        continue
                    trial = trial.with_(batch=batch)
                    keys.append("smaller_batch")
                if _fits(estimate(spec, trial), budget, machine):
                    return "+".join(keys)
    return None


ORACLE_CASES = [
    ("llama-3-70b", Request(task="infer"), 4),
    ("llama-3-70b", Request(task="infer", batch=16, seq=8192), 4),
    ("llama-2-7b", Request(task="train"), 4),
    ("llama-2-13b", Request(task="train", batch=4), 4),
    ("llama-2-70b", Request(task="train"), 4),
    ("llama-2-70b", Request(task="lora"), 4),
    ("llama-2-7b", Request(task="train", dtype="fp32", batch=8), 1),
    ("llama-2-13b", Request(task="lora", batch=8), 1),
    ("llama-3-70b", Request(task="infer"), 1),
    ("mistral-7b", Request(task="infer", batch=32), 1),
    ("bert-large", Request(task="train", batch=256), 1),
]


@pytest.mark.parametrize(("model", "request_", "gpus"), ORACLE_CASES)
def test_recommendation_is_the_least_costly_combination(
    model: str, request_: Request, gpus: int
) -> None:
    machine = machine_from_snapshot(_four_4090(), gpus)
    spec = resolve_model(model)
    report = plan(spec, request_, machine)
    if report.fits:
        return
    expected = _exhaustive_cheapest(spec, request_, machine)
    assert (report.recommended.key if report.recommended else None) == expected


def test_gpus_left_out_alike_are_named_once_as_a_range() -> None:
    four = replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("4x-rtx-4090").replay())
    machine = machine_from_snapshot(four, 1)
    assert machine.left_out == ("GPU 1-3 (NVIDIA GeForce RTX 4090): --gpus 1 asked for fewer",)


def test_a_peak_in_the_optimizer_step_says_what_lowers_it() -> None:
    """7B mixed-precision AdamW on one GPU: the step's float32 gradients and square roots
    come when the activations are freed, so recomputation alone changes nothing."""
    spec = resolve_model("llama-2-7b")
    asked = Request(task="train", dtype="bf16", batch=1, seq=1024)
    breakdown = estimate(spec, asked)
    (note,) = [n for n in breakdown.notes if "optimizer step" in n]
    assert "gradient checkpointing" in note
    assert "8-bit AdamW" in note
    recomputed = estimate(spec, asked.with_(recompute=True))
    assert recomputed.device_bytes == pytest.approx(breakdown.device_bytes)
    small = estimate(resolve_model("gpt2"), Request(task="train", dtype="fp32", batch=8, seq=1024))
    assert not [n for n in small.notes if "optimizer step" in n]  # its peak is in backward


# --- host RAM: offload and the checkpoint load ----------------------------------------------


def test_offload_short_of_host_ram_says_so_not_a_gpu_shortage(tmp_path: Path) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    args = ("llama-2-13b", "--task", "train", "--offload", "--gradient-checkpointing")
    result = _fit(*args, "--snapshot", path)
    assert result.exit_code == 1
    data = json.loads(_fit(*args, "--snapshot", path, "--json").stdout)["data"]
    offload = gib(data["estimate"]["host_offload_bytes"])
    room = gib(data["machine"]["ram_available_bytes"])
    assert data["host"]["offload_ok"] is False
    assert "the GPU part fits" in result.stdout
    assert f"the offloaded states need {offload} of host RAM and {room} is available" in (
        result.stdout
    )
    assert f"Host RAM for offloading: {offload}; {room} available: too little." in result.stdout


def test_a_recommended_offload_shows_its_host_ram(tmp_path: Path) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    data = json.loads(_fit("llama-2-13b", "--task", "train", "--snapshot", path, "--json").stdout)
    assert data["data"]["recommended"] == "adamw_8bit+cpu_offload"
    option = next(o for o in data["data"]["options"] if o["key"] == "cpu_offload")
    need = gib(option["estimate"]["host_offload_bytes"])
    room = gib(data["data"]["machine"]["ram_available_bytes"])
    text = _fit("llama-2-13b", "--task", "train", "--snapshot", path).stdout
    assert f"  - the offloaded states need {need} of host RAM and {room} is available" in text


def test_a_bare_count_assumes_16_bit_files_and_says_so(tmp_path: Path) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit("7B", "--snapshot", path)
    assert f"{gib(7e9 * 2)} (bfloat16 files assumed: only the count is known)" in result.stdout


def test_a_checkpoint_too_large_for_the_ram_is_said_on_the_cpu_too(tmp_path: Path) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit(str(Path(__file__).parent / "fixtures" / "hf_configs" / "llama-65b.json"),
                  "--snapshot", path, "--json")  # fmt: skip
    data = json.loads(result.stdout)["data"]
    assert data["host"]["ok"] is False
    text = _fit("12B", "--snapshot", path).stdout + _fit("gemma-2-9b", "--snapshot", path).stdout
    assert "too little to read it at once" in text
    assert "shard by shard" in text


# --- a shorter sequence or context, and how short -------------------------------------------


def _gtx_1060(tmp_path: Path) -> str:
    return _save(
        tmp_path,
        "1060",
        replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay()),
    )


def test_training_offers_a_shorter_sequence_with_its_length(tmp_path: Path) -> None:
    path = _gtx_1060(tmp_path)
    result = _fit("llama-2-7b", "--task", "qlora", "--snapshot", path, "--json")
    data = json.loads(result.stdout)["data"]
    option = next(o for o in data["options"] if o["key"] == "shorter_sequence")
    tokens = option["request"]["seq"]
    assert 0 < tokens < 4096
    assert option["fits"]
    # the cheaper strategies come with it, so the sequence stays as long as it can
    assert data["recommended"].startswith("gradient_checkpointing")
    assert data["recommended"].endswith("shorter_sequence")
    text = _fit("llama-2-7b", "--task", "qlora", "--snapshot", path).stdout
    assert f"a shorter sequence ({tokens:,} tokens)" in text
    assert f"at most {tokens:,} tokens" in text
    # the longest that fits: a little longer does not
    machine = machine_from_snapshot(
        replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay())
    )
    spec = resolve_model("llama-2-7b")
    recommended = plan(spec, Request(task="qlora", dtype="fp16"), machine).recommended
    assert recommended is not None
    longer = recommended.request.with_(seq=recommended.request.seq + 256, device="cuda")
    assert estimate(spec, longer).device_bytes > machine.budget_bytes  # type: ignore[operator]


def test_inference_names_the_longest_context(tmp_path: Path) -> None:
    path = _gtx_1060(tmp_path)
    args = ("llama-2-7b", "--dtype", "int4", "--seq", "8192", "--snapshot", path)
    data = json.loads(_fit(*args, "--json").stdout)["data"]
    option = next(o for o in data["options"] if o["key"] == "shorter_context")
    text = _fit(*args).stdout
    assert f"a shorter context ({option['request']['seq']:,} tokens)" in text


def test_no_strategy_fits_points_up_to_the_table(tmp_path: Path) -> None:
    path = _save(tmp_path, "cpu", replay_snapshot("cpu-only-epyc-vm"))
    result = _fit("llama-2-70b", "--task", "train", "--batch", "1", "--snapshot", path)
    table = result.stdout.index("What would make it fit")
    assert result.stdout.index("None of the strategies above makes it fit") > table
    assert "strategies below" not in result.stdout


# --- flags that make no sense for the task or model -----------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["gpt2", "--optimizer", "sgd"], "--optimizer"),
        (["gpt2", "--optimizer", "adamw"], "--optimizer"),  # given, though it is the default
        (["gpt2", "--gradient-checkpointing"], "--gradient-checkpointing"),
        (["gpt2", "--lora-rank", "16"], "--lora-rank"),
        (["gpt2", "--shard", "zero3"], "--shard"),
        (["gpt2", "--shard", "zero2", "--lora-rank", "8"], "--lora-rank, --shard"),
        (["gpt2", "--task", "train", "--lora-rank", "64"], "--lora-rank"),
        (["resnet-50", "--seq", "256"], "--seq"),
        (["vit-b-16", "--task", "train", "--seq", "197"], "--seq"),
    ],
)
def test_a_flag_that_makes_no_sense_for_the_task_exits_2(
    tmp_path: Path, args: list[str], names: str
) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    result = _fit(*args, "--snapshot", path)
    assert result.exit_code == 2, result.stdout
    assert f"error: {names}:" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["gpt2", "--shard", "none"],
        ["gpt2", "--offload"],
        ["gpt2", "--task", "lora", "--lora-rank", "8", "--optimizer", "sgd"],
        ["gpt2", "--task", "train", "--gradient-checkpointing", "--optimizer", "sgd"],
    ],
)
def test_flags_that_make_sense_are_accepted(tmp_path: Path, args: list[str]) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    assert _fit(*args, "--snapshot", path).exit_code == 0


# --- headers and words ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "dtype", "words"),
    [
        ("lora", "bf16", "LoRA fine-tuning, bf16 base weights, rank 16, AdamW"),
        ("lora", "fp32", "LoRA fine-tuning, fp32 base weights, rank 16"),
        ("lora", "int8", "LoRA fine-tuning, 8-bit base weights, bf16 compute, rank 16"),
        ("lora", "int4", "4-bit NF4 base weights (that is QLoRA), bf16 compute, rank 16"),
        ("qlora", "bf16", "QLoRA fine-tuning, 4-bit NF4 base weights, bf16 compute, rank 16"),
    ],
)
def test_lora_header_names_the_base_weights(
    tmp_path: Path, task: str, dtype: str, words: str
) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    result = _fit("llama-2-7b", "--task", task, "--dtype", dtype, "--snapshot", path)
    assert words in result.stdout.splitlines()[0]


def test_mixed_gpus_header_counts_each_model(tmp_path: Path) -> None:
    path = _save(tmp_path, "mixed", _rtx_4090_beside_2080_ti())
    first_lines = _fit("gpt2", "--gpus", "2", "--snapshot", path).stdout.splitlines()[1]
    assert first_lines.startswith(
        "on 1 x NVIDIA GeForce RTX 2080 Ti + 1 x NVIDIA GeForce RTX 4090 ("
    )


def test_a_lora_rank_above_the_hidden_size_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    result = _fit("gpt2", "--task", "lora", "--lora-rank", "100000", "--snapshot", path)
    assert result.exit_code == 2
    assert "above the model's hidden size (768)" in result.stderr
    assert _fit("gpt2", "--task", "lora", "--lora-rank", "768", "--snapshot", path).exit_code == 0


def test_bf16_on_a_gpu_without_it_is_warned(tmp_path: Path) -> None:
    path = _gtx_1060(tmp_path)
    asked = _fit("gpt2", "--dtype", "bf16", "--snapshot", path).stdout
    assert "cannot compute in bfloat16" in asked
    assert "--dtype fp16" in asked
    assert "bfloat16" not in _fit("gpt2", "--snapshot", path).stdout  # the default is fp16


def test_shard_on_the_cpu_says_the_cpu_was_asked(tmp_path: Path) -> None:
    path = _save(tmp_path, "4x4090", _four_4090())
    args = ("gpt2", "--task", "train", "--device", "cpu", "--shard", "zero3", "--snapshot", path)
    result = _fit(*args)
    assert result.exit_code == 2
    assert "--device cpu was asked" in result.stderr
    assert "0 usable GPUs" not in result.stderr


def test_a_driver_that_answered_is_not_told_to_be_installed(tmp_path: Path) -> None:
    failure = next(f for f in NVML_FAILURES if f.id == "device-count-fails")
    path = _save(tmp_path, "dcf", replay_snapshot("h100-80gb-hbm3", nvml=failure.backend()))
    result = _fit("gpt2", "--snapshot", path)
    assert result.exit_code == 2
    assert "install or load" not in result.stderr
    assert "answered, with an error" in result.stderr
    amd = _fit("gpt2", "--snapshot", _save(tmp_path, "amd", _amd_desktop_without_driver()))
    assert "is not loaded" in amd.stderr
    assert "answered" not in amd.stderr


# --- numbers, names and limits --------------------------------------------------------------


def test_large_batches_have_thousands_separators(tmp_path: Path) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    gpt2 = _fit("gpt2", "--batch", "1000000000", "--snapshot", path).stdout.splitlines()[0]
    assert "batch 1,000,000,000 x 1,024 tokens" in gpt2
    resnet = _fit("resnet-50", "--batch", "1000000000", "--snapshot", path).stdout
    assert "batch 1,000,000,000 at 224x224" in resnet.splitlines()[0]


def test_one_unit_rule_for_zero() -> None:
    assert gib(0) == "0 MiB"


def test_an_encoder_has_no_kv_cache_row_to_measure() -> None:
    from dlready.fit.measure import block_estimate

    request = Request(task="infer", dtype="bf16", batch=2, seq=128)
    assert "kv_cache" not in block_estimate(resolve_model("bert-base"), request)
    assert "kv_cache" in block_estimate(resolve_model("gpt2"), request)


def test_a_sequence_beyond_the_trained_context_is_warned_not_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    result = _fit("llama-2-7b", "--seq", "100000", "--snapshot", path)
    assert result.exit_code in (0, 1)
    assert "beyond the 4,096 tokens llama-2-7b was trained on" in result.stdout
    assert "RoPE scaling" in result.stdout
    assert "trained on" not in _fit("llama-2-7b", "--seq", "4096", "--snapshot", path).stdout


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("7", "did you mean: 7B, 7M"),
        ("7e9", "did you mean: 7B"),
        ("16", "did you mean: 16B, 16M"),  # not ViT-B/16
        ("gpt2-xl", "it is not built in"),  # not gpt2: another size
    ],
)
def test_did_you_mean(tmp_path: Path, text: str, hint: str) -> None:
    path = _save(tmp_path, "h200", replay_snapshot("h200-141gb"))
    result = _fit(text, "--snapshot", path)
    assert result.exit_code == 2
    assert f"hint: {hint}" in result.stderr
    assert "gpt2" not in result.stderr.split("hint:")[1]


def test_a_name_with_spaces_is_the_hyphenated_name() -> None:
    assert resolve_model("llama 3 8b") is resolve_model("llama-3-8b")
    assert resolve_model("Llama_2_7b") is resolve_model("llama-2-7b")


def test_a_shorter_sequence_row_names_the_length_it_takes_alone() -> None:
    """QLoRA of a 7B model on one RTX 4090: with gradient checkpointing above it the sequence
    need not shrink, so the row is there for its figure alone, and names that length."""
    machine = machine_from_snapshot(_four_4090(), 1)
    request = Request(task="qlora", dtype="bf16", seq=4096)
    report = plan(resolve_model("llama-2-7b"), request, machine)
    (row,) = [option for option in report.options if option.key == "shorter_sequence"]
    tokens = int(row.title.split("(")[1].split(" tokens")[0].replace(",", ""))
    assert 0 < tokens < 4096, row.title
    assert row.alone is not None
    assert row.alone.device_bytes < estimate(resolve_model("llama-2-7b"), request).device_bytes


def test_offload_on_unified_memory_frees_nothing() -> None:
    """On a Mac (or any run judged against RAM) "CPU RAM" is the memory the run already uses:
    --offload must not count its states as freed."""
    from test_scenarios import _apple_m2

    machine = machine_from_snapshot(_apple_m2())
    request = Request(task="train", dtype="fp32", batch=14, seq=128)
    spec = resolve_model("bert-base")
    plain = plan(spec, request, machine)
    offloaded = plan(spec, request.with_(offload=True), machine)
    assert offloaded.asked.device_bytes == plain.asked.device_bytes
    assert offloaded.fits == plain.fits
    assert any("--offload frees nothing here" in note for note in offloaded.notes)


def test_gpus_on_a_mac_explains_the_shared_pool() -> None:
    from test_scenarios import _apple_m2

    with pytest.raises(MachineError, match="Apple GPU shares its memory with the CPU"):
        machine_from_snapshot(_apple_m2(), 2)
