# Two commands do everything on a fresh Debian 12 / Python 3.11 machine:
#   make eval POLICY=expert SUITE=libero_spatial     make test
# Both bootstrap .venv/ on first use (apt packages too, when root); the stamp makes the second call instant.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped
APT_PACKAGES := libegl1 libgl1 libegl-mesa0 libosmesa6

POLICY ?= expert
SUITE ?= libero_spatial
EPISODES ?= 50
TASKS ?=
WORKERS ?= $(shell nproc)
VIDEO ?= 0
SEED ?= 0
RESULTS ?= results

export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE := 1
export PYTHONPATH := $(CURDIR)

.PHONY: setup eval test bench-harness clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing apt packages:" $$missing; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing apt packages ($$missing): install them as root"; fi; \
	fi
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 2; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip then reuses this CPU wheel instead of resolving a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'error: a CUDA torch build was installed; expected the CPU wheel torch==2.13.0')"
	touch $(STAMP)

eval: $(STAMP)
	$(PY) -m harness.cli eval --policy $(POLICY) --suite $(SUITE) --episodes $(EPISODES) --tasks "$(TASKS)" \
	  --workers $(WORKERS) --video $(VIDEO) --seed $(SEED) --results $(RESULTS)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench-harness: $(STAMP)
	$(PY) -m harness.cli bench-harness --suite $(SUITE)

clean-venv:
	rm -rf $(VENV)
