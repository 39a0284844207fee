# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's native build (AVX-512/AMX) can crash on some CPUs: build a portable one.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
DEMO_OUT ?= runs/demo
DEMO_N ?= 20

.PHONY: install install-train install-test demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	$(BIN)/python scripts/check_engine.py || ( \
	  echo "llama-cpp-python failed its smoke test; rebuilding it without the pip cache"; \
	  $(BIN)/pip cache remove llama_cpp_python; \
	  $(BIN)/pip install --quiet --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36 && \
	  $(BIN)/python scripts/check_engine.py )

# Fine-tuning (selfinstruct finetune, the transformers backend): torch 2.13.0 is a CPU build.
install-train: install
	$(BIN)/pip install --quiet -e '.[embedded,train]'

install-test: install
	$(BIN)/pip install --quiet -e '.[embedded,train,test]'

demo: install
	$(BIN)/selfinstruct run --out $(DEMO_OUT) --num-instructions $(DEMO_N)

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python -m benchmarks.bench_openai_throughput
	$(BIN)/python -m benchmarks.bench_rouge
	$(BIN)/python -m benchmarks.bench_memory
	$(BIN)/python -m benchmarks.bench_embedded

clean:
	rm -rf $(VENV) runs .pytest_cache
