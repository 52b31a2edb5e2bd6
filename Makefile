# The README's two commands: `make run` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: run test lint types unit integration system-deps kafka-start kafka-stop schemas bench clean

run: $(STAMP)
	$(BIN)/jax-exec run

test: $(STAMP) lint types
	@started=0; \
	if ! $(BIN)/jax-exec kafka status >/dev/null 2>&1; then \
	  $(BIN)/jax-exec kafka start || exit 1; started=1; \
	fi; \
	if [ $$started = 1 ]; then $(BIN)/python tests/prune_topics.py; fi; \
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(BIN)/python tests/prune_topics.py; $(BIN)/jax-exec kafka stop; fi; \
	if [ $$rc = 5 ]; then echo "pytest collected no tests: failing"; rc=1; fi; \
	exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

$(STAMP): pyproject.toml constraints.txt | system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

# Java 17+ and Maven run the Kafka broker; openssl, jq and kcat are the independent producer
# of the signed-approval test; chromium drives the browser tests.
SYSTEM_TOOLS := java:openjdk-17-jre-headless mvn:maven openssl:openssl jq:jq kcat:kcat \
                chromium:chromium
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

kafka-start: $(STAMP)
	$(BIN)/jax-exec kafka start

kafka-stop: $(STAMP)
	$(BIN)/jax-exec kafka stop

schemas: $(STAMP)
	$(BIN)/python -m schemas.export
	$(BIN)/python -m jax_exec.readme

# The pipeline benchmark (own broker, simulator, workers) first, then the IB adapter's reads over a
# long session, then the ClickHouse one, then
# the audit stage draining a backlog (own broker).
bench: $(STAMP)
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_ib_reads.py
	$(BIN)/python bench/bench_clickhouse.py
	$(BIN)/python bench/bench_audit_drain.py

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
