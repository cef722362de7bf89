#!/usr/bin/env bash
# scripts/gpu-check.sh: run dlready's CUDA path end to end on a GPU machine and keep the output.
#
# What it runs, each step under `timeout` with the limit given (seconds; each is an environment
# variable of the same name), so nothing can hang the script:
#   1. dlready check --json                                   -> check.json        CHECK_TIMEOUT_S 30
#   2. dlready check at 100 columns (the human report)         -> check.txt         CHECK_TEXT_TIMEOUT_S 20
#   3. nvidia-smi --query-gpu=... --format=csv (to compare)    -> nvidia-smi.csv    SMI_TIMEOUT_S 10
#      and the field-by-field comparison of the two             -> compare.txt       10
#   4. dlready smoke --device cuda --full --json               -> smoke-full.json   SMOKE_FULL_TIMEOUT_S 100
#   5. dlready smoke --device cuda (human table, quick)        -> smoke-quick.txt   SMOKE_QUICK_TIMEOUT_S 30
#   6. dlready smoke --device cuda --burn ${BURN_S:-20} --json -> smoke-burn.json   BURN_TIMEOUT_S BURN_S+30
#   7. torchrun --standalone --nproc-per-node N -m dlready fleet --backend nccl --json
#      --timeout ${FLEET_STEP_S:-20} over every GPU torch sees  -> fleet.json        FLEET_TIMEOUT_S 100
#      (N from torch.cuda.device_count(); without a CUDA GPU one process on gloo) and its
#      Markdown copy (fleet --output)                          -> fleet.md
#   8. dlready fit TinyLlama-1.1B --task train --measure --json -> fit-train.json    FIT_TIMEOUT_S 40
#   9. dlready fit TinyLlama-1.1B --task infer --measure --json -> fit-infer.json    FIT_TIMEOUT_S 40
#      (tests/fixtures/hf_configs/tinyllama-1.1b.json, batch 1 x ${FIT_SEQ:-2048} tokens, bf16;
#      --measure-timeout is FIT_TIMEOUT_S - 10 so that fit reports its own timeout)
# plus summary.txt (environment, each step's exit code and seconds, and a digest of every JSON
# report by scripts/gpu_check_digest.py: smoke's speeds, fleet's bf16 TFLOP/s per GPU against
# the spec sheet and all_reduce bus bandwidth, fit's estimate / measured per item) and
# stderr.log (every step's stderr). That is 13 files, all in "${OUT:-./gpu-check-out}" (created
# if missing).
#
# Time: the limits above add up to 430 s with BURN_S=20, plus at most 20 + 20 + 30 s for the
# dependency and torch look-ups before the steps: 500 s (8 min 20 s) worst case, more only when
# dependencies must be installed from $WHEELHOUSE (300 s at most). On a healthy H100/H200 server
# the steps take a few seconds to a minute each.
#
# On a machine that hands back only a few files (this project's lent GPU machine returns at most
# 8 from its $OUT), write into a scratch folder and pack it:
#   OUT=/tmp/gpu-check bash scripts/gpu-check.sh; tar -czf "$OUT/gpu-check.tgz" -C /tmp gpu-check
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
CHECK_TIMEOUT_S="${CHECK_TIMEOUT_S:-30}"
CHECK_TEXT_TIMEOUT_S="${CHECK_TEXT_TIMEOUT_S:-20}"
SMI_TIMEOUT_S="${SMI_TIMEOUT_S:-10}"
SMOKE_FULL_TIMEOUT_S="${SMOKE_FULL_TIMEOUT_S:-100}"
SMOKE_QUICK_TIMEOUT_S="${SMOKE_QUICK_TIMEOUT_S:-30}"
BURN_TIMEOUT_S="${BURN_TIMEOUT_S:-$((BURN_S + 30))}"
FLEET_STEP_S="${FLEET_STEP_S:-20}"
FLEET_TIMEOUT_S="${FLEET_TIMEOUT_S:-100}"
FIT_SEQ="${FIT_SEQ:-2048}"
FIT_TIMEOUT_S="${FIT_TIMEOUT_S:-40}"
FIT_MODEL="$REPO/tests/fixtures/hf_configs/tinyllama-1.1b.json"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/dlready-gpu-check.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

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
    timeout 20 "$PY" - "$@" 2>>"$ERRLOG" <<'PYTHON'
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
    DEPS_DIR="$SCRATCH/deps"
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
# The last line is the number of CUDA GPUs torch sees (CUDA_VISIBLE_DEVICES honoured): the fleet's
# process count.
TORCH_INFO="$(timeout 30 "$PY" - 2>>"$ERRLOG" <<'PYTHON'
try:
    import torch
