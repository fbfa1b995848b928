# Benchmark targets (included by the Makefile). `make test` runs the smoke test through pytest
# (tests/benchmarks); `bench-smoke` runs it alone.
.PHONY: bench bench-peers bench-smoke

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]' py-spy
	touch $(BENCH_STAMP)

## bench-smoke: every benchmark scenario once for about a second (that it runs, not how fast)
bench-smoke: $(STAMP)
	$(VENV)/bin/pytest -q tests/benchmarks

## bench: every scenario x 3 against direct, the Python floor, nginx and LiteLLM (when installed:
## make bench-peers); ~20 min; rewrites the generated part of benchmarks/RESULTS.md and its plot
bench: $(BENCH_STAMP)
	$(PY) -m benchmarks run --repeats 3 --profile --write-results

## bench-peers: wrk and nginx (make system-deps) and LiteLLM in its own venv, .venv-litellm
bench-peers: system-deps
	test -x .venv-litellm/bin/litellm || { $(PYTHON) -m venv .venv-litellm && \
	  .venv-litellm/bin/pip install --quiet --upgrade pip && \
	  .venv-litellm/bin/pip install --quiet 'litellm[proxy]'; }
