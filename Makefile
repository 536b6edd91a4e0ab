# Two commands do all the set-up on a fresh machine (Python 3.11+, no ROS install needed):
#   make demo   creates .venv if needed and runs the demo
#   make test   creates .venv if needed and runs linters and the whole test suite (CI)
#   make check  linters + the fast tier: no slow or integration tests (under a minute)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests isolate their ROS traffic and logs; see test/conftest.py.
PYTEST_ARGS ?=
# pytest caches its rewritten test modules as bytecode; with PYTHONDONTWRITEBYTECODE set (some
# shells and images set it) it rewrites all of them on every run: ~7 s of make check's minute.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

.PHONY: demo test check lint venv clean

venv: $(STAMP)

$(STAMP): .ci/requirements.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r .ci/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/depth-perception demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(PYTEST) $(PYTEST_ARGS)

# The tiers are the markers of test/conftest.py: `integration` (test/integration/: ROS 2 node
# processes, end-to-end tools, packaging) and `slow` by rule (models other than the smallest,
# large model families, other processes, ONNX exports, KNOWN_SLOW). What is left of test/unit/
# and test/contract/ is the fast tier: ~45 s of CPU time.
check: $(STAMP) lint
	$(PYTEST) -m "not slow and not integration" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build install log demo_output *.egg-info
