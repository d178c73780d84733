#!/usr/bin/env bash
# On the GPU machine, from the folder holding fraudcore/ and scripts/: reassemble the split xgboost wheel, install
# it and the other carried wheels into /tmp/site, generate simulator data and run scripts/gpu_check.py.
# Usage: bash scripts/gpu_device_run.sh PARTS_DIR WHEELS_DIR OUT_DIR [ROWS]   (see docs/gpu.md)
set -uo pipefail
parts=$1 wheels=$2 out=$3 rows=${4:-300000}
mkdir -p "$out" /tmp/xgbwheel
{
  echo "== $(date -u +%FT%TZ) $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  cat "$parts"/xgb.part? > /tmp/xgbwheel/xgboost-3.2.0-py3-none-manylinux_2_28_x86_64.whl
  sha256sum -c "$parts/sha.txt" || exit 2
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    /tmp/xgbwheel/*.whl "$wheels"/*.whl || exit 3
  export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
  python3 -c "import sys, xgboost, duckdb, pydantic, pandas, numpy, numba, sklearn; print(sys.version.split()[0],
    'xgboost', xgboost.__version__, xgboost.build_info()['USE_CUDA'], 'duckdb', duckdb.__version__, 'pydantic',
    pydantic.VERSION, 'pandas', pandas.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__,
    'sklearn', sklearn.__version__)" || exit 4
  TIMEFORMAT="generate: %R s wall, %U s user"
  time python3 -m fraudcore generate --rows "$rows" --out /tmp/d.parquet
  timeout 480 python3 scripts/gpu_check.py --data /tmp/d.parquet --json "$out/results.json"
  echo "== gpu_check exit $?; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out/log"
