# Benchmark targets (included by the Makefile). `make test` runs the smoke test through pytest
# (tests/benchmarks); `bench-smoke` runs it alone.
.PHONY: bench bench-peers bench-smoke bench-relay bench-replicas

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]' py-spy
	touch $(BENCH_STAMP)

## bench-smoke: every benchmark scenario once for about a second (that it runs, not how fast)
bench-smoke: $(STAMP)
	$(VENV)/bin/pytest -q tests/benchmarks

## bench: every scenario x 3 against direct, the Python floor, nginx and LiteLLM (when installed:
## make bench-peers); ~25 min; rewrites the generated part of benchmarks/RESULTS.md and its plot;
## then the replicas benchmark (~1 min, needs redis-server), its tables in benchmarks/out/
bench: $(BENCH_STAMP)
	$(PY) -m benchmarks run --repeats 3 --profile --write-results
	$(MAKE) --no-print-directory bench-replicas

## bench-relay: issue 16's targets only: S1 (per request; also the router with
## routing.gather: whole) and S6 (per token) against the bare relay, direct, floor and router
## x 3 (~7 min); tables in benchmarks/out/<run>/tables.md, one run directory each; then what
## each per-request piece costs (python -m benchmarks.costs) and where S1's CPU goes at c=64,
## stage by stage against the relay (python -m benchmarks.ladder, ~3 min)
bench-relay: $(BENCH_STAMP)
	$(PY) -m benchmarks run --scenario S1 --repeats 3 --targets direct,floor,router,router-whole
	$(PY) -m benchmarks run --scenario S6 --repeats 3 --targets direct,floor,router
	$(PY) -m benchmarks.costs
	$(PY) -m benchmarks.ladder --repeats 3

## bench-replicas: python -m benchmarks.replicas (1, 2, 4 replicas; with Redis: a 3x slower
## node's share, p99 against round_robin, failed requests); ~1 min; benchmarks/out/replicas.md
bench-replicas: $(STAMP)
	mkdir -p benchmarks/out
	$(PY) -m benchmarks.replicas > benchmarks/out/replicas.md
	cat benchmarks/out/replicas.md

## bench-peers: wrk and nginx (make system-deps) and LiteLLM in its own venv, .venv-litellm
bench-peers: system-deps
	test -x .venv-litellm/bin/litellm || { $(PYTHON) -m venv .venv-litellm && \
	  .venv-litellm/bin/pip install --quiet --upgrade pip && \
	  .venv-litellm/bin/pip install --quiet 'litellm[proxy]'; }
