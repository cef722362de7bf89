"""The build tools part of ``check``: parsers, probe and judgement, from real tools' outputs.

The outputs below were printed by real installations: nvcc 13.0.88 and gcc 12.2 on the dlready
development VM (`nvcc --version`, `gcc --version`, 2026-11-29); gcc 13.3 on the recorded H100
server (tests/fixtures/h100-80gb-hbm3, collect_env's "GCC version"); nvcc 12.6.68 (a Jetson's
`/usr/local/cuda/bin/nvcc --version`), nvcc 11.8.89 (Linux), nvcc 12.6.77 and cl.exe 19.44 on
Windows, as users pasted them in public build notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from msgspec.structs import replace

from dlready.exitcodes import ExitCode
from dlready.model import (
    MachineSnapshot,
    OperatingSystem,
    Reading,
    Source,
    snapshot_from_jsonable,
    to_jsonable,
)
from dlready.probes.build_tools import (
    parse_cl_version,
    parse_clang_version,
    parse_gcc_version,
    parse_host_config,
    parse_ninja_version,
    parse_nvcc_version,
    probe_build_tools,
)
from dlready.probes.tools_gateway import ReplayTools, ToolRun, run_tool
from dlready.spec.bar import FailOn
from dlready.spec.build import (
    fold_build,
    judge_build,
    judge_build_part,
    ninja_default_jobs,
    table_limits,
)
from dlready.spec.profile import BuildRule, load_builtin_profile
from dlready.spec.verdict import Status, judge
from machines import replay_snapshot

NVCC_13_0 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Wed_Aug_20_01:58:59_PM_PDT_2025
Cuda compilation tools, release 13.0, V13.0.88
Build cuda_13.0.r13.0/compiler.36424714_0
"""
NVCC_12_6_JETSON = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Wed_Aug_14_10:14:07_PDT_2024
Cuda compilation tools, release 12.6, V12.6.68
Build cuda_12.6.r12.6/compiler.34714021_0
"""
NVCC_11_8 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2022 NVIDIA Corporation
Built on Wed_Sep_21_10:33:58_PDT_2022
Cuda compilation tools, release 11.8, V11.8.89
Build cuda_11.8.r11.8/compiler.31833905_0
"""
NVCC_12_6_WINDOWS = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Sep_12_02:55:00_Pacific_Daylight_Time_2024
Cuda compilation tools, release 12.6, V12.6.77
Build cuda_12.6.r12.6/compiler.34841621_0
"""
GCC_12_DEBIAN = (
    "gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n"
)
GXX_12_DEBIAN = (
    "g++ (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n"
)
GCC_13_UBUNTU = "gcc (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0\n"
GXX_13_UBUNTU = "g++ (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0\n"
CL_19_44 = (
    "Microsoft (R) C/C++ Optimizing Compiler Version 19.44.35207 for x64\n"
    "Copyright (C) Microsoft Corporation.  All rights reserved.\n\n"
    "usage: cl [ option... ] filename... [ /link linkoption... ]\n"
)
# The version checks of CUDA 13.0.88's include/crt/host_config.h on the development VM (only the
# condition lines dlready reads).
HOST_CONFIG_13_0 = (
    "#if __GNUC__ > 15\n"
    "#if (__clang_major__ >= 21) || (__clang_major__ < 3) || ((__clang_major__ == 3) &&  "
    "(__clang_minor__ < 3))\n"
    "#if _MSC_VER < 1920 || _MSC_VER >= 1950\n"
)
HOST_CONFIG_12_6 = (
    "#if __GNUC__ > 13\n"
    "#if (__clang_major__ >= 19) || (__clang_major__ < 3) || ((__clang_major__ == 3) &&  "
    "(__clang_minor__ < 3))\n"
    "#if _MSC_VER < 1910 || _MSC_VER >= 1950\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NVCC_13_0, "13.0.88"),
        (NVCC_12_6_JETSON, "12.6.68"),
        (NVCC_11_8, "11.8.89"),
        (NVCC_12_6_WINDOWS, "12.6.77"),
        ("nvcc: command not found", None),
    ],
)
def test_nvcc_version(text: str, expected: str | None) -> None:
    assert parse_nvcc_version(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GCC_12_DEBIAN, "12.2.0"),
        (GCC_13_UBUNTU, "13.3.0"),
        ("12.2.0\n", "12.2.0"),  # gcc -dumpfullversion
        ("", None),
    ],
)
def test_gcc_version(text: str, expected: str | None) -> None:
    assert parse_gcc_version(text) == expected


def test_other_tool_versions() -> None:
    assert parse_cl_version(CL_19_44) == "19.44.35207"
    assert parse_clang_version("Ubuntu clang version 18.1.3 (1ubuntu1)\nTarget: x86_64") == "18.1.3"
    assert parse_ninja_version("1.11.1\n") == "1.11.1"


def test_host_config_limits() -> None:
    limits = parse_host_config(HOST_CONFIG_13_0, "host_config.h")
    assert limits is not None
    assert (limits.gcc_max_major, limits.clang_max_major) == (15, 20)
    assert (limits.msvc_min, limits.msvc_max) == (1920, 1949)
    assert parse_host_config("/* nothing */", "x") is None


def test_table_matches_the_headers_it_cites() -> None:
    """The table's 12.6 and 13.0 rows say what those toolkits' own headers say."""
    for cuda, header in (("12.6.68", HOST_CONFIG_12_6), ("13.0.88", HOST_CONFIG_13_0)):
        table = table_limits(cuda)
        parsed = parse_host_config(header, "h")
        assert table is not None
        assert parsed is not None
        assert (table.gcc_max_major, table.clang_max_major, table.msvc_min, table.msvc_max) == (
            parsed.gcc_max_major,
            parsed.clang_max_major,
            parsed.msvc_min,
            parsed.msvc_max,
        )
    assert table_limits("10.2") is None


@pytest.mark.parametrize(("cpus", "jobs"), [(1, 2), (2, 3), (16, 18)])
def test_ninja_default_jobs(cpus: int, jobs: int) -> None:
    assert ninja_default_jobs(cpus) == jobs


# --- a toolchain on a recorded machine -----------------------------------------------------


def linux_tools(
    *,
    nvcc: str | None = NVCC_13_0,
    gcc: tuple[str, str] | None = (GCC_13_UBUNTU, GXX_13_UBUNTU),
    cuda_home: str = "/usr/local/cuda-13.0",
    host_config: str | None = HOST_CONFIG_13_0,
    environ: dict[str, str] | None = None,
    extra_toolkit: tuple[str, str] | None = None,
    ninja: bool = True,
    ninja_run: ToolRun | None = None,
    python_h: bool = True,
    packages: dict[str, str] | None = None,
) -> ReplayTools:
    """A Linux toolchain as a package manager lays it out: nvcc linked into /usr/bin."""
    paths: dict[str, str] = {}
    outputs: dict[tuple[str, ...], ToolRun] = {}
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    if nvcc is not None:
        paths["nvcc"] = f"{cuda_home}/bin/nvcc"
        outputs[(f"{cuda_home}/bin/nvcc", "--version")] = ToolRun(
            (f"{cuda_home}/bin/nvcc", "--version"), 0, nvcc
        )
        files[f"{cuda_home}/bin/nvcc"] = ""
        files[f"{cuda_home}/include/cuda_runtime.h"] = ""
        if host_config is not None:
            files[f"{cuda_home}/include/crt/host_config.h"] = host_config
    if extra_toolkit is not None:
        home, banner = extra_toolkit
        files[f"{home}/bin/nvcc"] = ""
        files[f"{home}/include/cuda_runtime.h"] = ""
        outputs[(f"{home}/bin/nvcc", "--version")] = ToolRun(
            (f"{home}/bin/nvcc", "--version"), 0, banner
        )
    if gcc is not None:
        for name, text in zip(("gcc", "g++"), gcc, strict=True):
            paths[name] = f"/usr/bin/{name}"
            outputs[(f"/usr/bin/{name}", "--version")] = ToolRun(
                (f"/usr/bin/{name}", "--version"), 0, text
            )
    if ninja:
        paths["ninja"] = "/usr/bin/ninja"
        outputs[("/usr/bin/ninja", "--version")] = ninja_run or ToolRun(
            ("/usr/bin/ninja", "--version"), 0, "1.11.1\n"
        )
    if python_h:
        files["/usr/include/python3.12/Python.h"] = ""
    return ReplayTools(
        paths=paths,
        outputs=outputs,
        files=files,
        environ=environ or {},
        links=links,
        python_include="/usr/include/python3.12",
        packages=packages,
    )


def h100(tools: ReplayTools, **kwargs: object) -> MachineSnapshot:
    return replay_snapshot("h100-80gb-hbm3", tools=tools, **kwargs)  # type: ignore[arg-type]


def criteria(snapshot: MachineSnapshot, rule: BuildRule | None = None) -> dict[str, Status]:
    verdict = judge_build(snapshot, rule or BuildRule())
    return {c.name: c.status for c in verdict.criteria}


def advice(snapshot: MachineSnapshot, name: str) -> str:
    verdict = judge_build(snapshot, BuildRule())
    return next(c.advice for c in verdict.criteria if c.name == name)


def test_recorded_h100_with_a_matching_toolchain_is_ready() -> None:
    snapshot = h100(linux_tools())
    assert snapshot.build is not None
    assert snapshot.build.nvcc.version.value == "13.0.88"
    found = criteria(snapshot, BuildRule(ram_per_job_gib=1.0))
    assert found == {
        "torch_cuda": Status.MEETS_RECOMMENDED,
        "nvcc": Status.MEETS_RECOMMENDED,
        "cuda_home": Status.MEETS_RECOMMENDED,
        "host_compiler": Status.MEETS_RECOMMENDED,
        "ninja": Status.MEETS_RECOMMENDED,
        "python_headers": Status.MEETS_RECOMMENDED,
        "compile_jobs_ram": Status.MEETS_RECOMMENDED,
    }


def test_nvcc_of_another_cuda_major_than_torch() -> None:
    snapshot = h100(linux_tools(nvcc=NVCC_11_8, cuda_home="/usr/local/cuda-11.8", host_config=None))
    found = criteria(snapshot)
    assert found["nvcc"] is Status.BELOW_MINIMUM
    assert "mismatches the version that was used to compile PyTorch" in advice(snapshot, "nvcc")
    # CUDA 11.8 accepts gcc 11 at most (the table: no header was readable): Ubuntu's 13.3 is too new.
    assert found["host_compiler"] is Status.BELOW_MINIMUM
    text = advice(snapshot, "host_compiler")
    assert "gcc 11 at most" in text
    assert "export NVCC_PREPEND_FLAGS='-ccbin /usr/bin/g++-11'" in text


def test_host_compiler_newer_than_the_toolkit_header_allows() -> None:
    """gcc 13.3 with CUDA 12.6 is fine; the limit comes from the toolkit's own header."""
    snapshot = h100(
        linux_tools(
            nvcc=NVCC_12_6_JETSON, cuda_home="/usr/local/cuda-12.6", host_config=HOST_CONFIG_12_6
        )
    )
    assert criteria(snapshot)["host_compiler"] is Status.MEETS_RECOMMENDED
    assert snapshot.build is not None
    assert snapshot.build.host_compiler_limits.value is not None
    assert snapshot.build.host_compiler_limits.value.gcc_max_major == 13


