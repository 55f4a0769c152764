# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test test-simgpu lint bench clean

# Quiet: a newcomer's first `make run` should show the training, not pip's and setuptools' build chatter
# (errors still print).
$(VENV)/.installed: pyproject.toml
	@echo "installing playgrad into $(VENV) (first run only)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	@$(PIP) install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	touch $@

## run: install into .venv and run the main job
run: $(VENV)/.installed
	$(PY) scripts/main_job.py

## test: install the dev extras and run the whole test suite
test: $(VENV)/.installed-dev
	@if command -v npm >/dev/null && [ ! -f tests/tfjs/node_modules/@tensorflow/tfjs/package.json ]; then (cd tests/tfjs && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)) || echo "npm install failed: the TF.js tests will be skipped"; fi
	@if command -v npm >/dev/null && [ ! -f tests/metacar_js/node_modules/pixi.js/package.json ]; then (cd tests/metacar_js && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)) || echo "npm install failed: the MetaCar parity test (original in Chromium) will be skipped"; fi
	$(PY) -m ruff check .
	# Two test processes on two cores: one BLAS thread each, or they fight over the cores.
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy \
		$(PY) -m pytest -n 2 -q
	$(MAKE) --no-print-directory test-simgpu

## test-simgpu: the GPU code paths on a strict NumPy stand-in for CuPy (tests/simgpu/fake_cupy.py), as
## scripts/gpu_checks.sh runs them on a real GPU: core tests on the host with the `device` fixture's "gpu",
## the agent smoke runs, then the core (as on a GPU machine's `make test`, where auto picks the GPU) and
## envs/agents/transfer/scripts with the GPU as the active backend
test-simgpu: $(VENV)/.installed-dev
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy \
		PLAYGRAD_SIMULATED_GPU=1 RL_DEVICE=cpu $(PY) -m pytest -n 2 -q -p no:cacheprovider tests/rl tests/simgpu
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy \
		PLAYGRAD_SIMULATED_GPU=1 RL_DEVICE=gpu $(PY) -m pytest -n 2 -q -p no:cacheprovider tests/rl tests/envs tests/agents \
		tests/transfer tests/scripts

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
