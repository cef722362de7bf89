"""Pure judgement of the extension build tools (``snapshot.build``): can this machine compile
PyTorch C++/CUDA extensions (flash-attn, apex, DeepSpeed ops, ``torch.utils.cpp_extension``)?

Every finding says what breaks and how to fix it. The part counts toward the verdict only when
the profile says ``[build] required = true`` or with ``--fail-on build``.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from dlready.install.toolkit_archs import toolkit_min_capability
from dlready.install.versions import compute_capability_key, cuda_of_variant, numeric_key
from dlready.model import (
    BuildTools,
    GpuVendor,
    HostCompilerLimits,
    MachineSnapshot,
    OperatingSystem,
    ReadState,
    ToolInfo,
)
from dlready.package_data import read_data_text
from dlready.spec.bar import FailOn
from dlready.spec.profile import BuildRule
from dlready.spec.verdict import (
    CheckReport,
    ComponentVerdict,
    Criterion,
    Status,
    judged_component,  # the one rule for a part
    worst,
)

GIB = 1024**3
SUBJECT = "Build tools"
TOOLKIT_ARCHIVE = "https://developer.nvidia.com/cuda-toolkit-archive"


class BuildPart(Struct, frozen=True):
    """The judged build tools, and whether they count toward the verdict."""

    verdict: ComponentVerdict
    counts: bool


class HostCompilerEntry(Struct, frozen=True):
    """One row of ``data/cuda_host_compilers.json``."""

    cuda_from: tuple[int, ...]
    cuda_through: tuple[int, ...]
    limits: HostCompilerLimits
    confidence: str


@functools.lru_cache(maxsize=1)
def load_host_compiler_table() -> tuple[HostCompilerEntry, ...]:
    """The packaged table of the host compilers each CUDA release accepts."""
    text = read_data_text("cuda_host_compilers.json")
    rows: list[dict[str, Any]] = json.loads(text)["releases"]
    return tuple(
        HostCompilerEntry(
            cuda_from=numeric_key(row["cuda_from"]),
            cuda_through=numeric_key(row["cuda_through"]),
            limits=HostCompilerLimits(
                gcc_max_major=row.get("gcc_max_major"),
                clang_max_major=row.get("clang_max_major"),
                msvc_min=row.get("msvc_min"),
                msvc_max=row.get("msvc_max"),
                origin=f"dlready's table ({row['confidence']}): {row['source']}",
            ),
            confidence=row["confidence"],
        )
        for row in rows
    )


def table_limits(cuda_version: str) -> HostCompilerLimits | None:
    """The table's limits for a CUDA release (``13.0.88`` -> the 13.0 row), or None."""
    try:
        key = numeric_key(cuda_version)[:2]
    except ValueError:
        return None
    for entry in load_host_compiler_table():
        if entry.cuda_from <= key <= entry.cuda_through:
            return entry.limits
    return None


def _major(version: str | None) -> int | None:
    if not version:
        return None
    try:
        return numeric_key(version)[0]
    except (ValueError, IndexError):
        return None


def _major_minor(version: str | None) -> str | None:
    if not version:
        return None
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else None


def msc_ver(cl_version: str) -> int | None:
    """``19.40.33811`` (cl.exe's banner) -> ``_MSC_VER`` 1940."""
    parts = cl_version.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]) * 100 + int(parts[1])


def ninja_default_jobs(cpus: int) -> int:
    """ninja's default parallelism (``GuessParallelism`` in ninja's src/ninja.cc): CPUs + 2,
    3 on two CPUs, 2 on one."""
    if cpus <= 1:
        return 2
    if cpus == 2:
        return 3
    return cpus + 2


def _criterion(
    name: str,
    status: Status,
    measured: str | None,
    expected: str | None,
    source: str,
    advice: str = "",
    recommended: str | None = None,
) -> Criterion:
    # What is expected is the bar to meet; ``recommended`` only for a tool that is not needed
    # but better had (ninja).
    return Criterion(name, status, measured, "", expected, recommended, source, advice)


def _value(tool: ToolInfo) -> str | None:
    return tool.version.value if tool.version.ok else None


# --- the findings ----------------------------------------------------------------------------


