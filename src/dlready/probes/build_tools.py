"""The extension build toolchain: nvcc, CUDA_HOME, host compilers, ninja, Python headers, cuDNN.

Programs are found with ``which`` and run only when found (all at once, through
:mod:`dlready.probes.tools_gateway`), so a machine without them pays a few PATH lookups.
The toolkit folder is chosen the way ``torch.utils.cpp_extension._find_cuda_home`` chooses it
(https://github.com/pytorch/pytorch/blob/main/torch/utils/cpp_extension.py): ``CUDA_HOME``,
else ``CUDA_PATH``, else two folders above the ``nvcc`` on ``PATH`` (links not resolved), else
``/usr/local/cuda`` (Windows: the newest ``C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v*``).
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Callable

from dlready.model import (
    BuildTools,
    HostCompilerLimits,
    OperatingSystem,
    Reading,
    Source,
    ToolInfo,
    missing,
)
from dlready.probes.tools_gateway import ToolBackend, ToolRun

_NVCC = re.compile(r"release (\d+\.\d+), V(\d+(?:\.\d+)+)")
_NVCC_RELEASE_ONLY = re.compile(r"release (\d+\.\d+)")
_CLANG = re.compile(r"clang version (\d+\.\d+(?:\.\d+)?)")
_CL = re.compile(r"Version\s+(\d+\.\d+\.\d+(?:\.\d+)?)")
_CUDNN_DEFINE = re.compile(r"#define\s+CUDNN_(MAJOR|MINOR|PATCHLEVEL)\s+(\d+)")
_CUDNN_LIBRARY = re.compile(r"libcudnn\.so\.(\d+\.\d+\.\d+)$")

WINDOWS_TOOLKITS = "C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA"
_CUDNN_PACKAGES = ("nvidia-cudnn-cu13", "nvidia-cudnn-cu12", "nvidia-cudnn-cu11")
_LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")


def parse_nvcc_version(text: str) -> str | None:
    """``Cuda compilation tools, release 13.0, V13.0.88`` -> ``13.0.88``."""
    match = _NVCC.search(text)
    if match:
        return match.group(2)
    release = _NVCC_RELEASE_ONLY.search(text)
    return release.group(1) if release else None


def parse_gcc_version(text: str) -> str | None:
    """The version in ``gcc --version``'s first line, or ``-dumpfullversion``'s output.

    ``gcc (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0`` -> ``13.3.0``; ``gcc (GCC) 11.4.1 20231218
    (Red Hat 11.4.1-3)`` -> ``11.4.1``. The first parenthesised group is the vendor's label.
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    without_label = re.sub(r"^[^(]*\([^)]*\)", "", first, count=1)
    match = re.search(r"(?<![\w.])(\d+\.\d+(?:\.\d+)?)", without_label)
    return match.group(1) if match else None


def is_clang_banner(text: str) -> bool:
    """``gcc`` on macOS (and some distributions' ``cc``) is clang under another name."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return "clang" in first.lower()


def parse_clang_version(text: str) -> str | None:
    """``Ubuntu clang version 18.1.3 (1ubuntu1)`` -> ``18.1.3``."""
    match = _CLANG.search(text)
    return match.group(1) if match else None


def parse_cl_version(text: str) -> str | None:
    """``Microsoft (R) C/C++ Optimizing Compiler Version 19.40.33811 for x64`` -> ``19.40.33811``
    (the banner ``cl`` prints on stderr; localised banners keep the word ``Version``)."""
    match = _CL.search(text)
    return match.group(1) if match else None


def parse_ninja_version(text: str) -> str | None:
    """``1.11.1`` (optionally followed by ``.git.kitware.jobserver-1``)."""
    match = re.match(r"\s*(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def parse_cudnn_header(text: str) -> str | None:
    """``cudnn_version.h``'s ``CUDNN_MAJOR/MINOR/PATCHLEVEL`` -> ``9.14.0``."""
    values = dict(_CUDNN_DEFINE.findall(text))
    if "MAJOR" not in values:
        return None
    return f"{values['MAJOR']}.{values.get('MINOR', '0')}.{values.get('PATCHLEVEL', '0')}"


_GCC_LIMIT = re.compile(r"#if\s+__GNUC__\s*>\s*(\d+)")
_CLANG_LIMIT = re.compile(r"\(__clang_major__\s*>=\s*(\d+)\)\s*\|\|\s*\(__clang_major__\s*<\s*3\)")
_MSVC_LIMIT = re.compile(r"#if\s+_MSC_VER\s*<\s*(\d+)\s*\|\|\s*_MSC_VER\s*>=\s*(\d+)")


def parse_host_config(text: str, origin: str) -> HostCompilerLimits | None:
    """The version checks of a toolkit's ``include/crt/host_config.h`` (None: none found).

    ``#if __GNUC__ > 13`` -> gcc 13 at most; ``(__clang_major__ >= 19) || (__clang_major__ <
    3)`` -> clang 18 at most (the last such check is the generic Linux one); ``#if _MSC_VER <
    1910 || _MSC_VER >= 1950`` -> 1910..1949.
    """
    gcc = _GCC_LIMIT.search(text)
    clang = _CLANG_LIMIT.findall(text)
    msvc = _MSVC_LIMIT.search(text)
    if not (gcc or clang or msvc):
        return None
    return HostCompilerLimits(
        gcc_max_major=int(gcc.group(1)) if gcc else None,
        clang_max_major=int(clang[-1]) - 1 if clang else None,
        msvc_min=int(msvc.group(1)) if msvc else None,
        msvc_max=int(msvc.group(2)) - 1 if msvc else None,
        origin=origin,
    )


def _first_line(text: str) -> str | None:
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def tool_from_run(
    name: str, path: str, run: ToolRun, parse: Callable[[str], str | None]
) -> ToolInfo:
    """A found tool with the version its run printed (or why it has none)."""
    located = Reading.read(path, Source.ENVIRONMENT)
    if run.error is not None:
        return ToolInfo(name, located, Reading.failed(Source.PROGRAM, f"{path}: {run.error}"))
    output = run.output
    version = parse(output)
    banner = _first_line(output)
    if version is None:
        reason = f"{' '.join(run.argv[1:])} printed no version (exit {run.returncode})"
        if banner:
            reason += f": {banner}"
        return ToolInfo(
            name,
            located,
            Reading.failed(Source.PROGRAM, reason),
            Reading.read(banner, Source.PROGRAM),
        )
    return ToolInfo(
        name,
        located,
        Reading.read(str(version), Source.PROGRAM),
        Reading.read(banner, Source.PROGRAM),
    )


def _not_found(name: str) -> ToolInfo:
    return ToolInfo(name, Reading.read(None, Source.ENVIRONMENT))


def _version_command(name: str, path: str) -> list[str]:
    if name == "cl":
        return [path]  # cl has no --version; it prints its banner and usage
    return [path, "--version"]


_PARSERS = {
    "nvcc": parse_nvcc_version,
    "gcc": parse_gcc_version,
    "g++": parse_gcc_version,
    "clang": parse_clang_version,
    "cl": parse_cl_version,
    "ninja": parse_ninja_version,
}


def _env(environ: dict[str, str], name: str) -> Reading[str]:
    value = environ.get(name)
    return Reading.read(value if value else None, Source.ENVIRONMENT)


def host_compiler_names(os_family: OperatingSystem) -> tuple[str, ...]:
    """The host compilers nvcc can use here: MSVC's cl on Windows, gcc/g++ (and clang) else."""
    return ("cl",) if os_family is OperatingSystem.WINDOWS else ("gcc", "g++", "clang")


def _toolkit_home(
    tools: ToolBackend, environ: dict[str, str], nvcc_path: str | None, windows: bool
) -> tuple[str | None, str]:
    """The folder an extension build uses, and how it was chosen (torch's order)."""
    path_module = ntpath if windows else posixpath
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(variable):
            return environ[variable], variable
    if nvcc_path:
        return path_module.dirname(path_module.dirname(nvcc_path)), "nvcc on PATH"
    if windows:
        versions = [name for name in tools.list_dir(WINDOWS_TOOLKITS) or () if name.startswith("v")]
        if versions:
            return f"{WINDOWS_TOOLKITS}/{versions[-1]}", "default"
        return None, "default"
    default = "/usr/local/cuda"
    if tools.is_file(f"{default}/bin/nvcc") or tools.list_dir(default) is not None:
        return default, "default"
    return None, "default"


def _join(home: str, *parts: str, windows: bool) -> str:
    return str((ntpath if windows else posixpath).join(home, *parts))


def _complete_toolkit(tools: ToolBackend, home: str, windows: bool) -> bool:
    nvcc = _join(home, "bin", "nvcc.exe" if windows else "nvcc", windows=windows)
    header = _join(home, "include", "cuda_runtime.h", windows=windows)
    return tools.is_file(nvcc) and tools.is_file(header)


def _cudnn_version(tools: ToolBackend, home: str | None, windows: bool) -> Reading[str]:
    """cuDNN without torch: a pip wheel's metadata, a header, or a versioned library name."""
    for package in _CUDNN_PACKAGES:
        version = tools.package_version(package)
        if version:
            return Reading.read(f"{version} (pip {package})", Source.PACKAGE_METADATA)
    folders = [_join(home, "include", windows=windows)] if home else []
    folders += ["/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu"]
    for folder in folders:
        for header in ("cudnn_version.h", "cudnn.h"):
            text = tools.read_text(_join(folder, header, windows=windows))
            version = parse_cudnn_header(text) if text else None
            if version:
                return Reading.read(f"{version} ({folder}/{header})", Source.FILE)
    for folder in _LIBRARY_DIRS:
        for name in tools.list_dir(folder) or ():
            match = _CUDNN_LIBRARY.match(name)
            if match:
                return Reading.read(f"{match.group(1)} ({folder}/{name})", Source.FILE)
    return Reading.read(None, Source.FILE)


def _max_jobs(environ: dict[str, str]) -> Reading[int]:
    raw = environ.get("MAX_JOBS")
    if raw is None or not raw.strip():
        return Reading.read(None, Source.ENVIRONMENT)
    try:
        jobs = int(raw.strip())
    except ValueError:
        return Reading.failed(Source.ENVIRONMENT, f"MAX_JOBS={raw!r} is not a whole number")
    if jobs < 1:
        return Reading.failed(Source.ENVIRONMENT, f"MAX_JOBS={raw!r} is not a positive number")
    return Reading.read(jobs, Source.ENVIRONMENT)


def probe_build_tools(tools: ToolBackend, os_family: OperatingSystem) -> BuildTools:
    """Find and ask every build tool; never raises for a missing or broken tool."""
    windows = os_family is OperatingSystem.WINDOWS
    environ = dict(tools.environ())
    compiler_names = host_compiler_names(os_family)
    names = ("nvcc", *compiler_names, "ninja")
    found = {name: tools.which(name) for name in names}

    home, origin = _toolkit_home(tools, environ, found["nvcc"], windows)
    home_nvcc_path = (
        _join(home, "bin", "nvcc.exe" if windows else "nvcc", windows=windows) if home else None
    )
    home_nvcc_separate = (
        home_nvcc_path is not None
        and tools.is_file(home_nvcc_path)
        and (
            found["nvcc"] is None or tools.realpath(home_nvcc_path) != tools.realpath(found["nvcc"])
        )
    )
    commands: list[tuple[str, list[str]]] = [
        (name, _version_command(name, path)) for name, path in found.items() if path
    ]
    if home_nvcc_separate and home_nvcc_path:
        commands.append(("cuda_home_nvcc", [home_nvcc_path, "--version"]))
    runs = dict(
        zip((key for key, _ in commands), tools.run_all([c for _, c in commands]), strict=True)
    )

    def info(name: str) -> ToolInfo:
        path = found[name]
        if not path:
            return _not_found(name)
        return tool_from_run(name, path, runs[name], _PARSERS[name])

    nvcc = info("nvcc")
    if home_nvcc_separate and home_nvcc_path:
        home_nvcc = tool_from_run(
            "nvcc", home_nvcc_path, runs["cuda_home_nvcc"], parse_nvcc_version
        )
    elif home_nvcc_path and tools.is_file(home_nvcc_path):
        home_nvcc = ToolInfo(
            "nvcc", Reading.read(home_nvcc_path, Source.FILE), nvcc.version, nvcc.banner
        )
    else:
        home_nvcc = _not_found("nvcc")
    compilers = []
    for name in compiler_names:
        tool = info(name)
        run = runs.get(name)
        if name in ("gcc", "g++") and run is not None and is_clang_banner(run.output):
            tool = ToolInfo(
                name,
                tool.path,
                Reading.unsupported(Source.PROGRAM, f"{name} is clang under another name"),
                tool.banner,
            )
        compilers.append(tool)

    has_headers: Reading[bool] = missing("no CUDA toolkit folder")
    elsewhere: Reading[str] = Reading.read(None, Source.FILE)
    if home:
        has_headers = Reading.read(
            tools.is_file(_join(home, "include", "cuda_runtime.h", windows=windows)), Source.FILE
        )
        if not _complete_toolkit(tools, home, windows):
            elsewhere = Reading.read(
                _toolkit_elsewhere(tools, found["nvcc"], home, windows), Source.FILE
            )
    limits: Reading[HostCompilerLimits] = missing("no CUDA toolkit folder")
    for folder in (home, elsewhere.value):
        if not folder:
            continue
        header_path = _join(folder, "include", "crt", "host_config.h", windows=windows)
        text = tools.read_text(header_path)
        parsed = parse_host_config(text, header_path) if text else None
        if parsed is not None:
            limits = Reading.read(parsed, Source.FILE)
            break
        limits = Reading.unsupported(
            Source.FILE, f"{header_path} is missing or has no version checks"
        )
    include_dir = tools.python_include_dir()
    header = _join(include_dir, "Python.h", windows=windows) if include_dir else None
    return BuildTools(
        nvcc=nvcc,
        cuda_home_env=_env(environ, "CUDA_HOME"),
        cuda_path_env=_env(environ, "CUDA_PATH"),
        cuda_home=Reading.read(home, Source.DERIVED),
        cuda_home_origin=Reading.read(origin, Source.DERIVED),
        cuda_home_nvcc=home_nvcc,
        cuda_home_has_headers=has_headers,
        toolkit_elsewhere=elsewhere,
        host_compiler_limits=limits,
        host_compilers=tuple(compilers),
        ninja=info("ninja"),
        python_headers=Reading.read(
            header if header and tools.is_file(header) else None, Source.FILE
        ),
        python_include_dir=Reading.read(include_dir, Source.PLATFORM),
        cudnn_version=_cudnn_version(tools, home, windows),
        max_jobs_env=_max_jobs(environ),
    )


def _toolkit_elsewhere(
    tools: ToolBackend, nvcc_path: str | None, home: str, windows: bool
) -> str | None:
    """A complete toolkit the build would not use: where the nvcc on PATH really lives (a link
    or a wrapper script's target), or ``/usr/local/cuda``."""
    candidates: list[str] = []
    if nvcc_path:
        real = tools.realpath(nvcc_path)
        path_module = ntpath if windows else posixpath
        candidates.append(path_module.dirname(path_module.dirname(real)))
        wrapper = tools.read_text(nvcc_path) if not windows else None
        if wrapper and wrapper.startswith("#!"):
            target = re.search(r"(\S+)/bin/nvcc\b", wrapper)
            if target:
                candidates.append(target.group(1))
    if not windows:
        candidates.append("/usr/local/cuda")
    for candidate in candidates:
        if candidate != home and _complete_toolkit(tools, candidate, windows):
            return candidate
    return None