def test_no_tools_at_all() -> None:
    snapshot = h100(linux_tools(nvcc=None, gcc=None, ninja=False, python_h=False))
    found = criteria(snapshot)
    assert found["nvcc"] is Status.BELOW_MINIMUM
    assert found["cuda_home"] is Status.BELOW_MINIMUM
    assert found["host_compiler"] is Status.BELOW_MINIMUM
    assert found["ninja"] is Status.MEETS_MINIMUM
    assert found["python_headers"] is Status.BELOW_MINIMUM
    assert "python3.12-dev" in advice(snapshot, "python_headers") or "-dev" in advice(
        snapshot, "python_headers"
    )


def test_cuda_home_disagrees_with_the_nvcc_on_path() -> None:
    tools = linux_tools(
        environ={"CUDA_HOME": "/usr/local/cuda-12.6"},
        extra_toolkit=("/usr/local/cuda-12.6", NVCC_12_6_JETSON),
    )
    snapshot = h100(tools)
    assert snapshot.build is not None
    assert snapshot.build.cuda_home.value == "/usr/local/cuda-12.6"
    assert snapshot.build.cuda_home_nvcc.version.value == "12.6.68"
    assert criteria(snapshot)["cuda_home"] is Status.BELOW_MINIMUM
    assert "holds CUDA 12.6.68 but the nvcc on PATH is 13.0.88" in advice(snapshot, "cuda_home")


