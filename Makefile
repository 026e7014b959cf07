# Two entry points, both idempotent: stamps under .venv record what is installed, so a
# second call skips straight to the work.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# torch is pinned on every install: see constraints.txt.
PIPC   := $(PIP) install -c constraints.txt

.PHONY: report test install install-test lint clean

report: $(VENV)/.stamp-project
	$(VENV)/bin/snakemake --cores 1 report

test: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/pytest

install: $(VENV)/.stamp-project
install-test: $(VENV)/.stamp-test

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, alone and exact: the CPU wheel of this environment.
$(VENV)/.stamp-torch: constraints.txt | $(PY)
	$(PIP) install torch==2.13.0
	touch $@

$(VENV)/.stamp-project: pyproject.toml constraints.txt $(VENV)/.stamp-torch
	$(PIPC) -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-project
	$(PIPC) -e '.[test]'
	touch $@

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results logs .snakemake
