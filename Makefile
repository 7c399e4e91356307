# Quick start: `make demo` (install + synthetic demo) and `make test` (install + lint + tests).
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch; a machine with an NVIDIA driver gets PyPI's default (CUDA) build.
TORCH_CPU ?= torch==2.13.0
TORCH_GPU ?= torch
PIP_FLAGS ?= --disable-pip-version-check -q
OUT ?= runs/demo

BIN := $(VENV)/bin
STAMP := $(VENV)/.olr-installed

.PHONY: install demo test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing $(TORCH_GPU)"; \
		$(BIN)/pip install $(PIP_FLAGS) "$(TORCH_GPU)"; \
	else \
		echo "no NVIDIA GPU: installing the CPU build $(TORCH_CPU)"; \
		$(BIN)/pip install $(PIP_FLAGS) "$(TORCH_CPU)"; \
	fi
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/olr demo --out $(OUT)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/pytest

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