def test_nvcc_wrapper_outside_its_toolkit_as_on_the_development_vm() -> None:
    """/usr/local/bin/nvcc is a script running /usr/local/cuda-13.0/bin/nvcc: torch would take
    /usr/local as CUDA_HOME, which has no CUDA headers."""
    tools = linux_tools()
    wrapper = '#!/bin/sh\nexec /usr/local/cuda-13.0/bin/nvcc "$@"\n'
    replay = ReplayTools(
        paths={
            **{"nvcc": "/usr/local/bin/nvcc"},
            **{k: tools.which(k) or "" for k in ("gcc", "g++", "ninja")},
        },
        outputs={
            ("/usr/local/bin/nvcc", "--version"): ToolRun(
                ("/usr/local/bin/nvcc", "--version"), 0, NVCC_13_0
            ),
            **{
                (f"/usr/bin/{n}", "--version"): tools.run_all([[f"/usr/bin/{n}", "--version"]])[0]
                for n in ("gcc", "g++", "ninja")
            },
        },
        files={
            "/usr/local/bin/nvcc": wrapper,
            "/usr/local/cuda-13.0/bin/nvcc": "",
            "/usr/local/cuda-13.0/include/cuda_runtime.h": "",
            "/usr/local/cuda-13.0/include/crt/host_config.h": HOST_CONFIG_13_0,
            "/usr/include/python3.12/Python.h": "",
        },
        python_include="/usr/include/python3.12",
    )
    snapshot = h100(replay)
    assert snapshot.build is not None
    assert snapshot.build.cuda_home.value == "/usr/local"
    assert snapshot.build.toolkit_elsewhere.value == "/usr/local/cuda-13.0"
    assert criteria(snapshot)["cuda_home"] is Status.BELOW_MINIMUM
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in advice(snapshot, "cuda_home")
    assert criteria(snapshot)["host_compiler"] is Status.MEETS_RECOMMENDED  # header found there


