"""The compat table (package data), the arch-list rules, version helpers and command parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from install_command_parse import (
    CommandParseError,
    Requirement,
    parse_install_command,
)  # tools/, on sys.path by conftest

from dlready.install import load_compat_table
from dlready.install.archs import Coverage, arch_labels, coverage, parse_arch_list
from dlready.install.table import CompatTableError, table_from_jsonable
from dlready.install.versions import (
    compare_numeric,
    compute_capability_key,
    cuda_of_variant,
    python_minor,
    variant_kind,
    variant_of_cuda,
)

REPO = Path(__file__).parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "pytorch"


def test_table_is_cached_and_dated() -> None:
    table = load_compat_table()
    assert load_compat_table() is table
    assert table.checked_on == "2026-11-27"
    assert table.releases[0].torch == "2.14.1"
    assert table.releases[-1].torch == "1.7.1"
    assert len(table.releases) == 41


def test_table_is_package_data() -> None:
    text = resources.files("dlready").joinpath("data").joinpath("pytorch_compat.json").read_text()
    assert json.loads(text)["generated_by"] == "tools/build_compat_table.py"


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference data is not checked out")
def test_committed_table_and_golden_match_the_reference() -> None:
    """The table is generated, never hand-edited: regenerating changes nothing."""
    result = subprocess.run(
        [sys.executable, "tools/build_compat_table.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_fact_carries_its_source() -> None:
    table = load_compat_table()
    for release in table.releases:
        assert release.python.source.startswith("Python range: ")
        for form in release.pip:
            assert form.origin in table.origins, (release.torch, form)
            if form.kind == "cuda":
                assert form.variant in table.drivers, (release.torch, form.variant)
            if form.arch is not None:
                assert form.arch.source
        for conda in release.conda:
            assert conda.origin in table.origins
    for floor in table.drivers.values():
        assert floor.source
        assert floor.min_linux


@pytest.mark.parametrize(
    ("torch", "variant", "platform", "marked"),
    [
        pytest.param(
            "2.14.1", "cu130", "linux-x86_64", True, id="2.14.1-cu130-variant-unconfirmed"
        ),
        pytest.param("2.14.0", "cu130", "linux-x86_64", False, id="2.14.0-cu130-confirmed"),
        pytest.param("2.14.1", "cpu", "linux-aarch64", True, id="aarch64-cpu-index"),
        pytest.param("1.7.1", "cu102", "windows-x86_64", True, id="book-form"),
    ],
)
def test_unconfirmed_markings_are_kept(
    torch: str, variant: str, platform: str, marked: bool
) -> None:
    release = load_compat_table().release(torch)
    assert release is not None
    form = release.pip_form(variant, platform)
    assert form is not None
    assert any("UNCONFIRMED" in note for note in form.unconfirmed) is marked


@pytest.mark.parametrize(
    ("torch", "torchaudio", "conda", "macos_x86"),
    [
        ("2.14.1", None, False, False),
        ("2.12.0", None, False, False),
        ("2.11.0", "2.11.0", False, False),
        ("2.6.0", "2.6.0", False, False),
        ("2.5.1", "2.5.1", True, False),
        ("2.2.2", "2.2.2", True, True),
        ("1.7.1", "0.7.2", True, True),
    ],
)
def test_release_facts(torch: str, torchaudio: str | None, conda: bool, macos_x86: bool) -> None:
    release = load_compat_table().release(torch)
    assert release is not None
    assert release.pip_versions.get("torchaudio") == torchaudio
    assert release.conda_official is conda
    assert bool(release.pip_forms("macos-x86_64")) is macos_x86


def test_2_0_0_conda_and_pip_pair_different_torchvision() -> None:
    release = load_compat_table().release("2.0.0")
    assert release is not None
    assert release.pip_versions["torchvision"] == "0.15.1"
    assert release.conda_versions["torchvision"] == "0.15.0"


def test_windows_cu102_is_gone_in_1_11_and_1_12() -> None:
    for torch in ("1.11.0", "1.12.0", "1.12.1"):
        release = load_compat_table().release(torch)
        assert release is not None
        assert release.pip_form("cu102", "windows-x86_64") is None
        assert release.pip_form("cu102", "linux-x86_64") is not None


def test_a_wrong_schema_is_refused() -> None:
    with pytest.raises(CompatTableError):
        table_from_jsonable({"schema_version": 99})
    with pytest.raises(CompatTableError):
        table_from_jsonable({"schema_version": 1, "releases": [{}]})


# --- ARCH-COMPAT.md rules ---------------------------------------------------------------------

CU126 = "5.0;6.0;7.0;7.5;8.0;8.6;9.0"
CU130 = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
CU130_ARM = "8.0;9.0;10.0;11.0;12.0+PTX"


@pytest.mark.parametrize(
    ("arch_list", "cc", "expected"),
    [
        pytest.param(CU126, "6.1", Coverage.NATIVE, id="rule1-sm60-cubin-runs-on-gtx1060"),
        pytest.param(CU126, "8.9", Coverage.NATIVE, id="rule1-sm86-cubin-runs-on-ada"),
        pytest.param("8.6", "8.0", Coverage.NONE, id="rule1-sm86-not-on-a100"),
        pytest.param(CU130, "6.1", Coverage.NONE, id="rule2-no-cubin-across-majors"),
        pytest.param(CU130, "12.1", Coverage.NATIVE, id="rule1-gb10-runs-sm120"),
        pytest.param(
            "7.5;8.0;8.6;9.0;10.0;12.0",
            "11.0",
            Coverage.NONE,
            id="thor-not-in-x86-list-without-ptx",
        ),
        pytest.param(CU130_ARM, "11.0", Coverage.NATIVE, id="thor-in-aarch64-cu130"),
        pytest.param(
            "5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX",
            "12.0",
            Coverage.PTX,
            id="rule3-ptx-jit-for-newer-gpu",
        ),
        pytest.param("3.7+PTX;5.0", "3.5", Coverage.NONE, id="rule3-ptx-never-for-older-gpu"),
        pytest.param("9.0a", "9.0", Coverage.NATIVE, id="rule4-arch-specific-exact"),
        pytest.param("9.0a", "9.1", Coverage.NONE, id="rule4-arch-specific-not-forward"),
        pytest.param("10.0f", "10.3", Coverage.NATIVE, id="rule4-family-within-major"),
    ],
)
def test_arch_coverage_rules(arch_list: str, cc: str, expected: Coverage) -> None:
    assert coverage(arch_list, cc) is expected


def test_arch_labels_match_get_arch_list_of_the_recorded_h100() -> None:
    # torch 2.11.0+cu130 on the H100 printed this arch list (capture.json "arch_list").
    assert arch_labels(CU130)[:-1] == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert arch_labels(CU130)[-1] == "compute_120"


def test_bad_arch_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="not an arch list entry"):
        parse_arch_list("8.6;sm_90")


# --- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [("580.159.04", "580.65.06", 1), ("580", "580.0.0", 0), ("525.60.13", "527.41", -1)],
)
def test_driver_comparison(left: str, right: str, expected: int) -> None:
    assert compare_numeric(left, right) == expected


@pytest.mark.parametrize(
    ("variant", "cuda", "kind"),
    [
        ("cu92", "9.2", "cuda"),
        ("cu126", "12.6", "cuda"),
        ("cu130", "13.0", "cuda"),
        ("rocm6.2.4", None, "rocm"),
        ("cpu", None, "cpu"),
        ("default", None, "default"),
    ],
)
def test_variant_tags(variant: str, cuda: str | None, kind: str) -> None:
    assert cuda_of_variant(variant) == cuda
    assert variant_kind(variant) == kind
    if cuda:
        assert variant_of_cuda(cuda) == variant


@pytest.mark.parametrize("text", ["3.12.3", "3.12"])
def test_python_minor(text: str) -> None:
    assert python_minor(text) == "3.12"


@pytest.mark.parametrize(("text", "key"), [("8.6", (8, 6)), ("sm_120", (12, 0)), ("86", (8, 6))])
def test_compute_capability_forms(text: str, key: tuple[int, int]) -> None:
    assert compute_capability_key(text) == key


# --- command parsing ------------------------------------------------------------------------


def test_parse_pip_with_local_versions_and_find_links() -> None:
    parsed = parse_install_command(
        "pip install torch==1.7.1+cu110 torchvision==0.8.2+cu110 torchaudio===0.7.2 "
        "-f https://download.pytorch.org/whl/torch_stable.html"
    )
    assert parsed.requirements[0] == Requirement("torch", "==", "1.7.1", "cu110")
    assert parsed.requirement("torchaudio") == Requirement("torchaudio", "===", "0.7.2")
    assert parsed.find_links == ("https://download.pytorch.org/whl/torch_stable.html",)


def test_parse_conda_with_channel_qualified_spec() -> None:
    parsed = parse_install_command(
        "conda install pytorch::pytorch torchvision torchaudio pytorch-cuda=12.1 -c nvidia"
    )
    assert parsed.requirements[0].channel == "pytorch"
    assert parsed.conda_extras == ("pytorch-cuda=12.1",)
    assert parsed.channels == ("nvidia",)


def test_parse_uv_and_pip3_are_the_same_command() -> None:
    uv = parse_install_command("uv pip install torch --index-url https://x/cu126")
    pip3 = parse_install_command("pip3 install torch --index-url https://x/cu126")
    assert (uv.manager, pip3.manager) == ("uv", "pip")
    assert uv.requirements == pip3.requirements
    assert uv.index_url == pip3.index_url


@pytest.mark.parametrize(
    "text",
    [
        "pip3 install torch torchvision torchaudio --extra-index-url",
        "pip install 'git+https://github.com/pytorch/vision.git@v0.9.0'",
        "apt install python3-torch",
        "pip install --pre torch",
    ],
)
def test_unparseable_commands_are_refused(text: str) -> None:
    with pytest.raises(CommandParseError):
        parse_install_command(text)


def test_parse_accepts_the_force_reinstall_dlready_prints() -> None:
    parsed = parse_install_command("pip install torch==2.0.1 --force-reinstall")
    assert parsed.options == ("--force-reinstall",)
    assert parsed.names == ("torch",)


# --- one binary-compatibility rule for install-cmd and smoke ----------------------------------

SUFFIXED_CASES = [
    # (arch list, compute capability, expected) per NVIDIA's rules: "a" targets run only on
    # that exact compute capability, as cubin and as PTX; "f" targets within their major.
    ("9.0a", "9.0", Coverage.NATIVE),
    ("9.0a", "10.0", Coverage.NONE),
    ("9.0a+PTX", "10.0", Coverage.NONE),
    ("9.0a+PTX", "12.0", Coverage.NONE),
    ("9.0+PTX", "12.0", Coverage.PTX),
    ("10.0f", "10.3", Coverage.NATIVE),
    ("10.0f", "12.0", Coverage.NONE),
    ("10.0f+PTX", "12.0", Coverage.NONE),
    ("10.3f+PTX", "10.0", Coverage.NONE),
    ("8.0;9.0a+PTX", "9.0", Coverage.NATIVE),
    ("8.0+PTX;9.0a", "10.0", Coverage.PTX),
]


@pytest.mark.parametrize(("arch_list", "cc", "expected"), SUFFIXED_CASES)
def test_suffixed_targets_follow_nvidia_rules(arch_list: str, cc: str, expected: Coverage) -> None:
    assert coverage(arch_list, cc) is expected


_CAPABILITIES = ["3.7", "5.0", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "10.3"]
_CAPABILITIES += ["12.0", "12.1"]


@pytest.mark.parametrize(
    "arch_list",
    [case[0] for case in SUFFIXED_CASES] + ["5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX", "7.5;8.0;12.0+PTX"],
)
def test_smoke_and_install_agree_on_every_gpu(arch_list: str) -> None:
    """smoke judges get_arch_list() labels, install-cmd the arch list: one rule, one answer."""
    from dlready.smoke.archcompat import ArchSupport, cuda_arch_support

    words = {Coverage.NATIVE: ArchSupport.NATIVE, Coverage.PTX: ArchSupport.PTX}
    labels = arch_labels(arch_list)
    for cc in _CAPABILITIES:
        major, minor = compute_capability_key(cc)
        expected = words.get(coverage(arch_list, cc), ArchSupport.MISSING)
        assert cuda_arch_support(major, minor, labels) is expected, (arch_list, cc)
