# Every target creates the virtual environment itself, so a fresh clone needs only `make test` / `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: venv test demo bench clean

venv: $(STAMP)

# torch is installed first and pinned, so the package's torch range does not pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench,ray]'
	touch $(STAMP)

test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