class InstalledTorchFit(Struct, frozen=True):
    """What ``check``'s PyTorch part found, as the build part needs it."""

    mismatch: bool
    """The installed torch does not fit this machine (driver too old, no kernels for the GPU)."""
    recommended_variant: str | None = None
    """The build ``install-cmd`` recommends (``cu126``), whose CUDA the toolkit must match."""


def _torch_cuda(
    snapshot: MachineSnapshot, has_nvidia: bool, fit: InstalledTorchFit | None
) -> tuple[Criterion, str | None]:
    """The installed torch's CUDA, and the CUDA version the toolkit should have (None: any)."""
    torch = snapshot.torch
    recommended = (
        cuda_of_variant(fit.recommended_variant) if fit and fit.recommended_variant else None
    )

    def torch_cuda(
        status: Status, measured: str | None, expected: str | None, advice: str = ""
    ) -> Criterion:
        return _criterion("torch_cuda", status, measured, expected, "package-metadata", advice)

    if not torch.installed:
        wanted = f"CUDA {recommended} build" if recommended else "build for this machine"
        return torch_cuda(
            Status.UNKNOWN,
            None,
            None,
            "PyTorch is not installed: extensions are compiled against the installed torch, "
            f"so install it first (its {wanted}: `dlready install-cmd --run`).",
        ), recommended
    cuda = torch.cuda_version.value if torch.cuda_version.ok else None
    rocm = torch.hip_version.ok and bool(torch.hip_version.value)
    variant_read = torch.cuda_version.state is ReadState.READ or torch.local_variant.ok
    if not cuda and not rocm and not variant_read:
        # Neither CUDA nor HIP could be read: which build this is was never measured.
        why = (torch.version.reason if not torch.version.ok else None) or (
            torch.cuda_version.reason or "not read"
        )
        return torch_cuda(
            Status.UNKNOWN,
            None,
            None,
            "Which build of PyTorch is installed (CPU, CUDA or ROCm) could not be read "
            f"({why}), so whether CUDA extensions can be compiled against it is unknown.",
        ), None
    if cuda and fit is not None and fit.mismatch:
        # Extensions are compiled against the torch that replaces this one: its CUDA counts.
        return torch_cuda(
            Status.BELOW_MINIMUM,
            cuda,
            f"a CUDA {recommended} build" if recommended else "a build that fits",
            "The installed PyTorch does not fit this machine (see PyTorch above); extensions "
            "are compiled against the PyTorch that replaces it"
            + (f", a CUDA {recommended} build." if recommended else "."),
        ), recommended
    if cuda:
        return torch_cuda(Status.MEETS_RECOMMENDED, cuda, None), cuda
    kind = "ROCm" if rocm else "CPU-only"
    return torch_cuda(
        Status.BELOW_MINIMUM,
        kind,
        "a CUDA build",
        f"The installed PyTorch is a {kind} build: CUDA extensions cannot be compiled "
        "against it. "
        + (
            "Install the CUDA build for this machine: `dlready install-cmd --run`."
            if has_nvidia
            else "This machine has no NVIDIA GPU, so CUDA extensions can only be compiled "
            "here, not run, against a CUDA build of PyTorch (`dlready install-cmd "
            "--accelerator cuda --driver <the GPU machine's driver>` prints one)."
        ),
    ), recommended


def toolkit_problems(snapshot: MachineSnapshot, cuda_version: str) -> list[str]:
    """Why a CUDA toolkit cannot build extensions for this machine's NVIDIA GPUs: a GPU older
    than its nvcc compiles for, or a driver too old to run what it compiles (empty: it fits,
    or nothing to judge it by was read)."""
    problems = []
    oldest = toolkit_min_capability(cuda_version)
    cuda = _major_minor(cuda_version) or cuda_version
    for gpu in snapshot.gpus:
        capability = gpu.compute_capability
        if gpu.vendor is not GpuVendor.NVIDIA or not capability.ok or not capability.value:
            continue
        try:
            too_old = oldest is not None and compute_capability_key(
                capability.value
            ) < compute_capability_key(oldest)
        except ValueError:
            continue
        if too_old:
            problems.append(
                f"CUDA {cuda}'s nvcc no longer compiles for compute capability "
                f"{capability.value} (GPU {gpu.index}; it starts at {oldest})"
            )
            break  # one GPU says it; the others share the reason
    from dlready.install.cuda_fit import driver_support  # the install rules, not a copy
    from dlready.install.plan import DriverSupport

    stack = snapshot.stack(GpuVendor.NVIDIA)
    driver = stack.driver_version.value if stack and stack.driver_version.ok else None
    floor = _driver_floor(cuda_version, snapshot)
    if driver and floor and driver_support(driver, floor, None) is DriverSupport.TOO_OLD:
        problems.append(
            f"code compiled with CUDA {cuda} needs NVIDIA driver >= {floor}, and this driver is "
            f"{driver}"
        )
    return problems


