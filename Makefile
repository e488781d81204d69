# Two commands do everything on a fresh Debian 12 / Python 3.11 machine:
#   make eval POLICY=expert SUITE=libero_spatial     make test
# Both bootstrap .venv/ on first use (apt packages too, when root); the stamp makes the second call instant.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped
APT_PACKAGES := libegl1 libgl1 libegl-mesa0 libosmesa6 chromium fonts-dejavu-core
BACKPORTS := /etc/apt/sources.list.d/bookworm-backports.sources

POLICY ?= expert
PARAMS ?=
CHECKPOINT ?=
SUITE ?= libero_spatial
EPISODES ?=
TASKS ?=
WORKERS ?= $(shell nproc)
# local: worker processes on this machine; ray: Ray actors (RAY_ADDRESS joins a cluster, else a local Ray instance).
EXECUTOR ?= local
VIDEO ?= 0
SEED ?= 0
# Observation perturbation of every suite (tasks/perturb.py), e.g. PERTURB=noise:0.05 or PERTURB=occlude:0.2,lang.
PERTURB ?=
RESULTS ?= results
DEMOS ?= $(RESULTS)/demos

export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE := 1
# Prepend, so that a user's own policy module on PYTHONPATH stays importable (POLICY=my_module:MyPolicy).
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup eval test test-fast demos train-teacher distill ablations baselines robustness study query report compare track history profile bench-harness assets-simpler clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing apt packages:" $$missing; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing apt packages ($$missing): install them as root"; fi; \
	fi
	@# SAPIEN (SIMPLER) renders on the CPU only with lavapipe from Mesa >= 25: Debian 12 has it in bookworm-backports.
	@if ! dpkg-query -W -f='$${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[5-9]|[3-9][0-9])\.'; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Mesa >= 25 (lavapipe) from bookworm-backports for SIMPLER rendering"; \
	    [ -e $(BACKPORTS) ] || printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $(BACKPORTS); \
	    apt-get update -qq && apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null; \
	  else echo "warning: SIMPLER needs mesa-vulkan-drivers >= 25 from bookworm-backports (install as root)"; fi; \
	fi
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 2; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip then reuses this CPU wheel instead of resolving a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'error: a CUDA torch build was installed; expected the CPU wheel torch==2.13.0')"
	touch $(STAMP)

eval: $(STAMP)
	$(PY) -m harness.cli eval --policy $(POLICY) $(if $(PARAMS),--params "$(PARAMS)") $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) --suite $(SUITE) $(if $(EPISODES),--episodes $(EPISODES)) --tasks "$(TASKS)" \
	  $(if $(PERTURB),--perturb "$(PERTURB)") --workers $(WORKERS) --executor $(EXECUTOR) --video $(VIDEO) --seed $(SEED) --results $(RESULTS)

# Test files run on TEST_WORKERS processes (pytest-xdist); the tests of one xdist_group (Ray's) share one.
TEST_WORKERS ?= $(shell nproc)
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup tests

# No simulator, no training: the pieces alone (<= 2 min).
test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow" tests

bench-harness: $(STAMP)
	$(PY) -m harness.cli bench-harness --suite $(SUITE) --executor $(EXECUTOR)

BASELINE ?= teacher
BASELINE_PARAMS ?=
BASELINE_CHECKPOINT ?=
CALLS ?= 100
THREADS ?= $(shell nproc)
profile: $(STAMP)
	$(PY) -m harness.cli profile --policy $(POLICY) $(if $(PARAMS),--params "$(PARAMS)") --baseline "$(BASELINE)" \
	  $(if $(BASELINE_PARAMS),--baseline-params "$(BASELINE_PARAMS)") --suite $(SUITE) --calls $(CALLS) \
	  $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(BASELINE_CHECKPOINT),--baseline-checkpoint $(BASELINE_CHECKPOINT)) \
	  --threads $(THREADS) --results $(RESULTS)

clean-venv:
	rm -rf $(VENV)

FRAME_STRIDE ?= 5
EXPERT ?= expert
# Square camera frames in pixels (empty: the demos command's default); a teacher trained on them sees this size.
RESOLUTION ?=
demos: $(STAMP)
	$(PY) -m harness.cli demos --suite $(SUITE) --expert $(EXPERT) $(if $(EPISODES),--episodes $(EPISODES)) --tasks "$(TASKS)" --workers $(WORKERS) \
	  --frame-stride $(FRAME_STRIDE) $(if $(RESOLUTION),--resolution $(RESOLUTION)) --out $(DEMOS)

# Shipped checkpoints live in checkpoints/<policy>/<suite>/, one per suite (as OpenVLA ships per-suite fine-tunes).
TEACHER_OUT ?= checkpoints/teacher/$(SUITE)
# EPOCHS empty: the suite's shipped recipe (TrainConfig.for_suite).
EPOCHS ?=
# ROTATION empty: VLAConfig's default proprio orientation (axis_angle); rot6d: continuous (see VLAConfig.rotation).
ROTATION ?=
train-teacher: $(STAMP)
	$(PY) -m harness.cli train-teacher --suite $(SUITE) --demos $(DEMOS) --out $(TEACHER_OUT) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	  $(if $(ROTATION),--rotation $(ROTATION))

