# Two commands: `make run` (the portal with embedded defaults) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# What the venv has installed, named by the content of the lock files: `run` needs the runtime set
# (requirements.txt), `test` and `lint` the development set on top (requirements-dev.txt), so a
# change of either file installs again what it locks.
RUNTIME_STAMP := $(VENV)/.installed-runtime-$(shell cat requirements.txt | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
# Every file is checked against the hashes in the lock files; a release or a dependency missing
# from them is an error, not a download.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --require-hashes
RICE := orchestration/catalogue/_rice.so

.PHONY: run test lint lock bootstrap system-packages

# Debian packages the tests use: Chromium (end-to-end tests), funpack and
# source-extractor (catalogues compared with SExtractor), bubblewrap and passt (the local
# executor's sandbox and its egress network), ssh-keygen (key fingerprints), a C compiler (the catalogue reader's decoder). Installed when missing
# and when this runs as root with apt-get; otherwise the tests say what is missing.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v funpack >/dev/null || missing="$$missing libcfitsio-bin"; \
	command -v source-extractor >/dev/null || missing="$$missing source-extractor"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v pasta >/dev/null || missing="$$missing passt"; \
	command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	command -v $(CC) >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Please install:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

$(RUNTIME_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PIP_INSTALL) -r requirements.txt -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-*
	touch $@

# After a change to requirements.in or requirements-dev.in: locks both again, keeping every pin
# that still fits (LOCK_ARGS="--upgrade-package Django" moves one; pip-compile's options are its
# table in pyproject.toml). It asks PyPI alone, whatever this machine's pip configuration adds,
# so that the hashes are those of PyPI's files.
PYPI_ONLY := env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null
lock: $(DEV_STAMP)
	$(PYPI_ONLY) $(BIN)/pip-compile --quiet $(LOCK_ARGS) requirements.in
	$(PYPI_ONLY) $(BIN)/pip-compile --quiet $(LOCK_ARGS) requirements-dev.in

# The catalogue reader's Rice decoder. Optional for running: without a C compiler, catalogues read
# compressed images with astropy's decoder, about twice as slowly.
$(RICE): orchestration/catalogue/_rice.c
	@if command -v $(CC) >/dev/null; then \
	  set -x; $(CC) -O2 -Wall -Wextra -shared -fPIC -ffp-contract=off -o $@ $<; \
	else echo "No C compiler ($(CC)): catalogues will read Rice-compressed images more slowly"; fi

bootstrap: $(RUNTIME_STAMP) $(RICE)
	$(BIN)/python manage.py bootstrap

run: bootstrap
	$(BIN)/python manage.py runportal

test: system-packages $(DEV_STAMP) $(RICE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of pyproject.toml [tool.importlinter]