def _driver_floor(cuda_version: str, snapshot: MachineSnapshot) -> str | None:
    """The oldest driver that runs code of this CUDA release (minor-version compatibility:
    the same floor for a whole major release), from the install table."""
    try:
        major = numeric_key(cuda_version)[0]
    except (ValueError, IndexError):
        return None
    from dlready.install.table import load_compat_table

    windows = snapshot.platform.os is OperatingSystem.WINDOWS or snapshot.platform.is_wsl.value
    floors = [
        (floor.min_windows if windows else floor.min_linux)
        for floor in load_compat_table().drivers.values()
        if _major(floor.cuda) == major
    ]
    known = [f for f in floors if f]
    return min(known, key=numeric_key) if known else None


def _nvcc(snapshot: MachineSnapshot, build: BuildTools, torch_cuda: str | None) -> Criterion:
    nvcc = build.nvcc
    wanted = f"CUDA {torch_cuda}" if torch_cuda else "CUDA"
    if not nvcc.path.ok:
        return _criterion(
            "nvcc",
            Status.BELOW_MINIMUM,
            "not found",
            _major_minor(torch_cuda),
            "program",
            f"No nvcc on PATH: CUDA extensions cannot be compiled. Install the {wanted} toolkit "
            f"({TOOLKIT_ARCHIVE}) and put its bin folder on PATH.",
        )
    version = _value(nvcc)
    if version is None:
        return _criterion(
            "nvcc",
            Status.UNKNOWN,
            None,
            _major_minor(torch_cuda),
            "program",
            f"nvcc at {nvcc.path.value} did not say its version: {nvcc.version.reason}.",
        )
    unfit = toolkit_problems(snapshot, version)
    if unfit:
        return _criterion(
            "nvcc",
            Status.BELOW_MINIMUM,
            version,
            _major_minor(torch_cuda),
            "program",
            _sentences(unfit)
            + f" Install the {wanted} toolkit ({TOOLKIT_ARCHIVE}) and put it first on PATH.",
        )
    if torch_cuda is None:
        return _criterion("nvcc", Status.MEETS_RECOMMENDED, version, None, "program")
    if _major(version) != _major(torch_cuda):
        return _criterion(
            "nvcc",
            Status.BELOW_MINIMUM,
            version,
            _major_minor(torch_cuda),
            "program",
            f"nvcc is CUDA {_major_minor(version)} but PyTorch was built with CUDA {torch_cuda}: "
            "extension builds stop with 'The detected CUDA version mismatches the version that "
            f"was used to compile PyTorch'. Install the CUDA {torch_cuda} toolkit ({TOOLKIT_ARCHIVE}) "
            "and point CUDA_HOME and PATH at it, or install the PyTorch build for your nvcc "
            f"(`dlready install-cmd --variant cu{(_major_minor(version) or '').replace('.', '')}`).",
        )
    if _major_minor(version) != _major_minor(torch_cuda):
        return _criterion(
            "nvcc",
            Status.MEETS_MINIMUM,
            version,
            _major_minor(torch_cuda),
            "program",
            f"nvcc is CUDA {_major_minor(version)}, PyTorch's is {torch_cuda}: same major, so "
            "builds work, with a warning; the same minor avoids surprises.",
        )
    return _criterion(
        "nvcc", Status.MEETS_RECOMMENDED, version, _major_minor(torch_cuda), "program"
    )