TEACHER ?= checkpoints/teacher/$(SUITE)
STUDENT_OUT ?= checkpoints/actdistill/$(SUITE)
# BUDGET / BUDGET_WEIGHT empty: ActDistillConfig's defaults (the shipped students'); BUDGET=none: no budget term.
BUDGET ?=
BUDGET_WEIGHT ?=
# More options: DISTILL_ARGS="--no-graph", "--static-blocks 0,2,4", "--stage2-epochs N" (`make ablations` runs both).
DISTILL_ARGS ?=
distill: $(STAMP)
	$(PY) -m harness.cli distill --teacher $(TEACHER) --suite $(SUITE) --demos $(DEMOS) --out $(STUDENT_OUT) \
	  $(if $(BUDGET),--budget $(BUDGET)) $(if $(BUDGET_WEIGHT),--budget-weight $(BUDGET_WEIGHT)) $(DISTILL_ARGS)

# SQL over every run under RESULTS (DuckDB views runs, episodes, calls).
SQL ?= SELECT r.name, r.suite, left(r.checkpoint_sha256, 12) AS sha, count(*) AS episodes, round(100 * avg(e.success::INT), 1) AS success_pct FROM episodes e JOIN runs r USING (run) GROUP BY ALL ORDER BY ALL
query: $(STAMP)
	$(PY) -m harness.cli query "$(SQL)" --results $(RESULTS)

# The shipped student against no-graph and static-router variants, distilled and evaluated alike (EPISODES per task).
ablations: $(STAMP)
	$(PY) -m harness.cli study ablations --suite $(SUITE) --demos $(DEMOS) --episodes $(or $(EPISODES),20) \
	  --workers $(WORKERS) --results $(RESULTS)

# Issue 17's comparison: pruned (as is, -ft), early exit, random skip and students at other budgets, against the
# teacher and the shipped student, at BUDGETS (executed fractions; matched = the student's); EPISODES per task.
# BUDGETS empty: experiments.baselines.BUDGETS (the one place of the default).
BUDGETS ?=
METHODS ?=
baselines: $(STAMP)
	$(PY) -m harness.cli study baselines --suite $(SUITE) --demos $(DEMOS) --episodes $(or $(EPISODES),20) \
	  $(if $(BUDGETS),--budgets $(BUDGETS)) --methods "$(METHODS)" $(if $(TASKS),--tasks "$(TASKS)") --workers $(WORKERS) --results $(RESULTS)

# Issue 20's study: the teacher, the student and METHODS' matched-budget baselines (default
# experiments.robustness.METHODS; none: no baselines), clean and under PERTURBATIONS (semicolon-separated, default
# experiments.robustness.PERTURBATIONS), on EPISODES init states per task (default 5).
PERTURBATIONS ?=
robustness: $(STAMP)
	$(PY) -m harness.cli study robustness --suite $(SUITE) --demos $(DEMOS) --episodes $(or $(EPISODES),5) \
	  --methods "$(METHODS)" --perturbations "$(PERTURBATIONS)" $(if $(TASKS),--tasks "$(TASKS)") --workers $(WORKERS) \
	  --results $(RESULTS)

# Policies compared on the same units: POLICIES=teacher,pruned-first-6,... (the first is the baseline) or STUDY=file.json.
POLICIES ?=
STUDY ?=
study: $(STAMP)
	$(PY) -m harness.cli study $(if $(POLICIES),--policies "$(POLICIES)") $(if $(STUDY),--file $(STUDY)) \
	  $(if $(NAME),--name $(NAME)) --suite $(SUITE) --episodes $(or $(EPISODES),20) $(if $(TASKS),--tasks "$(TASKS)") \
	  --workers $(WORKERS) --results $(RESULTS)

# Paper-style tables, figures and an HTML page: RUNS=tag/suite,… or STUDY=name|file.json (default: the shipped policies' runs).
report: CALLS = 50
report: $(STAMP)
	$(PY) -m harness.cli report $(if $(RUNS),--runs "$(RUNS)") $(if $(STUDY),--study "$(STUDY)") --results $(RESULTS) --calls $(CALLS)

# NEW against BASE on committed runs (BASE empty: the registered baseline, results/baselines.json); exits 1 when NEW
# is significantly worse.
compare: $(STAMP)
	$(PY) -m harness.cli compare --new "$(NEW)" $(if $(BASE),--base "$(BASE)") --suite $(SUITE) \
	  --alpha $(or $(ALPHA),0.05) --margin $(or $(MARGIN),0) $(if $(MARKDOWN),--markdown $(MARKDOWN)) --results $(RESULTS)

# A new checkpoint against its family's registered baseline, in rounds, stopping at the sequential verdict.
track: $(STAMP)
	$(PY) -m harness.cli track --checkpoint $(CHECKPOINT) \
	  $(if $(filter command line environment,$(origin POLICY)),--family $(POLICY)) \
	  $(if $(filter command line environment,$(origin SUITE)),--suite $(SUITE)) --workers $(WORKERS) --results $(RESULTS)

# Success (Wilson 95%) and GFLOPs per call over a family's checkpoints, baseline starred (PNG).
history: $(STAMP)
	$(PY) -m harness.cli history --policy $(POLICY) --suite $(SUITE) $(if $(OUT),--out $(OUT)) --results $(RESULTS)

# With internet only: ManiSkill's official Bridge assets replace the generated stand-ins.
assets-simpler: $(STAMP)
	$(PY) -m tasks.simpler
