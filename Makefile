# Every target bootstraps .venv itself (idempotent: reinstalls only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export WANDB_SILENT := true

.PHONY: venv test repro params bench bench-quick bench-gpu check-gpu lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15

repro: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro

# Regenerate params.yaml from conf/pipeline.yaml (what `dvc exp run` does with Hydra on).
params: $(STAMP)
	$(PY) -c "import os; from dvc.utils.hydra import compose_and_dump as c; c('params.yaml', os.path.abspath('conf'), None, 'pipeline', '', [])"

bench: $(STAMP)
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.gated_feedback
	$(PY) -m benchmarks.pipeline_overhead
	$(PY) -m benchmarks.variants
	$(PY) -m benchmarks.fused_auto
	$(PY) -m benchmarks.gated_feedback_variants

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --quick

# CUDA machines only (torch + Triton): GPU speed/memory table, and the Triton backend's checks.
bench-gpu: $(STAMP)
	PYTHONPATH=src $(PY) -m benchmarks.gpu

check-gpu: $(STAMP)
	PYTHONPATH=src $(PY) -m benchmarks.check_gpu

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf outputs .pytest_cache .ruff_cache