def _cuda_home(build: BuildTools) -> tuple[Criterion, list[str]]:
    notes: list[str] = []
    home = build.cuda_home.value
    origin = build.cuda_home.value and build.cuda_home_origin.value
    env_home, env_path = build.cuda_home_env.value, build.cuda_path_env.value
    if env_home and env_path and env_home.rstrip("/\\") != env_path.rstrip("/\\"):
        notes.append(
            f"CUDA_HOME ({env_home}) and CUDA_PATH ({env_path}) differ; PyTorch's builds use "
            "CUDA_HOME, some other tools CUDA_PATH."
        )
    elsewhere = build.toolkit_elsewhere.value
    fix = f"export CUDA_HOME={elsewhere}" if elsewhere else "set CUDA_HOME to the toolkit folder"
    if not home:
        return (
            _criterion(
                "cuda_home",
                Status.BELOW_MINIMUM,
                "not found",
                None,
                "derived",
                "No CUDA toolkit folder (CUDA_HOME unset, no nvcc on PATH, no /usr/local/cuda): "
                f"extension builds fail with 'CUDA_HOME environment variable is not set'. Install "
                f"the toolkit ({TOOLKIT_ARCHIVE}), then {fix} (the folder with bin/nvcc).",
            ),
            notes,
        )
    complete = build.cuda_home_has_headers.value is True and build.cuda_home_nvcc.path.ok
    if not complete:
        lacking = (
            "include/cuda_runtime.h"
            if build.cuda_home_has_headers.value is not True
            else "bin/nvcc"
        )
        return (
            _criterion(
                "cuda_home",
                Status.BELOW_MINIMUM,
                home,
                None,
                "derived",
                f"Extension builds would use {home} as the CUDA toolkit (chosen from {origin}), "
                f"but it has no {lacking}: compiles fail with missing CUDA headers or no nvcc. "
                f"Fix: {fix}",
            ),
            notes,
        )
    path_version, home_version = _value(build.nvcc), _value(build.cuda_home_nvcc)
    if path_version and home_version and path_version != home_version:
        return (
            _criterion(
                "cuda_home",
                Status.BELOW_MINIMUM,
                f"{home} (CUDA {home_version})",
                f"CUDA {path_version}",
                "derived",
                f"CUDA_HOME ({home}) holds CUDA {home_version} but the nvcc on PATH is "
                f"{path_version}: checks and compiles use different toolkits. Point CUDA_HOME at "
                f"the toolkit of the nvcc on PATH, or put {home}/bin first on PATH.",
            ),
            notes,
        )
    return _criterion("cuda_home", Status.MEETS_RECOMMENDED, home, None, "derived"), notes


_INSTALL_COMPILER = {
    OperatingSystem.LINUX: "install one: `sudo apt install build-essential` (Debian/Ubuntu) or "
    "`sudo dnf install gcc-c++` (Fedora/RHEL)",
    OperatingSystem.WINDOWS: "install Visual Studio Build Tools with 'Desktop development with "
    "C++' and build from the 'x64 Native Tools Command Prompt', which puts cl.exe on PATH",
}


