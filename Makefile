# Vigil: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/vigil: pyproject.toml setup.py src/vigil/engine/_blockscan.c src/vigil/engine/_batchwalk.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/vigil

demo: $(BIN)/vigil
	$(BIN)/vigil demo

test: $(BIN)/vigil
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -q

lint: $(BIN)/vigil
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(BIN)/vigil
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info src/vigil/engine/*.so