except Exception as exc:  # a missing or broken torch is reported, not raised
    print(f"torch: cannot be imported: {type(exc).__name__}: {exc}")
    raise SystemExit(1)
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "hip:", torch.version.hip)
print(torch.cuda.device_count())
PYTHON
)"
TORCH_RC=$?
if [ "$TORCH_RC" -eq 0 ]; then
    note "$(printf '%s\n' "$TORCH_INFO" | head -n 1)"
    CUDA_GPUS="$(printf '%s\n' "$TORCH_INFO" | tail -n 1)"
    note "CUDA GPUs torch sees: $CUDA_GPUS"
else
    note "${TORCH_INFO:-torch: no answer from $PY (exit $TORCH_RC; stderr.log says why)}"
    CUDA_GPUS=""
fi

# --- the steps ------------------------------------------------------------------------------------
step "check" "$CHECK_TIMEOUT_S" "$OUT/check.json" "$PY" -m dlready check --json
step "check-text" "$CHECK_TEXT_TIMEOUT_S" "$OUT/check.txt" env COLUMNS=100 "$PY" -m dlready check

if command -v nvidia-smi >/dev/null 2>&1; then
    step "nvidia-smi" "$SMI_TIMEOUT_S" "$OUT/nvidia-smi.csv" nvidia-smi \
        --query-gpu=index,name,uuid,pci.bus_id,driver_version,compute_cap,memory.total,memory.used,power.limit,power.default_limit,power.max_limit,enforced.power.limit,power.draw,temperature.gpu,clocks.sm,clocks.max.sm,clocks.max.memory,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,persistence_mode \
        --format=csv
    step "compare" 10 "$OUT/compare.txt" \
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

# fleet over every GPU torch sees, on NCCL; without a CUDA GPU one process on gloo (the CPU path);
# without torch, plain `dlready fleet`, which says in its envelope why it cannot run.
FLEET=("$PY" -m dlready fleet --json --timeout "$FLEET_STEP_S" --output "$SCRATCH/fleet")
if [ -z "$CUDA_GPUS" ]; then
    note "fleet: torch did not answer, so no launcher: dlready fleet says why in fleet.json"
    step "fleet" "$FLEET_TIMEOUT_S" "$OUT/fleet.json" "${FLEET[@]}"
else
    if [ "$CUDA_GPUS" -gt 0 ] 2>/dev/null; then
        NPROC="$CUDA_GPUS"
        FLEET+=(--backend nccl)
    else
        NPROC=1
        note "fleet: no CUDA GPU, so one process on gloo"
    fi
    step "fleet" "$FLEET_TIMEOUT_S" "$OUT/fleet.json" "$PY" -m torch.distributed.run --standalone \
        --nproc-per-node "$NPROC" -m dlready "${FLEET[@]:3}"
fi
if [ -s "$SCRATCH/fleet/fleet.md" ]; then
    cp "$SCRATCH/fleet/fleet.md" "$OUT/fleet.md"
else
    printf 'fleet wrote no Markdown report: see fleet.json and stderr.log\n' >"$OUT/fleet.md"
fi

# fit: TinyLlama 1.1B, one block built and measured with torch (on the GPU when torch has one).
for task in train infer; do
    step "fit-$task" "$FIT_TIMEOUT_S" "$OUT/fit-$task.json" "$PY" -m dlready fit "$FIT_MODEL" \
        --task "$task" --seq "$FIT_SEQ" --json --measure \
        --measure-timeout "$((FIT_TIMEOUT_S > 20 ? FIT_TIMEOUT_S - 10 : FIT_TIMEOUT_S))"
done

# A digest of each JSON report, for a quick read of summary.txt.
for report in smoke:smoke-full smoke:smoke-burn fleet:fleet fit:fit-train fit:fit-infer; do
    timeout 30 "$PY" "$REPO/scripts/gpu_check_digest.py" "${report%%:*}" \
        "$OUT/${report#*:}.json" >>"$SUMMARY" 2>>"$ERRLOG" || note "${report#*:}: no digest"
done

note "outputs: $(cd "$OUT" && ls | tr '\n' ' ')"
exit 0
