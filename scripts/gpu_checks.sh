#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one command for a session that is lent a device machine.
# No task so far has had one, so this script has not yet run on a GPU: read its log with care.
#
#   bash scripts/gpu_checks.sh fetch   # here, once: wheels the device image lacks -> .whl/ (git-ignored)
#   bash scripts/gpu_checks.sh run     # there, through the device tool, with carry [".whl"] and
#                                      # timeout_s ~590 (the steps add up to at most 570 s); the log lands in $OUT/gpu_checks.log
#   bash scripts/gpu_checks.sh sim     # here: the same steps on the simulated CuPy (tests/simgpu/fake_cupy.py,
#                                      # NumPy underneath) with .venv's python, to check they run end to end;
#                                      # its figures mean nothing (OUT defaults to /tmp/gpu_checks_sim); on the
#                                      # loaded 2-core machine it ran every step (rc 0), the slower test steps cut by
#                                      # their timeouts
#
# The device image has Python 3.12 with CuPy (cupy-cuda13x), PyTorch, NumPy, safetensors, tqdm,
# matplotlib, Pillow, threadpoolctl, scikit-learn and pytest; it lacks gymnasium (and its
# farama-notifications) and pygame, which travel as wheels, and the MobileNetV2 weights, which travel
# in .whl/weights (PLAYGRAD_CACHE points there). Nothing there reaches the network.
#
# The steps run in the order of what the open issues need, each under its own timeout, so a slow
# step cannot starve the figures: the GPU benchmark rows first, then the book's snake DQN, then the
# test suites on CuPy. `make test-simgpu` runs the same GPU code paths here on a NumPy stand-in first;
# the whole script ran end to end on that stand-in (rc 0, ~4 minutes on 2 cores, sections written to
# $OUT/benchmarks.md) before any device did.
set -u
cd "$(dirname "$0")/.."

case "${1:-run}" in
fetch)
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  for spec in gymnasium==1.4.0 farama-notifications==0.0.4 pygame==2.6.1; do
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$spec" || exit 1
  done
  mkdir -p .whl/weights
  py=.venv/bin/python; [ -x "$py" ] || py=python3
  weights=$("$py" -c 'from transfer.weights import mobilenet_v2_path; print(mobilenet_v2_path())') || exit 1
  cp "$weights" .whl/weights/ || exit 1
  ls -la .whl .whl/weights
  ;;
sim)
  # The simulated CuPy: tests/simgpu/site makes `import cupy` load the NumPy stand-in in every python3 below.
  [ -x .venv/bin/python ] || { echo "gpu_checks sim: needs the project venv (.venv)" >&2; exit 2; }
  export PATH=$PWD/.venv/bin:$PATH PLAYGRAD_SIMULATED_GPU=1 OPENBLAS_NUM_THREADS=1
  export PLAYGRAD_EXTRA_PYTHONPATH=$PWD/tests/simgpu/site
  OUT=${OUT:-/tmp/gpu_checks_sim} bash "$0" run
  ;;
run)
  OUT=${OUT:-/tmp/gpu_checks}
  mkdir -p "$OUT"
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || exit 1
    export PYTHONPATH=/tmp/site:$PWD
  else
    export PYTHONPATH=$PWD
  fi
  [ -n "${PLAYGRAD_EXTRA_PYTHONPATH:-}" ] && export PYTHONPATH=$PLAYGRAD_EXTRA_PYTHONPATH:$PYTHONPATH
  export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
  # The weights travel in .whl/weights to the device; in `sim` (no .whl) the usual cache serves them.
  [ -d .whl/weights ] && export PLAYGRAD_CACHE=$PWD/.whl/weights
  # The benchmarks write their sections into a copy that comes back in $OUT: diff it against docs/benchmarks.md
  # and keep the device's sections (its CPU rows beside torch there, and the GPU rows) under their own headings.
  cp docs/benchmarks.md "$OUT/benchmarks.md"
  export PLAYGRAD_BENCHMARKS_MD=$OUT/benchmarks.md
  {
    set -x
    nvidia-smi -L
    python3 -m rl info
    # 1. Issue 2's GPU row: the mnist-transfer CNN train step at batch 256, GPU vs NumPy (target >= 10x).
    timeout 100 python3 benchmarks/bench_core.py --repeats 5
    # 2. Issue 5's GPU row: MobileNetV2 inference, GPU vs NumPy (target >= 10x); torch is the device's python3.
    #    (--no-ort: the ONNX Runtime comparison is a CPU row, measured on the 2-core machine.)
    timeout 100 python3 benchmarks/bench_transfer.py --torch-python python3 --repeats 3 --rounds 1 --no-ort
    # 3. Issue 4: what one frame of the book's snake DQN costs on the GPU beside the CPU, and 1e6 frames projected;
    timeout 60 python3 benchmarks/bench_snake_dqn.py --repeats 5
    #    then the book's snake DQN on the GPU for 90 s: frames/s and the curve so far. Ctrl-C (INT)
    #    saves a checkpoint, so the run directory under $OUT can be resumed.
    timeout -s INT 60 python3 scripts/train.py configs/snake_dqn.toml --device gpu --runs-dir "$OUT/runs" --no-progress
    # 3b. Issue 16: PPO with 4096 CartPole worlds on the device (cartpole_ppo_fast's settings, 4 minibatches per
    #     epoch of a 131,072-sample rollout), then the same on the host: env steps/s in the 10 s progress lines
    #     and in each run's metrics.jsonl.
    for dev in gpu cpu; do
      timeout -s INT $([ $dev = gpu ] && echo 35 || echo 25) python3 scripts/train.py configs/cartpole_ppo_fast.toml \
        --device $dev --set agent.num_envs=4096 --set agent.batch_size=32768 --set experiment.total_steps=50000000 \
        --runs-dir "$OUT/runs_ppo4096_$dev" --no-progress
    done
    # 4. The core tests with the default (auto) backend, so CuPy, as `make test` runs them on a GPU machine
    #    (they compare through backend.to_numpy; the `device` fixture's tests run on NumPy and CuPy), then every
    #    agent config's short GPU run (tests/simgpu) and the envs and agents with the GPU as the active backend.
    timeout 90 python3 -m pytest -q -p no:cacheprovider tests/rl -x
    RL_DEVICE=gpu timeout 70 python3 -m pytest -q -p no:cacheprovider tests/simgpu tests/envs tests/agents -x
    # 5. Issue 14: the embedding pass with batches copied to the GPU by the loop vs by prefetch(device="active")
    #    in the background (a small synthetic folder made here; rows land in the bench_data section).
    timeout 30 sh -c 'python3 scripts/make_image_set.py /tmp/shapes --per-class 40 --classes 16 --workers 16 &&
      python3 benchmarks/bench_data.py --folder /tmp/shapes --skip-pipeline --device-prefetch --images 320 --rounds 3'
    set +x
  } 2>&1 | tee "$OUT/gpu_checks.log"
  ;;
*)
  echo "usage: bash scripts/gpu_checks.sh fetch|run|sim" >&2
  exit 2
  ;;
esac
