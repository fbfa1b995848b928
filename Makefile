# Jarvis Router: `make run` starts the demo, `make test` runs every check. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: setup system-deps run test lint format pytest fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## system-deps: the system tools the tests run (redis-server, promtool, chromium, wrk, nginx,
## node): installed with apt-get when root, else one line saying what to run (scripts/system-deps)
system-deps:
	@scripts/system-deps

## run: the router on an embedded demo fleet (3 emulated Ollama nodes) at 127.0.0.1:8080
run: $(STAMP)
	$(VENV)/bin/jarvis-router demo

## lint: formatting, lint rules and strict typing
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

pytest: $(STAMP)
	$(VENV)/bin/pytest

## test: the system tools, lint, the deployment checks (render, validate, scan) and the whole
## test suite (pytest also runs tests/deploy, which needs the tools deploy-manifests installs)
test: system-deps lint deploy-manifests pytest

## fuzz: schemathesis against /openapi.json of a router on the demo fleet, bounded (50 examples
## an operation, about two minutes); not part of `make test`. What it found: docs/fuzz.md
fuzz: $(STAMP)
	scripts/fuzz-openapi $(VENV)

clean: deploy-clean
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

include deploy/deploy.mk
include benchmarks/bench.mk
