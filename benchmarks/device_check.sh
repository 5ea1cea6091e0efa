#!/usr/bin/env bash
# Issue 14's accelerator goals in one run, sized for a few minutes of a lent GPU (or a TPU VM):
#   XLM-R large, bf16, sequence 256: xtjax's model FLOPs against the chip's dense bf16 peak
#   (`fraction_of_spec_peak`, goal >= 0.45) and the ratio against Hugging Face PyTorch on the
#   same chip; then the base model at the CPU benchmark's shape, for the record.
# Each JSON line goes to $OUT (default /tmp/xtjax_device) and to stdout.
#
# The machine needs jax (with its accelerator plugin), flax, optax, orbax-checkpoint,
# transformers and torch. xtjax's other imports on this path (grain, array-record,
# ml-collections, portpicker) may travel as wheels in .whl/, which this script installs first:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl grain array-record ml-collections portpicker
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/xtjax_device}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/xtjax_site .whl/*.whl
  export PYTHONPATH=/tmp/xtjax_site${PYTHONPATH:+:$PYTHONPATH}
fi
# The CPU process settings (common.ENV) do not apply on an accelerator.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} XTJAX_DEFAULT_ENV=1 PYTHONUNBUFFERED=1
python3 -c "import jax; print(jax.__version__, jax.devices())"

run() {  # NAME ARGS...: one benchmark, its last line (the JSON object) kept as NAME.json
  local name=$1
  shift
  python3 "$@" 2>&1 | tee "$out/$name.log"
  tail -n 1 "$out/$name.log" > "$out/$name.json"
}
run train_large_bf16_256 benchmarks/train_throughput.py --preset large --length 256 --batch 32 \
  --dtype bfloat16 --steps 10
run train_base_bf16_128 benchmarks/train_throughput.py --preset base --dtype bfloat16 --steps 10
