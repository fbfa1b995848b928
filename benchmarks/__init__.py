"""Jarvis Router benchmarks: the router measured against direct access to the node, same run.

__main__.py    argparse: `python -m benchmarks run|profile|fleet-scale`
procs.py       child processes (own session, taskset), /proc CPU and RSS sampling
node.py        process entry: one or many emulated Ollama nodes (`EmulatorConfig` knobs)
floor.py       the "Python floor": a bare aiohttp pass-through with no translation
targets.py     what a target is (URL, protocol, headers) and how each one starts
nginx.conf     the nginx pass-through template; litellm.py writes LiteLLM's config
loadgen.py     the aiohttp load generator (process entry): latency, TTFT, tokens
wrk.py         wrk with a Lua script for S1 at high concurrency
scenarios.py   S1..S5, memory and the concurrency sweep
fleet_scale.py S5's micro-benchmark of the pure routing and health bookkeeping
stats.py       percentiles and the aggregation of repeats
report.py      tables and the generated part of RESULTS.md
plot.py        latency vs concurrency PNG (matplotlib, the `bench` extra)
pyspy.py       py-spy against the router under load: where the time goes
"""