def test_cpu_only_torch() -> None:
    from dlready.probes.torch_meta import torch_install_from_version_py

    cpu_torch = torch_install_from_version_py(
        "__version__ = '2.13.0+cpu'\ncuda = None\nhip = None\n", "/venv/torch"
    )
    snapshot = h100(linux_tools(), torch=cpu_torch)
    assert criteria(snapshot)["torch_cuda"] is Status.BELOW_MINIMUM
    assert "CPU-only build" in advice(snapshot, "torch_cuda")
    # The CPU VM without nvcc: nothing CUDA to judge, only the C++ side.
    vm = replay_snapshot("cpu-only-epyc-vm", torch=cpu_torch, tools=linux_tools(nvcc=None))
    verdict = judge_build(vm, BuildRule())
    assert "torch_cuda" not in {c.name for c in verdict.criteria}
    assert any("CUDA checks are skipped" in note for note in verdict.notes)


def test_windows_cl_against_the_toolkit() -> None:
    home = "C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v12.6"
    nvcc = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin\\nvcc.exe"
    cl = "C:\\Program Files\\Microsoft Visual Studio\\2022\\BuildTools\\VC\\Tools\\MSVC\\14.44.35207\\bin\\Hostx64\\x64\\cl.exe"
    tools = ReplayTools(
        paths={"nvcc": nvcc, "cl": cl},
        outputs={
            (nvcc, "--version"): ToolRun((nvcc, "--version"), 0, NVCC_12_6_WINDOWS),
            (cl,): ToolRun((cl,), 0, "", CL_19_44),
        },
        files={
            f"{home}/include/cuda_runtime.h": "",
            f"{home}/include/crt/host_config.h": HOST_CONFIG_12_6,
            f"{home}/bin/nvcc.exe": "",
        },
        environ={"CUDA_PATH": home},
    )
    build = probe_build_tools(tools, OperatingSystem.WINDOWS)
    assert build.cuda_home_origin.value == "CUDA_PATH"
    cl_tool = build.compiler("cl")
    assert cl_tool is not None
    assert cl_tool.version.value == "19.44.35207"
    base = h100(linux_tools())
    windows = replace(
        base, platform=replace(base.platform, os=OperatingSystem.WINDOWS), build=build
    )
    verdict = judge_build(windows, BuildRule())
    compiler = next(c for c in verdict.criteria if c.name == "host_compiler")
    assert compiler.status is Status.MEETS_RECOMMENDED  # 1944 within 1910..1949
    assert "v12.6" in compiler.source  # read from the toolkit's own header
    # CUDA 11.8's range (the table) ends at 1939: VS 2022 17.14 is too new for it.
    old = replace(build, host_compiler_limits=Reading.read(table_limits("11.8"), Source.FILE))
    verdict = judge_build(replace(windows, build=old), BuildRule())
    compiler = next(c for c in verdict.criteria if c.name == "host_compiler")
    assert compiler.status is Status.BELOW_MINIMUM
    assert "unsupported Microsoft Visual Studio version" in compiler.advice


