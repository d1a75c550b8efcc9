# The two commands of the README's Quick start are `make demo` and `make test`; each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test oracle oracle-long run bench bundle setup system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

system-deps:
	./scripts/install-system-deps.sh

demo: setup
	$(PY) -m bridge demo

run: setup
	$(PY) -m bridge run

# The quality gate, the suite with line coverage of bridge/ (daemons included), then the oracle suite.
# The suite runs in pytest-xdist workers (more than the 2 cores: its tests mostly wait on daemons, engines and
# sandboxes), each handed its next test as it frees up, the longest first (tests/conftest.py); coverage follows
# the workers and the daemons they start (patch = ["subprocess"]). PYTEST_PARALLEL= runs it in one process. Then
# the tests marked `alone` (shipped games that launch and kill their daemons), one at a time.
PYTEST_PARALLEL ?= -n 3 --dist load --maxschedchunk 1
test: setup system-deps
	$(PY) -m ruff check bridge tests benchmarks
	$(PY) -m mypy
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest $(PYTEST_PARALLEL) -m "not alone"
	$(PY) -m coverage run -m pytest -m alone
	$(PY) -m coverage combine -q
	$(PY) -m coverage report
	$(PY) -m tests.oracle

# The oracle suite alone: misbehaving clients, peers, providers and disks against a real daemon (CI: quick).
oracle: setup system-deps
	$(PY) -m tests.oracle

# Its soak: >= 1M events, >= 20 kills, >= 100k fuzzed frames (the README's reliability figures).
oracle-long: setup system-deps
	$(PY) -m tests.oracle --long

# Every benchmarks/bench_*.py, one after the other (run_all), bench_server's dedicated-server scenarios among them
# (about 5 minutes in full). BENCH_ARGS go to each: `make bench BENCH_ARGS=--quick` for the short runs.
BENCH_ARGS ?=
bench: setup system-deps
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

# The self-contained daemon a game ships (README, "Shipping with a game"): one folder, dist/engine-bridge.
bundle: setup
	$(PY) -m bridge bundle --out dist

clean:
	rm -rf $(VENV) build dist *.egg-info
