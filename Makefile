# Two commands: `make run` (the portal with embedded defaults) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
RICE := orchestration/catalogue/_rice.so

.PHONY: run test lint bootstrap system-packages

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

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The catalogue reader's Rice decoder. Optional for running: without a C compiler, catalogues read
# compressed images with astropy's decoder, about twice as slowly.
$(RICE): orchestration/catalogue/_rice.c
	@if command -v $(CC) >/dev/null; then \
	  set -x; $(CC) -O2 -Wall -Wextra -shared -fPIC -ffp-contract=off -o $@ $<; \
	else echo "No C compiler ($(CC)): catalogues will read Rice-compressed images more slowly"; fi

bootstrap: $(STAMP) $(RICE)
	$(BIN)/python manage.py bootstrap

run: bootstrap
	$(BIN)/python manage.py runportal

test: system-packages $(STAMP) $(RICE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of pyproject.toml [tool.importlinter]
