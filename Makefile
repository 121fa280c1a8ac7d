# The two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned in the same pip command as the packages that need it, so pip takes the
# CPU build that lies on this kind of machine instead of downloading a CUDA build.
TORCH := torch==2.13.0

.PHONY: serve test install-serve install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install-serve: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[train,dev]" $(TORCH)

serve: install-serve
	$(BIN)/eyescreen serve

test: install-test
	$(BIN)/python -m pytest -ra

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