def test_ram_per_compile_job() -> None:
    snapshot = h100(linux_tools(environ={"MAX_JOBS": "64"}))
    verdict = judge_build(snapshot, BuildRule(ram_per_job_gib=4.0))
    jobs = next(c for c in verdict.criteria if c.name == "compile_jobs_ram")
    assert jobs.status is Status.BELOW_MINIMUM
    assert "export MAX_JOBS=" in jobs.advice
    bad = h100(linux_tools(environ={"MAX_JOBS": "many"}))
    assert criteria(bad)["compile_jobs_ram"] is Status.BELOW_MINIMUM


def test_a_hung_tool_is_a_failed_reading_not_a_hang(tmp_path: Path) -> None:
    script = tmp_path / "nvcc"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    run = run_tool([str(script), "--version"], timeout_s=0.3)
    assert run.error is not None
    assert "no answer within" in run.error
    missing = run_tool([str(tmp_path / "absent")])
    assert missing.error is not None


# --- the verdict, and snapshots -------------------------------------------------------------


def test_the_part_counts_only_when_asked() -> None:
    snapshot = h100(linux_tools(nvcc=None))
    profile = load_builtin_profile("current")
    report = judge(snapshot, profile)
    shown = judge_build_part(snapshot, profile.build, FailOn.MINIMUM)
    assert not shown.counts
    assert fold_build(report, shown) == report
    counted = judge_build_part(snapshot, profile.build, FailOn.BUILD)
    folded = fold_build(report, counted)
    assert folded.components[-1].component == "build"
    assert folded.fails(FailOn.BUILD)
    assert folded.status is Status.BELOW_MINIMUM
    required = replace(profile, build=replace(profile.build, required=True))
    assert judge_build_part(snapshot, required.build, FailOn.MINIMUM).counts


def test_snapshot_round_trip_and_old_snapshots() -> None:
    snapshot = h100(linux_tools())
    document = json.loads(json.dumps(to_jsonable(snapshot)))
    assert snapshot_from_jsonable(document) == snapshot
    del document["build"]
    old = snapshot_from_jsonable(document)
    assert old.build is None
    verdict = judge_build(old, BuildRule())
    assert verdict.status is Status.UNKNOWN
    assert "saved before" in verdict.advice


# --- end to end: stand-in tools on PATH -----------------------------------------------------


def _stand_in(folder: Path, name: str, output: str) -> None:
    script = folder / name
    # printf is a shell builtin: PATH holds only the stand-ins.
    assert "'" not in output
    script.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    script.chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="stand-in tools are POSIX shell scripts")
