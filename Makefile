# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch: on a machine without an NVIDIA GPU pin the CPU build that this project is
# developed on (torch==2.13.0; a plain `torch` would pull a multi-GB CUDA build);
# with a GPU, take a normal torch.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.1" || echo "torch==2.13.0")
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: demo test install install-dev lint bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[hf,brain,stimuli]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[hf,brain,stimuli,dev,peers]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: pyproject.toml $(VENV)/.installed-dev
	$(PY) -m pip install -q -e ".[hf,brain,stimuli,dev,peers,docs]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) -m topobrain.demo

# one BLAS thread: on a small shared machine OpenBLAS threads spin against other
# processes and make small products 50x slower (a test's speed is not what it tests)
test: $(VENV)/.installed-dev
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check topobrain tests benchmarks

# the documentation site, built offline with warnings as errors (gallery executed)
docs: $(VENV)/.installed-docs
	rm -rf docs/_build docs/generated docs/auto_examples docs/api.rst
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: $(VENV)/.installed-dev
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache docs/_build docs/generated docs/auto_examples docs/api.rst
