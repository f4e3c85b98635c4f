# `make up` brings the whole stack up; `make test` runs the whole suite; `make check` the fast part of it
# (tests marked `slow` by tests/conftest.py deselected). All install first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test check clean

install: $(STAMP)

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, nothing else writes .pyc files and every
# process (the Prefect server, each worker, each flow run) would compile its imports again: ~3 s each.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PYTHON) --compile-bytecode -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Where PYTHONDONTWRITEBYTECODE is set, every process would also compile ModelPulse's own modules at
# each start (each flow run's interpreter among them): they are compiled here, once per change.
OWN_PACKAGES := api blocks flows stack store tasks

up: install
	$(PYTHON) -m compileall -q $(OWN_PACKAGES)
	$(PYTHON) -m stack up

# pytest-xdist workers, each with a Prefect server of its own (tests/conftest.py); worksteal evens out
# the long tests. The whole suite waits on servers (clusters, `make up`, subprocesses) enough for three
# workers on two cores; the fast suite is CPU-bound, and two finish it sooner than three.
XDIST := -n 3 --dist worksteal
CHECK_XDIST := -n 2 --dist worksteal

# Tests write bytecode even where PYTHONDONTWRITEBYTECODE is set: otherwise each test process (and each
# server it starts) compiles ModelPulse's modules and pytest rewrites every test module again, ~4 CPU-s
# a process.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PYTHON) -m pytest

test: install
	$(PYTEST) $(XDIST) --durations=25

# The inner loop: SQLite only, no servers started per test, no clusters, no `make up`, no fuzzing.
check: install
	$(PYTEST) $(CHECK_XDIST) -m "not slow" -q -p no:cacheprovider --durations=25

clean:
	rm -rf $(VENV) .modelpulse .pytest_cache
