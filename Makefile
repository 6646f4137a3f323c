# Two commands do all the set-up: `make demo` and `make test` (see README.md).
# The virtual environment is created on first use. torch is installed first, as the CPU wheel
# named by TORCH_SPEC, so that pip never pulls a multi-GB CUDA build on a CPU-only machine.
# GPU users: make TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126 demo

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_OUT ?= voxelwise-demo
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/voxelwise demo --out $(DEMO_OUT)

# pytest exits 5 when it collected no test: treat that as a failure, not a pass.
test: $(BIN)/.installed
	$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$status

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
