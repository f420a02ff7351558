# Two commands take a fresh machine to a running (or tested) hub:
#   make run   installs what is missing, starts local Redis and Cassandra if needed,
#              applies the schema and runs server and worker (Ctrl-C stops them)
#   make test  the same set-up, then the whole suite against the real services
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-redis-cluster lint venv bench clean

run: $(STAMP)
	$(VENV)/bin/hub up

test: $(STAMP) lint
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)
	$(MAKE) test-redis-cluster

# The feed, fan-out, realtime and crash tests again, on the Redis Cluster and queue Redis
# of config.cluster.toml (started by the tests' set-up like every service).
CLUSTER_TESTS := tests/integration/test_feeds.py tests/integration/test_fanout.py \
	tests/integration/test_realtime.py tests/integration/test_crash.py
test-redis-cluster: $(STAMP)
	HUB_REDIS_CLUSTER=1 HUB_REDIS_URL=redis://127.0.0.1:7100/0 HUB_QUEUE_URL=redis://127.0.0.1:6380/0 \
	  $(VENV)/bin/python -m pytest -q $(CLUSTER_TESTS)

# Strict typing and lint, before the tests (pyproject.toml: [tool.mypy], [tool.ruff]).
lint: $(STAMP)
	$(VENV)/bin/ruff check hub web realtime workers cli bench tests
	$(VENV)/bin/mypy

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv is missing: installing python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

bench: $(STAMP)
	$(VENV)/bin/hub bench fanout

clean:
	rm -rf $(VENV) .hub
