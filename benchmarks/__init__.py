"""The benchmarks: each prints its figures beside a ceiling measured in the same run.

Run one with `python -m benchmarks.bench_core [--quick]` (likewise bench_dispatcher, bench_in_flight, bench_server,
bench_cpp, bench_godot, bench_unity) from the repository root, or all with `python -m benchmarks.run_all [--quick]`
(`make bench`, `make bench BENCH_ARGS=--quick`).
Their support (a daemon, a sandbox, free ports, waiting) is `benchmarks.support`.
"""
