#!/usr/bin/env bash
# The GPU check: everything kmat does on CUDA, in one run of under 8 minutes, summed up in one table.
#
#   benchmarks/gpu_check.sh [REPORT.md]        (default gpu-check.md; logs in REPORT's folder, gpu-check-logs/)
#
# 1. the tests marked `cuda` (pytest -m cuda): a K-MaT training on cuda against the CPU, with and without
#    mixed precision; the transport on cuda inputs, solved on the CPU and returned on cuda; predict on cuda;
# 2. benchmarks/device_compare.py: a 10-epoch phantom K-MaT training on cpu, cuda and cuda with mixed
#    precision, evaluated; accuracy within 2 points (5 with mixed precision) and low-end embeddings within
#    cosine 0.999 (0.99) of the CPU run;
# 3. benchmarks/speed.py --quick --device cuda: the step, bound and predict timings on BiomedCLIP's
#    architecture (random weights), ending with speedup_vs_naive=... overhead_vs_bound=...
# Each step has its own time limit (100 s, 150 s, 200 s: 7.5 min in all). Without a CUDA device the
# script says so and exits 0.
# Exit code: 0 when every step passed (or there is no CUDA device), 1 otherwise.
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
REPORT="${1:-gpu-check.md}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing to check on this machine"
    exit 0
fi

LOGS="$(dirname "$REPORT")/gpu-check-logs"
mkdir -p "$LOGS" || exit 2
ROWS=()
FAILED=0

# step NAME LIMIT_S COMMAND...: run COMMAND with a time limit, log its output, add a row to the table.
step() {
    local name="$1" limit="$2" log="$LOGS/$1.log" start rc detail
    shift 2
    echo "gpu_check: $name (limit ${limit} s)" >&2
    start=$SECONDS
    timeout "$limit" "$@" >"$log" 2>&1
    rc=$?
    case "$name" in
        tests) detail="$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1)" ;;
        compare) detail="$(grep -E '^\| (cpu|cuda)' "$log" | awk -F'|' '{
            for (i = 2; i <= 8; i++) gsub(/^ +| +$/, "", $i)
            printf "%s: Hi %s, Lo %s, ok %s; ", $2, $3, $4, $8 }')" ;;
        speed) detail="$(grep -E '^speedup_vs_naive=' "$log" | tail -n 1)" ;;
    esac
    [ "$rc" -eq 124 ] && detail="time limit of ${limit} s reached; $detail"
    [ "$rc" -ne 0 ] && FAILED=1
    ROWS+=("| $name | $([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)") | $((SECONDS - start)) | ${detail//|/\/} |")
}

DEVICE="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)')"
step tests 100 "$PY" -m pytest tests -m "cuda and not slow" -q -p no:cacheprovider
step compare 150 "$PY" benchmarks/device_compare.py --runs cpu,cuda,cuda+amp --epochs 10
step speed 200 "$PY" benchmarks/speed.py --quick --device cuda

{
    echo "GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'): ${DEVICE//|/,}; logs in $LOGS"
    echo
    echo "| check | result | seconds | detail |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$REPORT.tmp" && mv "$REPORT.tmp" "$REPORT"
cat "$REPORT"
exit "$FAILED"
