# Two entry points: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv on first use and reuses it afterwards (the stamp file tracks pyproject.toml).
# any supported Python (3.11, 3.12): the first one found
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dfq-sam-installed

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[toolchain,dev]'
	# benchmark images: data files only, see pyproject's [eval] comment
	$(PY) -m pip install -q --no-deps stardist==0.9.2 nilearn==0.14.1
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dfq-sam demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check dfq_sam_plugin tests integration_tests examples benchmarks tools

clean:
	rm -rf $(VENV) dfq_sam_out build *.egg-info
