# One entry point for every routine job. The virtual environment lives in .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-all lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

install: $(PY)  ## create .venv and install the project with its dev and export extras
	$(PY) -m pip install -e ".[dev,export]"
	-$(VENV)/bin/pre-commit install

demo:  ## train + evaluate the demo model on the synthetic stand-in dataset (CPU, minutes)
	$(PY) -m src.train experiment=demo

test:  ## fast test suite (excludes tests marked slow)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" -q

test-all:  ## every test, slow ones included
	WANDB_MODE=disabled $(PY) -m pytest -q

lint:  ## pre-commit hooks on every file (ruff lint + format, hygiene), offline
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pre-commit run -a

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench:  ## efficiency benchmarks; results land in experiments/bench/
	$(PY) -m src.bench

clean:
	rm -rf outputs multirun logs .pytest_cache