def _host_compiler(
    snapshot: MachineSnapshot, build: BuildTools, cuda_relevant: bool
) -> Criterion | None:
    os_family = snapshot.platform.os
    if os_family is OperatingSystem.MACOS:
        return None
    # Extensions are C++: torch builds them with the C++ driver (g++; cl.exe on Windows), and
    # nvcc hands host code to it. gcc alone cannot link them.
    name = "cl" if os_family is OperatingSystem.WINDOWS else "g++"
    tool = build.compiler(name)
    if tool is None or not tool.path.ok:
        gcc = build.compiler("gcc")
        only_gcc = name == "g++" and gcc is not None and gcc.path.ok
        return _criterion(
            "host_compiler",
            Status.BELOW_MINIMUM,
            "gcc without g++" if only_gcc else "not found",
            None,
            "program",
            (
                "gcc is installed but not its C++ compiler g++: no extension can be compiled; "
                "`sudo apt install g++` (Debian/Ubuntu) or `sudo dnf install gcc-c++` "
                "(Fedora/RHEL)."
            )
            if only_gcc
            else "No C++ compiler on PATH: no extension can be compiled; "
            + _INSTALL_COMPILER.get(os_family, "install a C++ compiler")
            + ".",
        )
    version = _value(tool)
    label = "cl.exe" if tool.name == "cl" else tool.name
    if version is None:
        return _criterion(
            "host_compiler",
            Status.UNKNOWN,
            None,
            None,
            "program",
            f"{label} at {tool.path.value}: {tool.version.reason}.",
        )
    measured = f"{label} {version}"
    cuda_version = _value(build.cuda_home_nvcc) or _value(build.nvcc)
    if not cuda_relevant or cuda_version is None:
        return _criterion("host_compiler", Status.MEETS_RECOMMENDED, measured, None, "program")
    limits = (
        build.host_compiler_limits.value
        if build.host_compiler_limits.ok
        else table_limits(cuda_version)
    )
    cuda = _major_minor(cuda_version)
    if limits is None:
        return _criterion(
            "host_compiler",
            Status.UNKNOWN,
            measured,
            None,
            "derived",
            f"dlready does not know which compilers CUDA {cuda}'s nvcc accepts (its "
            "include/crt/host_config.h was not readable and the table has no row for it).",
        )
    if tool.name == "cl":
        return _judge_msvc(measured, version, limits, cuda)
    maximum = limits.gcc_max_major
    major = _major(version)
    if maximum is None or major is None:
        return _criterion("host_compiler", Status.UNKNOWN, measured, None, "derived")
    expected = f"gcc {maximum} or older"
    if major > maximum:
        compiler = "g++" if tool.name == "g++" else "gcc"
        return _criterion(
            "host_compiler",
            Status.BELOW_MINIMUM,
            measured,
            expected,
            limits.origin,
            f"{label} {version} is newer than CUDA {cuda}'s nvcc accepts (gcc {maximum} at "
            "most): nvcc stops with 'unsupported GNU version'. Install "
            f"{compiler}-{maximum} and point nvcc at it: "
            f"export NVCC_PREPEND_FLAGS='-ccbin /usr/bin/{compiler}-{maximum}'",
        )
    return _criterion("host_compiler", Status.MEETS_RECOMMENDED, measured, expected, limits.origin)


def _judge_msvc(
    measured: str, version: str, limits: HostCompilerLimits, cuda: str | None
) -> Criterion:
    value = msc_ver(version)
    if value is None or limits.msvc_min is None or limits.msvc_max is None:
        return _criterion("host_compiler", Status.UNKNOWN, measured, None, limits.origin)
    expected = f"_MSC_VER {limits.msvc_min}-{limits.msvc_max}"
    if not limits.msvc_min <= value <= limits.msvc_max:
        side = "newer" if value > limits.msvc_max else "older"
        return _criterion(
            "host_compiler",
            Status.BELOW_MINIMUM,
            f"{measured} (_MSC_VER {value})",
            expected,
            limits.origin,
            f"cl.exe {version} is {side} than CUDA {cuda}'s nvcc accepts ({expected}): nvcc "
            "stops with 'unsupported Microsoft Visual Studio version'. Install a Visual Studio "
            "version in that range (or a CUDA toolkit that supports yours) and build from its "
            "x64 Native Tools Command Prompt.",
        )
    return _criterion(
        "host_compiler",
        Status.MEETS_RECOMMENDED,
        f"{measured} (_MSC_VER {value})",
        expected,
        limits.origin,
    )


def _ninja(build: BuildTools) -> Criterion:
    ninja = build.ninja
    if ninja.path.ok and not ninja.version.ok:
        # torch checks ninja by running `ninja --version`; this one did not answer that.
        return _criterion(
            "ninja",
            Status.UNKNOWN,
            None,
            None,
            "program",
            f"ninja was found but `ninja --version` did not work ({ninja.version.reason}); "
            "torch.utils.cpp_extension runs that command first and falls back to a slow build "
            "without it: `python -m pip install --force-reinstall ninja`.",
            recommended="installed",
        )
    if ninja.path.ok:
        return _criterion(
            "ninja",
            Status.MEETS_RECOMMENDED,
            _value(build.ninja) or "found",
            None,
            "program",
            recommended="installed",
        )
    return _criterion(
        "ninja",
        Status.MEETS_MINIMUM,
        "not found",
        None,
        "program",
        "No ninja: torch.utils.cpp_extension falls back to a slow one-file-at-a-time build, and "
        "some projects (flash-attn) will not build without it: `python -m pip install ninja`.",
        recommended="installed",
    )


