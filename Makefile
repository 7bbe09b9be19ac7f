# One entry point for every routine job. The virtual environment lives in .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Written once .venv holds the project; every target that runs the project depends on it, so a
# fresh clone needs only `make demo` or `make test` (the environment is created first).
STAMP  := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-all lint format bench bench-training bench-training-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[dev,export]"
	-$(VENV)/bin/pre-commit install
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev and export extras

demo: $(STAMP)  ## train + evaluate the demo model on the synthetic stand-in dataset (CPU, ~10 min)
	$(PY) -m src.train experiment=demo

test: $(STAMP)  ## fast test suite (excludes tests marked slow)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" -q -n auto --dist loadscope

test-all: $(STAMP)  ## every test, slow ones included
	WANDB_MODE=disabled $(PY) -m pytest -q

lint: $(STAMP)  ## pre-commit hooks on every file (ruff lint + format, hygiene), offline
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pre-commit run -a

format: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: $(STAMP)  ## efficiency benchmarks; results land in experiments/bench/
	$(PY) -m src.bench

bench-training: $(STAMP)  ## whole-run training throughput + paper run / Table 9 estimates (GPU: experiments/bench/gpu.json)
	$(PY) -m src.bench training

bench-training-quick: $(STAMP)  ## the same at 64 px with a few batches per epoch (CPU, ~1.5 min)
	$(PY) -m src.bench training --quick

clean:
	rm -rf outputs multirun logs .pytest_cache
