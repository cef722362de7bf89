#!/usr/bin/env bash
# scripts/gpu-check.sh: run dlready's CUDA path end to end on a GPU machine and keep the output.
#
# What it runs (each step under `timeout`, so nothing can hang the script):
#   1. dlready check --json                                   -> check.json
#   2. nvidia-smi --query-gpu=... --format=csv (to compare)    -> nvidia-smi.csv
#      and the field-by-field comparison of the two             -> compare.txt
#   3. dlready smoke --device cuda --full --json               -> smoke-full.json
#   4. dlready smoke --device cuda (human table, quick)        -> smoke-quick.txt
#   5. dlready smoke --device cuda --burn ${BURN_S:-20} --json -> smoke-burn.json
# plus summary.txt (environment, each step's exit code and seconds) and stderr.log (every
# step's stderr). That is 8 files, all in "${OUT:-./gpu-check-out}" (created if missing).
#
# Assumptions (a bare machine with this repository copied onto it):
#   - bash, coreutils `timeout`, and a Python >= 3.10. The interpreter is $PYTHON if set, else
#     the repository's .venv/bin/python if present, else python3 on PATH.
#   - torch is already installed for that interpreter (a CUDA build to test the GPU). The
#     script never installs torch: it has no network and would pull gigabytes.
#   - dlready runs from the copied source (PYTHONPATH=src); it need not be installed. Its small
#     dependencies (typer, rich, psutil, py-cpuinfo, nvidia-ml-py) must be importable, or be
#     installable offline from wheels in $WHEELHOUSE (pip --no-index --target into a scratch
#     folder; nothing is installed system-wide), or, failing that, from the network if any.
#   - The NVIDIA driver is installed if the GPU is to be used; without it (or without a GPU)
#     every step still runs, smoke reports why CUDA is unusable, and the outputs are saved.
# Exit code: 0 when every step ran and its output was saved (read the step exit codes in
# summary.txt: smoke's own 0/1/2/3 are documented in docs/smoke.md); 3 when no usable Python
# or dlready could be found (summary.txt says why).
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/summary.txt"
ERRLOG="$OUT/stderr.log"
: >"$SUMMARY"
: >"$ERRLOG"

BURN_S="${BURN_S:-20}"
CHECK_TIMEOUT_S="${CHECK_TIMEOUT_S:-90}"
SMI_TIMEOUT_S="${SMI_TIMEOUT_S:-30}"
SMOKE_FULL_TIMEOUT_S="${SMOKE_FULL_TIMEOUT_S:-420}"
SMOKE_QUICK_TIMEOUT_S="${SMOKE_QUICK_TIMEOUT_S:-240}"
BURN_TIMEOUT_S="${BURN_TIMEOUT_S:-$((BURN_S + 300))}"

note() { printf '%s\n' "$*" >>"$SUMMARY"; }

# step NAME LIMIT_S OUTFILE COMMAND...: run with a time limit, stdout to OUTFILE, stderr to
# stderr.log, and record exit code and seconds in summary.txt. Never stops the script.
step() {
    local name="$1" limit="$2" outfile="$3"
    shift 3
    local started ended rc
    printf '\n===== %s: %s\n' "$name" "$*" >>"$ERRLOG"
    started="$(date +%s.%N)"
    timeout --kill-after=10 "$limit" "$@" >"$outfile" 2>>"$ERRLOG"
    rc=$?
    ended="$(date +%s.%N)"
    local seconds
    seconds="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')"
    case "$rc" in
        124 | 137) note "$name: TIMED OUT after ${limit} s (exit $rc), ${seconds} s" ;;
        *) note "$name: exit $rc, ${seconds} s" ;;
    esac
    return 0
}

note "dlready gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname 2>/dev/null || echo '?')"
note "repository: $REPO"

# --- the interpreter ------------------------------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x "$REPO/.venv/bin/python" ]; then
    PY="$REPO/.venv/bin/python"
else
    PY="$(command -v python3 || true)"
fi
if [ -z "$PY" ] || ! timeout 30 "$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>>"$ERRLOG"; then
    note "no usable Python >= 3.10 (tried: ${PY:-none}); set PYTHON=/path/to/python"
    exit 3
fi
note "python: $PY ($(timeout 30 "$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null))"

