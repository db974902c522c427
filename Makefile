# sandpull: `make demo` runs the main job, `make test` runs the tests.
# Both install what they need first (Debian packages and a virtualenv in .venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := docker-registry skopeo umoci runc containerd debootstrap \
	apache2-utils openssl iproute2 iptables e2fsprogs util-linux zstd ca-certificates \
	busybox-static
PYTEST_ARGS ?=

.PHONY: setup apt venv test test-long lint demo bench bench-smoke protos clean

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-long: setup
	$(BIN)/pytest -q --long $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-smoke: setup
	$(BIN)/python bench/run.py --smoke $(BENCH_ARGS)

protos: venv
	$(BIN)/python -m grpc_tools.protoc -Isrc \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--python_out=src --mypy_out=src src/sandpull/api/*.proto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