def test_check_json_with_stand_in_tools_on_path(tmp_path: Path) -> None:
    toolkit = tmp_path / "cuda-12.6"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "include" / "crt").mkdir(parents=True)
    (toolkit / "include" / "cuda_runtime.h").write_text("")
    (toolkit / "include" / "crt" / "host_config.h").write_text(HOST_CONFIG_12_6)
    _stand_in(toolkit / "bin", "nvcc", NVCC_12_6_JETSON)
    compilers = tmp_path / "bin"
    compilers.mkdir()
    _stand_in(compilers, "gcc", GCC_12_DEBIAN)
    _stand_in(compilers, "g++", GXX_12_DEBIAN)
    env = {
        **os.environ,
        "PATH": f"{toolkit / 'bin'}{os.pathsep}{compilers}",
        "MAX_JOBS": "1",
        "NO_COLOR": "1",
    }
    env.pop("CUDA_HOME", None)
    env.pop("CUDA_PATH", None)
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "check", "--json", "--fail-on", "build"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    document = json.loads(completed.stdout)
    build = document["data"]["snapshot"]["build"]
    assert build["nvcc"]["version"]["value"] == "12.6.68"
    assert build["cuda_home"]["value"] == str(toolkit)
    assert build["cuda_home_origin"]["value"] == "nvcc on PATH"
    assert build["host_compiler_limits"]["value"]["gcc_max_major"] == 13
    assert build["ninja"]["path"]["value"] is None
    verdict = document["data"]["build"]["verdict"]
    statuses = {c["name"]: c["status"] for c in verdict["criteria"]}
    assert statuses["host_compiler"] == "meets_recommended"
    assert statuses["cuda_home"] == "meets_recommended"
    assert statuses["ninja"] == "meets_minimum"
    assert document["data"]["build"]["counts"] is True
    assert any(c["component"] == "build" for c in document["data"]["components"])
    assert completed.returncode == 1  # --fail-on build: the test venv's torch is CPU-only


def test_cudnn_wheel_version_from_its_dist_info_folder() -> None:
    """The recorded H100 had nvidia-cudnn-cu13 9.19.0.56 from pip (collect_env's pip list)."""
    from dlready.probes.tools_gateway import dist_info_version

    listing = {
        "/site": ["nvidia_cudnn_cu13-9.19.0.56.dist-info", "torch-2.11.0+cu130.dist-info", "nvidia"]
    }
    assert dist_info_version("nvidia-cudnn-cu13", ["/x", "/site"], listing.get) == "9.19.0.56"
    assert dist_info_version("nvidia-cudnn-cu12", ["/site"], listing.get) is None
    snapshot = h100(linux_tools(packages={"nvidia-cudnn-cu13": "9.19.0.56"}))
    assert snapshot.build is not None
    assert snapshot.build.cudnn_version.value == "9.19.0.56 (pip nvidia-cudnn-cu13)"


def test_gcc_without_gxx_and_a_broken_nvcc() -> None:
    tools = linux_tools()
    broken = ReplayTools(
        paths={"nvcc": "/usr/local/cuda-13.0/bin/nvcc", "gcc": "/usr/bin/gcc"},
        outputs={
            ("/usr/local/cuda-13.0/bin/nvcc", "--version"): ToolRun(
                ("/usr/local/cuda-13.0/bin/nvcc", "--version"),
                127,
                "",
                "nvcc: error while loading shared libraries: libnvrtc.so.13: cannot open shared object file",
            ),
            ("/usr/bin/gcc", "--version"): tools.run_all([["/usr/bin/gcc", "--version"]])[0],
        },
        files={
            "/usr/local/cuda-13.0/bin/nvcc": "",
            "/usr/local/cuda-13.0/include/cuda_runtime.h": "",
        },
    )
    snapshot = h100(broken)
    found = criteria(snapshot)
    assert found["nvcc"] is Status.UNKNOWN
    assert "exit 127" in advice(snapshot, "nvcc")
    assert found["host_compiler"] is Status.BELOW_MINIMUM
    assert "not its C++ compiler g++" in advice(snapshot, "host_compiler")


# --- the [build] profile key and saved snapshots through the CLI ------------------------------


def test_build_key_in_a_spec_file() -> None:
    from dlready.spec.profile import SpecError, parse_profile

    base = 'schema = 1\nname = "x"\ntitle = "x"\n'
    profile = parse_profile(base + "[build]\nrequired = true\nram_per_job_gib = 8\n", "x.toml")
    assert profile.build.required
    assert profile.build.ram_per_job_gib == 8.0
    assert not parse_profile(base, "x.toml").build.required
    with pytest.raises(SpecError, match=r"build\.jobs: unknown key"):
        parse_profile(base + "[build]\njobs = 4\n", "x.toml")
    with pytest.raises(SpecError, match=r"build\.required: expected a boolean"):
        parse_profile(base + '[build]\nrequired = "yes"\n', "x.toml")


