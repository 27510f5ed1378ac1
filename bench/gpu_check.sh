#!/usr/bin/env bash
# The GPU check (issue 14), one call of a few minutes on a machine with a CUDA GPU:
#   bash bench/gpu_check.sh                 # from the repository root
#   bash bench/gpu_check.sh --cpu-dry-run   # the same steps on the CPU, tiny model (checks the script)
# Needs torch (CUDA build), transformers, accelerate and peft; writes bench/results/gpu-<card>.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false

echo "== card"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "no nvidia-smi on this machine"
fi

echo "== tests marked cuda"
TESTS_JSON="$(mktemp)"
"$PY" -m pytest -m cuda tests/test_gpu.py -q -p no:cacheprovider -rs 2>&1 | tee "$TESTS_JSON.log"
TEST_RC=${PIPESTATUS[0]}
"$PY" - "$TESTS_JSON.log" "$TEST_RC" > "$TESTS_JSON" <<'PYEOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
summary = next((l for l in reversed(lines) if " in " in l and ("passed" in l or "skipped" in l or "failed" in l)), "")
print(json.dumps({"returncode": int(sys.argv[2]), "summary": summary.strip("= ")}))
PYEOF

echo "== scoring and training"
"$PY" bench/gpu_check.py --tests "$TESTS_JSON" "$@"
RC=$?
rm -f "$TESTS_JSON" "$TESTS_JSON.log"
exit $(( RC != 0 ? RC : TEST_RC ))
