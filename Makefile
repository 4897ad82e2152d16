# SentinelStream: `make run` serves on 127.0.0.1:50051, `make test` runs the whole suite.
# Both create .venv, install the project (generated gRPC code, Cython hot path) and make sure
# redis-server and PostgreSQL binaries exist for the private instances they start.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sentinel-installed
# Reinstall when the build inputs change or a module is added (strict editable installs link files).
SOURCES := pyproject.toml setup.py $(wildcard proto/sentinel/v1/*.proto) \
	$(wildcard hotpath/*.pyx hotpath/*.pxd) \
	core server server/rules server/dashboard server/dashboard/static server/dashboard/static/vendor hotpath ledger ledger/migrations model_export model_export/default_model clients/python bench fuzz events
BUILD_DEPS := "setuptools>=69" wheel "grpcio-tools>=1.85" "cython>=3.1" "numpy>=2.0"

.PHONY: install run test test-debug lint typecheck system-packages test-system-packages bench-tools test-bench-tools \
	clients gateway test-gateway openapi clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "SentinelStream needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	flock $(VENV)/.install-lock $(BIN)/pip install -q --upgrade pip $(BUILD_DEPS)
	flock $(VENV)/.install-lock $(BIN)/pip install -q --no-build-isolation \
		--config-settings editable_mode=strict -e '.[dev,bench]'
	touch $(STAMP)

system-packages:
	@bash deploy/ensure-system-packages.sh

# The same, plus h2load (nghttp2-client) for the h2load benchmark tests.
test-system-packages:
	@bash deploy/ensure-system-packages.sh --tests

# The pinned ghz (load generator of `sentinel bench grpc`) and grpcurl, built into .tools/ with go install.
bench-tools:
	@bash deploy/install-go-tools.sh

# Only ghz, for its tests (under a minute on a clean clone, nothing when there); without go they skip.
test-bench-tools:
	@bash deploy/install-go-tools.sh --tests

# The Go and Java clients' generated code (committed; tests/test_client_{go,java}.py fail when it is stale),
# regenerated from proto/ by clients/generate.py, then clients/go's go.mod/go.sum brought in line.
clients: install test-bench-tools
	$(BIN)/python clients/generate.py go java
	cd clients/go && go mod tidy

# The REST gateway (gateway/, grpc-gateway v2) built into .tools/sentinel-gateway by deploy/build-gateway.sh
# (pinned plugins, protoc from grpcio-tools); quick when nothing changed. `sentinel dev serve` runs the same.
gateway: install
	@bash deploy/build-gateway.sh

# The same for `make test`: without go it prints one line and the REST gateway tests skip.
test-gateway: install
	@bash deploy/build-gateway.sh --tests

# Regenerate the committed OpenAPI document (gateway/openapi.json) after a change to proto/.
openapi: install
	@bash deploy/build-gateway.sh --openapi gateway

run: install system-packages
	$(BIN)/sentinel dev serve

test: install test-system-packages test-bench-tools test-gateway
	$(BIN)/pytest

# The hot path built with Cython's bounds and initialization checks on (SENTINEL_HOTPATH_DEBUG=1, see
# setup.py) and the tests that drive it run against that build. It lives in build/hotpath-debug: the
# installed package linked there with its extensions replaced, so the installed release build (what
# `make test` and `make run` use) is never touched.
HOTPATH_DEBUG_DIR := build/hotpath-debug
HOTPATH_TESTS := tests/test_hotpath_codec.py tests/test_hotpath_features.py tests/test_hotpath_parity.py \
	tests/test_hotpath_rules.py tests/test_rules_compiler.py tests/test_wire_decode.py tests/test_decision_encoding.py \
	tests/test_ledger_compiled.py tests/test_claims_compiled.py

test-debug: install
	rm -rf $(HOTPATH_DEBUG_DIR)/lib && mkdir -p $(HOTPATH_DEBUG_DIR)/lib
	cp -as "$$($(BIN)/python -c 'import os, sentinel; print(os.path.dirname(sentinel.__file__))')" \
		$(HOTPATH_DEBUG_DIR)/lib/
	rm -f $(HOTPATH_DEBUG_DIR)/lib/sentinel/hotpath/*.so
	SENTINEL_HOTPATH_DEBUG=1 $(BIN)/python setup.py -q build_ext -j 2 \
		--build-lib $(HOTPATH_DEBUG_DIR)/lib --build-temp $(HOTPATH_DEBUG_DIR)/temp
	PYTHONPATH=$(HOTPATH_DEBUG_DIR)/lib $(BIN)/pytest $(HOTPATH_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	npx --yes @bufbuild/buf@1.75.0 lint proto

typecheck: install
	$(BIN)/mypy -p sentinel

clean:
	rm -rf build $(VENV) .sentinel proto/sentinel/v1/*_pb2*.py* proto/sentinel/v1/__init__.py hotpath/*.c hotpath/*.so