def test_saved_snapshots_are_re_judged_with_the_build_part(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dlready.cli import app

    runner = CliRunner()
    snapshot = to_jsonable(h100(linux_tools(nvcc=None)))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(snapshot))
    shown = json.loads(runner.invoke(app, ["check", "--snapshot", str(new), "--json"]).stdout)
    assert shown["data"]["build"]["counts"] is False
    statuses = {c["name"]: c["status"] for c in shown["data"]["build"]["verdict"]["criteria"]}
    assert statuses["nvcc"] == "below_minimum"
    counted = runner.invoke(app, ["check", "--snapshot", str(new), "--json", "--fail-on", "build"])
    assert counted.exit_code == ExitCode.NOT_READY
    assert json.loads(counted.stdout)["data"]["status"] == "below_minimum"
    del snapshot["build"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(snapshot))
    result = runner.invoke(app, ["check", "--snapshot", str(old), "--json"])
    document = json.loads(result.stdout)
    assert document["data"]["build"]["verdict"]["status"] == "unknown"
    assert document["data"]["snapshot"]["build"] is None


def test_a_missing_ninja_meets_the_minimum_and_says_what_is_recommended() -> None:
    """Not found and "meets min" side by side read as a contradiction unless the row says
    that ninja is what is recommended."""
    missing = judge_build(h100(linux_tools(ninja=False)), BuildRule())
    ninja = next(c for c in missing.criteria if c.name == "ninja")
    assert (ninja.status, ninja.measured, ninja.recommended) == (
        Status.MEETS_MINIMUM,
        "not found",
        "installed",
    )


def test_a_counted_build_part_keeps_every_fix() -> None:
    """With [build] required (or --fail-on build) the build part joins the verdict: its
    advice must still hold each missing tool's fix, not only the most severe one."""
    snapshot = h100(linux_tools(nvcc=None, gcc=None, ninja=False, python_h=False))
    verdict = judge_build(snapshot, BuildRule(required=True))
    fixes = [c.advice for c in verdict.criteria if c.advice and c.status is Status.BELOW_MINIMUM]
    assert len(fixes) >= 2
    for fix in fixes:
        assert fix in verdict.advice


class _NoThreads(ReplayTools):
    """A process limit reached while the build tools' programs are started."""

    def run_all(self, commands: object) -> list[ToolRun]:
        raise RuntimeError("can't start new thread")


def test_a_build_probe_that_failed_judges_nothing_instead_of_not_found() -> None:
    # Under `ulimit -u`, the probe stopped partway and its empty result read as "no compiler,
    # no Python.h, no ninja", with apt commands to install what was there.
    from machines import replay_snapshot

    snapshot = replay_snapshot("h100-80gb-hbm3", tools=_NoThreads())
    assert [error.probe for error in snapshot.errors] == ["build"]
    verdict = judge_build(snapshot, BuildRule(required=True))
    assert verdict.status is Status.UNKNOWN
    assert verdict.criteria == ()
    assert "can't start new thread" in verdict.advice
    assert "not found" not in verdict.advice
    assert "apt install" not in verdict.advice


@pytest.mark.parametrize(
    "run",
    [
        ToolRun(("/usr/bin/ninja", "--version"), error="no answer within 5 s"),
        ToolRun(("/usr/bin/ninja", "--version"), -11, ""),
    ],
    ids=["hangs", "crashes"],
)
def test_a_ninja_that_cannot_answer_its_version_is_not_judged(run: ToolRun) -> None:
    # torch.utils.cpp_extension runs `ninja --version` before using it: a ninja on PATH that
    # hangs or crashes there is no working ninja (it read "meets rec, found").
    snapshot = h100(linux_tools(ninja_run=run))
    verdict = judge_build(snapshot, BuildRule())
    ninja = next(c for c in verdict.criteria if c.name == "ninja")
    assert ninja.status is Status.UNKNOWN
    assert "ninja --version" in ninja.advice
