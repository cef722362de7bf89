"""``dlready fit``'s verdict and words on several GPUs, unread memory and its strategy table
(docs/fit.md): what is asked is what is judged, and every figure shown can be traced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from typer.testing import CliRunner

from dlready.cli import app
from dlready.fit.catalog import resolve_model
from dlready.fit.estimate import Request, estimate
from dlready.fit.plan import FitMachine, machine_from_snapshot, plan
from dlready.model import MachineSnapshot, Reading, Source, to_jsonable
from dlready.render.fit_render import gib, item_label
from machines import replay_snapshot
from scenarios_gpu import nvidia_scenario

runner = CliRunner()


def _save(folder: Path, name: str, snapshot: MachineSnapshot) -> str:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(to_jsonable(snapshot)))
    return str(path)


@pytest.fixture(scope="module")
def four_4090(tmp_path_factory: pytest.TempPathFactory) -> str:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("4x-rtx-4090").replay())
    return _save(tmp_path_factory.mktemp("snapshots"), "four-4090", snapshot)


def _fit(*args: str) -> Any:
    return runner.invoke(app, ["fit", *args])


def _fit_json(*args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_fit(*args, "--json").stdout)["data"]
    return data


# --- item: --gpus N for inference is the model split over N GPUs -----------------------------


@pytest.mark.parametrize(
    ("model", "gpus", "exit_code"), [("llama-2-13b", 2, 0), ("llama-2-70b", 4, 1)]
)
def test_inference_with_gpus_n_is_judged_split_over_n(
    four_4090: str, model: str, gpus: int, exit_code: int
) -> None:
    # What the table offered as "split over N GPUs" is what --gpus N asks, and is judged.
    offered = _fit_json(model, "--snapshot", four_4090, "--gpus", str(gpus))
    asked = offered["request"]
    assert asked["gpus"] == gpus
    assert asked["sharding"] == "split"
    assert offered["fits"] is (exit_code == 0)
    assert all(o["key"] != "split" for o in offered["options"])  # asked already: no row
    if gpus == 4:  # without --gpus the table offers the split over all four: the same figure
        unasked = _fit_json(model, "--snapshot", four_4090)
        split = next(o for o in unasked["options"] if o["key"] == "split")
        assert offered["estimate"]["total_bytes"] == split["alone_total_bytes"]
    result = _fit(model, "--snapshot", four_4090, "--gpus", str(gpus))
    assert result.exit_code == exit_code
    assert f"split over {gpus} GPUs" in result.stdout.splitlines()[0]
    assert f"split over the {gpus} GPUs" in result.stdout
    single = _fit_json(model, "--snapshot", four_4090, "--gpus", "1")
    assert offered["estimate"]["total_bytes"] < single["estimate"]["total_bytes"]


def test_training_gpus_n_stays_data_parallel(four_4090: str) -> None:
    data = _fit_json("gpt2", "--task", "train", "--snapshot", four_4090, "--gpus", "2")
    assert data["request"]["sharding"] == "none"
    assert data["request"]["gpus"] == 1  # a full copy per GPU: the states are not spread


def test_several_gpus_unasked_do_not_say_as_asked(four_4090: str) -> None:
    result = _fit("llama-2-70b", "--snapshot", four_4090)
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("Several GPUs"))
    assert "as asked" not in line
    assert "nor split over the 4 GPUs alone" in line


def test_offloading_a_split_model_puts_all_of_its_weights_in_ram() -> None:

    spec = resolve_model("llama-2-13b")
    whole = estimate(spec, Request(task="infer", offload=True))
    split = estimate(spec, Request(task="infer", offload=True, sharding="split", gpus=4))
    assert split.host_offload_bytes == pytest.approx(whole.host_offload_bytes)
    assert split.weights_bytes < whole.weights_bytes


# --- item: memory that could not be read is unknown, never a pass ---------------------------


def _without_available_ram(snapshot: MachineSnapshot) -> MachineSnapshot:
    # psutil's virtual_memory() failing: the total (from /proc/meminfo) is still read.
    failed: Reading[int] = Reading.failed(Source.PSUTIL, "psutil: virtual_memory() failed")
    return replace(snapshot, memory=replace(snapshot.memory, available_bytes=failed))


def _without_free_gpu_memory(snapshot: MachineSnapshot) -> MachineSnapshot:
    failed: Reading[int] = Reading.failed(Source.NVML, "NVML: not supported")
    gpus = [replace(gpu, memory_free_bytes=failed) for gpu in snapshot.gpus]
    return replace(snapshot, gpus=gpus)


@pytest.fixture(scope="module")
def unread(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("unread")
    cpu = replay_snapshot("cpu-only-epyc-vm")
    h100 = replay_snapshot("h100-80gb-hbm3")
    return {
        "cpu": _save(folder, "cpu", cpu),
        "cpu_no_available": _save(folder, "cpu-no-available", _without_available_ram(cpu)),
        "h100": _save(folder, "h100", h100),
        "h100_no_free": _save(folder, "h100-no-free", _without_free_gpu_memory(h100)),
    }


@pytest.mark.parametrize(
    ("machine", "read", "unread_words"),
    [("cpu_no_available", "cpu", "the RAM available"), ("h100_no_free", "h100", "free memory")],
)
def test_a_fit_within_a_total_standing_in_for_unread_memory_is_unknown(
    unread: dict[str, str], machine: str, read: str, unread_words: str
) -> None:
    assert _fit("llama-2-7b", "--snapshot", unread[read]).exit_code == 0  # read: it fits
    result = _fit("llama-2-7b", "--snapshot", unread[machine])
    assert result.exit_code == 1
    assert "Fits" not in result.stdout
    assert "Unknown whether it fits" in result.stdout
    assert unread_words in result.stdout
    assert "could not be read" in result.stdout
    header = result.stdout.splitlines()[1]
    assert "available)" not in header
    assert "free per GPU" not in header
    assert "unknown" in header
    envelope = json.loads(_fit("llama-2-7b", "--snapshot", unread[machine], "--json").stdout)
    assert envelope["status"] == "unknown"
    assert envelope["data"]["fits"] is None
    assert envelope["data"]["machine"]["budget_read"] is False
    assert envelope["data"]["recommended"] is None


def test_a_request_beyond_the_total_does_not_fit_whatever_was_not_read(
    unread: dict[str, str],
) -> None:
    result = _fit("llama-2-70b", "--snapshot", unread["cpu_no_available"])
    assert result.exit_code == 1
    assert "Does not fit as asked" in result.stdout
    assert "in all." in result.stdout  # the total, not called available
    data = _fit_json("llama-2-70b", "--snapshot", unread["cpu_no_available"])
    assert data["fits"] is False


def test_training_strategies_against_a_total_say_so(unread: dict[str, str]) -> None:
    result = _fit("llama-2-7b", "--task", "train", "--snapshot", unread["h100_no_free"])
    assert result.exit_code == 1
    assert "What would make it fit within the total" in result.stdout
    assert "Cheapest way to make it fit within the total" in result.stdout


# --- item: every request in the JSON carries the length used; a CPU batch is not per GPU ----


def test_every_json_request_carries_the_sequence_used(unread: dict[str, str]) -> None:
    data = _fit_json("llama-2-7b", "--task", "train", "--snapshot", unread["h100"])
    assert data["request"]["seq"] == 4096
    assert data["options"]
    for option in data["options"]:
        shorter = option["key"] == "shorter_sequence"
        assert option["request"]["seq"] == 4096 or (shorter and option["request"]["seq"] < 4096)


def test_a_smaller_batch_on_the_cpu_is_not_per_gpu(unread: dict[str, str]) -> None:
    huge = "99999999999999999999"
    result = _fit("llama-2-7b", "--batch", huge, "--snapshot", unread["cpu"])
    assert result.exit_code == 1
    assert "per-GPU" not in result.stdout
    assert "  - a batch of " in result.stdout
    on_gpu = _fit("llama-2-7b", "--batch", huge, "--snapshot", unread["h100"])
    assert "  - a per-GPU batch of " in on_gpu.stdout


# --- item: the strategy table shows only what helps, and every figure can be traced ---------

# What each strategy changes in the request, to find which row brought a change.
_CHANGED_BY = {
    "gradient checkpointing": lambda asked, r: r.recompute and not asked.recompute,
    "8-bit AdamW": lambda asked, r: r.optimizer == "adamw-8bit" != asked.optimizer,
    "CPU offload": lambda asked, r: r.offload and not asked.offload,
}


def _h100() -> FitMachine:
    return machine_from_snapshot(replay_snapshot("h100-80gb-hbm3"))


def _four_4090_machine() -> FitMachine:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("4x-rtx-4090").replay())
    return machine_from_snapshot(snapshot)


_TABLE_CASES = [
    ("llama-2-7b", {"task": "train"}, _h100),
    ("llama-2-70b", {"task": "train"}, _h100),
    ("llama-2-13b", {"task": "train", "seq": 1024}, _h100),
    (
        "llama-2-7b",
        {"task": "train", "sharding": "zero2", "gpus": 4, "offload": True},
        _four_4090_machine,
    ),
    ("llama-2-70b", {"task": "train"}, _four_4090_machine),
    ("llama-2-70b", {"task": "infer"}, _four_4090_machine),
    ("gpt2", {"task": "train", "batch": 512, "dtype": "fp32"}, _four_4090_machine),
]


@pytest.mark.parametrize(("model", "asked", "machine"), _TABLE_CASES)
def test_every_row_lowers_a_figure_and_names_what_its_stack_holds(
    model: str, asked: dict[str, Any], machine: Any
) -> None:

    request = Request(**asked)
    report = plan(resolve_model(model), request, machine())
    assert not report.fits
    previous = report.asked.device_bytes
    previous_fits = False
    titles: list[str] = []
    for option in report.options:
        titles.append(option.title)
        if option.key == "smaller_batch":
            continue
        lowers_stack = option.breakdown.device_bytes < previous - 0.5
        lowers_alone = option.alone is not None and (
            option.alone.device_bytes < report.asked.device_bytes - 0.5
        )
        assert lowers_stack or lowers_alone, option.title  # no row that changes nothing
        # "yes" only for a row that earned it: lowering the stack, or making it fit
        assert option.adds == (lowers_stack or (option.fits and not previous_fits))
        for words, changed in _CHANGED_BY.items():
            if changed(report.request, option.request):  # in the stack: named on a row so far
                assert any(words in title for title in titles), (option.title, words)
        previous = option.breakdown.device_bytes
        previous_fits = option.fits


def test_a_peak_in_the_step_defers_checkpointing_to_the_row_that_moves_it() -> None:

    report = plan(resolve_model("llama-2-7b"), Request(task="train"), _h100())
    assert report.options[0].key != "gradient_checkpointing"  # it alone lowers nothing
    joined = next(o for o in report.options if o.request.recompute)
    assert joined.title == "CPU offload + gradient checkpointing"
    without = joined.request.with_(recompute=False)

    assert (
        joined.breakdown.device_bytes < estimate(resolve_model("llama-2-7b"), without).device_bytes
    )


def test_with_offloaded_states_8_bit_adamw_and_lora_get_no_row(four_4090: str) -> None:
    args = ("llama-2-7b", "--task", "train", "--shard", "zero2", "--offload")
    data = _fit_json(*args, "--snapshot", four_4090)
    keys = [option["key"] for option in data["options"]]
    assert "adamw_8bit" not in keys
    assert "lora" not in keys
    text = _fit(*args, "--snapshot", four_4090).stdout
    assert "8-bit AdamW" not in text
    assert "LoRA " not in text.replace("QLoRA", "")


def test_the_recommendation_shows_its_figure_item_by_item(unread: dict[str, str]) -> None:

    report = plan(resolve_model("llama-2-70b"), Request(task="train"), _h100())
    assert report.recommended is not None
    assert report.recommended.key == "gradient_checkpointing+qlora"
    total = report.recommended.breakdown.device_bytes
    # No stacked row holds this combination alone: its figure is traced by its items.
    assert all(gib(o.breakdown.device_bytes) != gib(total) for o in report.options)
    items = ", ".join(
        f"{item_label(report, name)} {gib(value)}"
        for name, value in report.recommended.breakdown.items().items()
        if value
    )
    text = _fit("llama-2-70b", "--task", "train", "--snapshot", unread["h100"]).stdout
    assert f"gradient checkpointing + QLoRA: {gib(total)} per GPU" in text
    assert f"  - per GPU: {items}; total {gib(total)}" in text.splitlines()


def test_offloaded_states_against_an_unread_available_ram_are_unknown(
    tmp_path: Path,
) -> None:
    path = _save(tmp_path, "h100-no-ram", _without_available_ram(replay_snapshot("h100-80gb-hbm3")))
    args = ("llama-2-7b", "--task", "train", "--offload", "--snapshot", path)
    result = _fit(*args)
    assert result.exit_code == 1
    assert "Unknown whether it fits: the GPU part fits" in result.stdout
    assert "what is available could not be read" in result.stdout
    assert "Check the RAM available" in result.stdout
    envelope = json.loads(_fit(*args, "--json").stdout)
    assert envelope["status"] == "unknown"
    assert envelope["data"]["machine"]["budget_read"] is True
    assert envelope["data"]["host"]["offload_ok"] is None