def _python_headers(snapshot: MachineSnapshot, build: BuildTools) -> Criterion:
    if build.python_headers.ok:
        return _criterion("python_headers", Status.MEETS_RECOMMENDED, "found", None, "file")
    python = snapshot.platform.python_version.value or ""
    minor = ".".join(python.split(".")[:2]) or "3.X"
    folder = build.python_include_dir.value or "this Python's include folder"
    fix = {
        OperatingSystem.LINUX: f"`sudo apt install python{minor}-dev` (Debian/Ubuntu) or "
        "`sudo dnf install python3-devel` (Fedora/RHEL); Pythons from conda, uv and pyenv "
        "include them",
        OperatingSystem.MACOS: "use a Python from python.org, Homebrew, conda or uv, which "
        "include them",
        OperatingSystem.WINDOWS: "reinstall Python from python.org with its development files",
    }.get(snapshot.platform.os, "install this Python's development files")
    return _criterion(
        "python_headers",
        Status.BELOW_MINIMUM,
        "not found",
        None,
        "file",
        f"No Python.h for Python {minor} (looked in {folder}): every C/C++ extension build "
        f"fails with 'Python.h: No such file or directory'. Fix: {fix}.",
    )


def _compile_jobs(snapshot: MachineSnapshot, build: BuildTools, rule: BuildRule) -> Criterion:
    ram = snapshot.memory.effective_total_bytes
    if not ram.ok or not ram.value:
        return _criterion(
            "compile_jobs_ram", Status.UNKNOWN, None, None, "derived", "RAM could not be measured."
        )
    if build.max_jobs_env.state.value == "failed":
        return _criterion(
            "compile_jobs_ram",
            Status.BELOW_MINIMUM,
            None,
            None,
            "environment",
            f"{build.max_jobs_env.reason}: set MAX_JOBS to a whole number of parallel jobs.",
        )
    per_job = rule.ram_per_job_gib
    allowed = math.floor(ram.value / GIB / per_job) if per_job > 0 else 1_000_000
    if build.max_jobs_env.value is not None:
        jobs, why = build.max_jobs_env.value, "MAX_JOBS"
    else:
        cpus_reading = (
            snapshot.cpu.usable_cpus if snapshot.cpu.usable_cpus.ok else snapshot.cpu.logical_cpus
        )
        if not cpus_reading.ok or not cpus_reading.value:
            return _criterion(
                "compile_jobs_ram",
                Status.UNKNOWN,
                None,
                f"{allowed} jobs",
                "derived",
                "The CPU count could not be read, so ninja's default job count is unknown.",
            )
        jobs = ninja_default_jobs(math.floor(cpus_reading.value))
        why = "ninja's default"
    measured = f"{jobs} jobs ({why})"
    expected = f"{allowed} jobs (RAM)"  # a maximum (AT_MOST_CRITERIA): shown as "at most"
    ram_gib = ram.value / GIB
    if allowed < 1:
        return _criterion(
            "compile_jobs_ram",
            Status.BELOW_MINIMUM,
            measured,
            expected,
            "derived",
            f"{ram_gib:.1f} GiB of RAM is less than one compile job needs ({per_job:g} GiB): "
            "large extensions will be killed for lack of memory; build on a bigger machine or "
            "install a prebuilt wheel.",
        )
    if jobs > allowed:
        return _criterion(
            "compile_jobs_ram",
            Status.BELOW_MINIMUM,
            measured,
            expected,
            "derived",
            f"{jobs} parallel compile jobs ({why}"
            + ("" if why == "MAX_JOBS" else ": CPUs + 2, as MAX_JOBS is not set")
            + f") × {per_job:g} GiB is more than the {ram_gib:.1f} GiB "
            f"of RAM: builds get killed (out of memory). RAM allows {allowed}: "
            f"export MAX_JOBS={allowed}",
        )
    return _criterion("compile_jobs_ram", Status.MEETS_RECOMMENDED, measured, expected, "derived")


