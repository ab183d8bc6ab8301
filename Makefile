# Set-up is two commands: `make run` and `make test` (see README.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test test-fast test-container lint format system-deps soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# LISTEN=HOST:PORT serves elsewhere (default :19117), e.g. make run LISTEN=127.0.0.1:9999
run: $(VENV)/.installed
	$(BIN)/backup-monitor demo --dir demo-backups $(if $(LISTEN),--listen $(LISTEN))

# Installs the Debian packages when it can (root with apt); elsewhere the tests that
# need a missing one are skipped with its name (an error when CI=true).
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v buildah >/dev/null || missing="$$missing buildah"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v bindfs >/dev/null || missing="$$missing bindfs"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "warning: cannot install$$missing (not root or no apt); tests needing them are skipped"; \
	  fi; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(VENV)/.installed-test system-deps lint
	$(BIN)/pytest -m "not container"
	$(MAKE) test-container

# The unit tier: no processes, no sockets, no Debian packages; under a minute.
test-fast: $(VENV)/.installed-test lint
	$(BIN)/pytest -q tests/unit

# Builds the image with buildah from a debootstrapped base (cached) and runs it.
test-container: $(VENV)/.installed-test system-deps
	$(BIN)/pytest -m container -s

# The churn soak for longer than the suite's 60 s (SOAK_SECONDS, SOAK_SEED to replay).
soak: $(VENV)/.installed-test
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(BIN)/pytest -s -q tests/system/test_soak.py

# Benchmarks, side by side with the alternatives (bench/README.md); a few minutes.
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run --json bench/results.json

clean:
	rm -rf $(VENV) demo-backups .pytest_cache .ruff_cache
