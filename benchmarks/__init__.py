"""Jarvis Router benchmarks: the router measured against direct access to the node, same run.

__main__.py    argparse: `python -m benchmarks run|report|profile|fleet-scale`
bench.mk       make bench, bench-relay, bench-replicas, bench-peers, bench-smoke (Makefile)
procs.py       child processes (own session, taskset), /proc CPU/RSS sampling, lag prober
node.py        process entry: one or many emulated Ollama nodes (`EmulatorConfig` knobs)
floor.py       the "Python floor": a bare aiohttp pass-through with no translation
targets.py     what a target is (URL, protocol, headers) and how each one starts
nginx.conf     the nginx pass-through template; litellm.py writes LiteLLM's config
loadgen.py     process entry: the aiohttp load generator (latency, TTFT, tokens)
wrk.py         wrk with a Lua script, for S1 at c=64
scenarios.py   S1-S3, S6 and the concurrency sweep
streams.py     S6 (many slow streams): why its size, the router's other APIs as targets, its table
soak.py        S4 (5,000 idle streams) and the memory soak
fleet_scale.py S5: the pure routing/health parts at 1,000 nodes, and 200 real nodes
stats.py       percentiles, one measurement, aggregation of repeats
checks.py      the targets of issue 5 against one run
checks_relay.py the targets of issue 16 (the router against the bare relay) against one run
report.py      tables and the generated part of RESULTS.md
plot.py        latency vs concurrency PNG (matplotlib, the `bench` extra)
pyspy.py       py-spy against the router under load: where the time goes
replicas.py    router replicas with and without coordination (its own entry point)
replicas_slow.py  its second table: with Redis, a 3x slower node's share, p99 vs round-robin
strategies.py  routing strategies on one replayed open-loop workload (its own entry point)
closed_loop.py closed-loop light/full load per strategy, affinity on/off (its own entry point)
"""
