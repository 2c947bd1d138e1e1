#!/usr/bin/env bash
# gpu_check.sh OUTDIR -- the one prepared GPU run of issue 15, for a machine with an NVIDIA GPU
# (the project's H200 device machine: python3 there has torch, pybind11, scikit-build-core,
# cmake and ninja). It builds natverk with its CUDA backend, runs every CUDA test against the
# CPU twins, then the GPU benchmark, in a few minutes, and leaves in OUTDIR:
#   gpu_check.log     everything printed
#   cuda_tests.xml    the test results (JUnit)
#   bench_gpu.json / bench_gpu.md   the benchmark (benchmarks/bench_gpu.py)
# Exit status: 0 when the build, the tests and the benchmark's own checks all passed.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
nvcc --version | tail -2
git rev-parse --short HEAD 2>/dev/null || true

stamp "build natverk with NATVERK_CUDA=ON (sm_80, sm_90 + PTX)"
site=/tmp/natverk-gpu-site
rm -rf "$site"
if ! NATVERK_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip install -q --no-build-isolation \
     --no-deps --target "$site" -Cbuild-dir=/tmp/natverk-gpu-build .; then
  echo "BUILD FAILED"; exit 2
fi
export PYTHONPATH="$site"
"$PY" -c "import natverk; natverk.show_config()" || { echo "IMPORT FAILED"; exit 3; }

stamp "CUDA tests (each kernel against its CPU twin)"
timeout 300 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -ra --junitxml="$out/cuda_tests.xml" \
  tests/test_cuda_*.py || status=4

stamp "GPU benchmark"
timeout 240 "$PY" benchmarks/bench_gpu.py --json "$out/bench_gpu.json" --md "$out/bench_gpu.md" || status=$(( status ? status : 5 ))

stamp "done, status $status"
exit $status
