# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's native build (AVX-512/AMX) can crash on some CPUs: build a portable one.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
DEMO_OUT ?= runs/demo
DEMO_N ?= 20

.PHONY: install install-train install-test demo test check bench bench-docs bench-quick clean docs

# Installs are recorded in stamp files, redone when a pyproject.toml changes (`make clean`
# starts over), so `make check` does not spend its time in pip.
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(INSTALLED)

# The embedded engine first, on its own: PyPI has llama-cpp-python as source only, and its
# build takes minutes. scripts/install_engine.py says so before it starts and shows its
# progress; the rest installs quietly. Then the engine's smoke test, which rebuilds it once
# without pip's cache if it fails (and says so only then).
$(INSTALLED): pyproject.toml | $(BIN)/python
	@$(BIN)/python scripts/install_engine.py
	$(BIN)/pip install --quiet -e '.[embedded,report]'
	@$(BIN)/python scripts/check_engine.py --rebuild
	touch $@

# Fine-tuning (selfinstruct finetune, the transformers backend): torch 2.13.0 is a CPU build.
install-train: install
	$(BIN)/pip install --quiet -e '.[embedded,report,train]'

# The tests' example backend plug-in (tests/plugin_backend) is not installed: its tests put
# it on the path while they run, so the commands never offer it.
install-test: $(TEST_INSTALLED)

$(TEST_INSTALLED): $(INSTALLED)
	$(BIN)/pip install --quiet -e '.[embedded,report,train,test,docs]'
	touch $@

demo: install
	$(BIN)/selfinstruct run --out $(DEMO_OUT) --num-instructions $(DEMO_N)

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site
	$(BIN)/python -m pytest -q -n 2

# The fast inner loop, under 60 s on 2 cores: lint, format check, types, import contracts, and
# the fast lane's tests (those not marked slow: no server, no process, no model; conftest fails
# one that starts either), with fewer fuzz examples. `make test` runs them all.
check: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -m "not slow" --hypothesis-profile=fast -n 2

# Every figure the docs state, measured again (benchmarks/claims; BENCHMARKS.md says how):
# `make bench-docs` compares them with the docs and fails when one is off by more than its
# tolerance, `make bench-quick` does the same at small sizes in a few minutes, and `make bench`
# re-measures them all and keeps them (benchmarks/results/, filled into the docs).
bench-docs: install-test
	$(BIN)/python -m benchmarks.claims

bench-quick: install-test
	$(BIN)/python -m benchmarks.claims --quick

bench: install-test
	$(BIN)/python -m benchmarks.claims --update

# The documentation site (docs/, mkdocs.yml), served at http://127.0.0.1:8000 while you edit.
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) runs .pytest_cache