# --- dlready's dependencies -----------------------------------------------------------------------
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export NO_COLOR=1
# importable MODULE...: one line per missing module on stderr, exit 1 if any is missing.
importable() {
    timeout 60 "$PY" - "$@" 2>>"$ERRLOG" <<'PYTHON'
import importlib, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything else
        missing.append(name)
        print(f"cannot import {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
sys.exit(1 if missing else 0)
PYTHON
}
DEPS=(typer rich psutil cpuinfo pynvml)
if ! importable "${DEPS[@]}"; then
    DEPS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dlready-deps.XXXXXX")"
    trap 'rm -rf "$DEPS_DIR"' EXIT
    PACKAGES=(typer rich psutil py-cpuinfo nvidia-ml-py)
    if [ -n "${WHEELHOUSE:-}" ] && [ -d "$WHEELHOUSE" ]; then
        note "installing dlready's dependencies offline from $WHEELHOUSE into $DEPS_DIR"
        timeout 300 "$PY" -m pip install --quiet --no-index --find-links "$WHEELHOUSE" \
            --target "$DEPS_DIR" "${PACKAGES[@]}" >>"$ERRLOG" 2>&1
    else
        note "dependencies missing and no WHEELHOUSE: trying the network into $DEPS_DIR"
        timeout 300 "$PY" -m pip install --quiet --target "$DEPS_DIR" "${PACKAGES[@]}" \
            >>"$ERRLOG" 2>&1
    fi
    export PYTHONPATH="$PYTHONPATH:$DEPS_DIR"
fi
if ! importable "${DEPS[@]}" dlready.cli; then
    note "dlready cannot be imported with $PY (missing dependencies: see stderr.log)"
    exit 3
fi

# --- what torch is there (never imported by dlready's own parent process) -------------------------
timeout 180 "$PY" - >>"$SUMMARY" 2>>"$ERRLOG" <<'PYTHON' || note "torch: cannot be imported with $PY"
try:
    import torch
except Exception as exc:  # a missing or broken torch is reported, not raised
    print(f"torch: cannot be imported: {type(exc).__name__}: {exc}")
    raise SystemExit(1)
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "hip:", torch.version.hip)
PYTHON

# --- the steps ------------------------------------------------------------------------------------
step "check" "$CHECK_TIMEOUT_S" "$OUT/check.json" "$PY" -m dlready check --json

if command -v nvidia-smi >/dev/null 2>&1; then
    step "nvidia-smi" "$SMI_TIMEOUT_S" "$OUT/nvidia-smi.csv" nvidia-smi \
        --query-gpu=index,name,uuid,pci.bus_id,driver_version,compute_cap,memory.total,memory.used,power.limit,power.default_limit,power.max_limit,enforced.power.limit,power.draw,temperature.gpu,clocks.sm,clocks.max.sm,clocks.max.memory,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,persistence_mode \
        --format=csv
    step "compare" 60 "$OUT/compare.txt" \
        "$PY" "$REPO/scripts/compare_with_nvidia_smi.py" "$OUT/check.json" "$OUT/nvidia-smi.csv"
    tail -n 1 "$OUT/compare.txt" | sed 's/^/compare: /' >>"$SUMMARY"
else
    note "nvidia-smi: not installed (no NVIDIA driver on this machine)"
    printf 'nvidia-smi not installed\n' >"$OUT/nvidia-smi.csv"
    printf 'nothing to compare: nvidia-smi not installed\n' >"$OUT/compare.txt"
fi

step "smoke-full" "$SMOKE_FULL_TIMEOUT_S" "$OUT/smoke-full.json" \
    "$PY" -m dlready smoke --device cuda --full --json
step "smoke-quick" "$SMOKE_QUICK_TIMEOUT_S" "$OUT/smoke-quick.txt" \
    "$PY" -m dlready smoke --device cuda
step "smoke-burn" "$BURN_TIMEOUT_S" "$OUT/smoke-burn.json" \
    "$PY" -m dlready smoke --device cuda --burn "$BURN_S" --json

# A one-line digest of each JSON report, for a quick read of summary.txt.
for report in smoke-full smoke-burn; do
    timeout 60 "$PY" - "$OUT/$report.json" >>"$SUMMARY" 2>>"$ERRLOG" <<'PYTHON' || true
import json, sys
path = sys.argv[1]
try:
    document = json.load(open(path))
except (OSError, ValueError) as exc:
    print(f"{path}: no JSON ({exc})")
    raise SystemExit(0)
data = document.get("data") or {}
print(f"{path}: exit {document.get('exit_code')}, counts {data.get('counts')}")
for device in data.get("devices", []):
    for check in device.get("checks", []):
        if check["status"] == "skipped":
            continue
        if check["name"].startswith(("speed.", "burn", "device")) or check["status"] != "pass":
            expected = check.get("expected") or {}
            percent = expected.get("percent")
            share = f" ({percent:.0f} % of {expected.get('value')})" if percent else ""
            print(f"  {check['name']}: {check['status']}: {check['message']}{share}")
PYTHON
done

note "outputs: $(cd "$OUT" && ls | tr '\n' ' ')"
exit 0