def _cudnn_note(build: BuildTools) -> str:
    if build.cudnn_version.ok and build.cudnn_version.value:
        return (
            f"cuDNN {build.cudnn_version.value} is installed outside PyTorch; PyTorch's wheels "
            "bundle their own, so it matters only to code that links the system cuDNN."
        )
    return (
        "No cuDNN outside PyTorch (PyTorch's wheels bundle their own; only code linking the "
        "system cuDNN needs one)."
    )


def _sentences(parts: list[str]) -> str:
    return " ".join(f"{part[:1].upper()}{part[1:]}." for part in parts)


def judge_build(
    snapshot: MachineSnapshot, rule: BuildRule, torch_fit: InstalledTorchFit | None = None
) -> ComponentVerdict:
    """The build tools part (pure). ``torch_fit``: what the PyTorch part found, so that the
    toolkit advice follows the build PyTorch should have, not one that does not fit."""
    build = snapshot.build
    if build is None:
        return ComponentVerdict(
            "build",
            SUBJECT,
            Status.UNKNOWN,
            (),
            "This snapshot was saved before dlready looked for build tools; run `dlready "
            "check` again on that machine to see them.",
        )
    failed = next((error for error in snapshot.errors if error.probe == "build"), None)
    if failed is not None:
        # The probe stopped partway: what it left unread is not "not installed".
        return ComponentVerdict(
            "build",
            SUBJECT,
            Status.UNKNOWN,
            (),
            f"The build tools could not be looked at ({failed.message}), so none is judged. "
            "Run `dlready check` again; if this repeats, a limit on processes or open files "
            "(`ulimit -u`, `ulimit -n`) may be reached.",
        )
    has_nvidia = any(gpu.vendor is GpuVendor.NVIDIA for gpu in snapshot.gpus)
    torch_criterion, torch_cuda = _torch_cuda(snapshot, has_nvidia, torch_fit)
    cuda_relevant = snapshot.platform.os is not OperatingSystem.MACOS and (
        torch_cuda is not None or has_nvidia or build.nvcc.path.ok
    )
    rocm = snapshot.torch.hip_version.ok and bool(snapshot.torch.hip_version.value)
    criteria: list[Criterion] = []
    notes: list[str] = []
    if cuda_relevant and not rocm:
        criteria.append(torch_criterion)
        criteria.append(_nvcc(snapshot, build, torch_cuda))
        home, home_notes = _cuda_home(build)
        criteria.append(home)
        notes += home_notes
    elif rocm:
        notes.append("PyTorch is a ROCm build: dlready does not check hipcc and ROCm headers yet.")
    else:
        notes.append(
            "No NVIDIA GPU, no CUDA build of PyTorch and no nvcc: only C++ (CPU) extensions "
            "can be built here, so the CUDA checks are skipped."
        )
    compiler = _host_compiler(snapshot, build, cuda_relevant and not rocm)
    if compiler is not None:
        criteria.append(compiler)
    criteria += [
        _ninja(build),
        _python_headers(snapshot, build),
        _compile_jobs(snapshot, build, rule),
    ]
    if cuda_relevant:
        notes.append(_cudnn_note(build))
    return judged_component("build", SUBJECT, criteria, notes, every_fix=True)


def build_counts(rule: BuildRule, fail_on: FailOn) -> bool:
    """Whether the build part changes the verdict: the profile asks, or ``--fail-on build``."""
    return rule.required or fail_on is FailOn.BUILD


def judge_build_part(
    snapshot: MachineSnapshot,
    rule: BuildRule,
    fail_on: FailOn,
    torch_fit: InstalledTorchFit | None = None,
) -> BuildPart:
    """The judged part and whether it counts."""
    return BuildPart(judge_build(snapshot, rule, torch_fit), build_counts(rule, fail_on))


def fold_build(report: CheckReport, part: BuildPart) -> CheckReport:
    """The report with the build part among its components when it counts (then it changes the
    status, ``unknown_parts`` and ``fails``); otherwise the report unchanged."""
    if not part.counts:
        return report
    components = (*report.components, part.verdict)
    known = [c.status for c in components if c.status is not Status.UNKNOWN]
    unknown = report.unknown_parts + (
        (part.verdict.subject,) if part.verdict.status is Status.UNKNOWN else ()
    )
    return replace(report, components=components, status=worst(known), unknown_parts=unknown)
