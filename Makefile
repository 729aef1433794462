# One entry point for the local stack, the tests and the pipeline.
# `make help` lists the targets.
PYTHON ?= python3
# Run from the checkout (make's folder): `-m` finds `localstack` there, PYTHONPATH `stackbase`.
STACK := $(PYTHON) -m localstack.stack
VENV_BIN = $(shell PYTHONPATH="$(CURDIR)/include" $(PYTHON) -c "from localstack.runtime import venv_path; from pathlib import Path; print(venv_path('pipeline', Path('requirements.txt')) / 'bin')")
SERVICES ?=
# The shared environment never contains the project: this checkout's package comes first.
export PYTHONPATH := $(CURDIR)/include
# …and its own .env, even if another checkout's `.local/activate` was sourced in this shell.
export AI_TWEETS_ENV_FILE := $(CURDIR)/.env
# The environments are installed without bytecode: let Python write it on first import.
unexport PYTHONDONTWRITEBYTECODE
# Library files that would land in the home folder or /tmp go to .local (as for the stack's
# processes: Context.private_files_env in localstack/runtime.py), so `make clean` removes them.
export TMPDIR := $(CURDIR)/.local/tmp
export SPARK_LOCAL_DIRS := $(CURDIR)/.local/tmp
# Java ignores TMPDIR: the JVMs' own temporary files (and no /tmp/hsperfdata_<user>) likewise.
export JDK_JAVA_OPTIONS := -Djava.io.tmpdir="$(CURDIR)/.local/tmp" -XX:-UsePerfData
export XDG_CONFIG_HOME := $(CURDIR)/.local/home/config
export MPLCONFIGDIR := $(CURDIR)/.local/home/matplotlib
export KERAS_HOME := $(CURDIR)/.local/home/keras
export MLFLOW_DISABLE_TELEMETRY := true
# When this `make` began: `make demo` ends with the time from here to a filled dashboard.
export AI_TWEETS_MAKE_STARTED := $(shell date +%s)

SOURCE ?= generate
FILE ?=
COUNT ?= 20000

.PHONY: help preflight install up down status logs demo test test-unit lint bench quality soak reliability clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

preflight: ## check, before any download, what would stop install or up (versions, disk, ports, folders)
	$(STACK) preflight $(SERVICES)

install: ## install what is missing: virtual environments, jars, PostgreSQL (side by side, timed)
	$(STACK) install $(SERVICES)

up: ## start the local stack (installs first if needed) and print every UI's URL
	$(STACK) up $(SERVICES)

down: ## stop every service of the local stack
	$(STACK) down $(SERVICES)

status: ## show each service's state and URL
	$(STACK) status $(SERVICES)

logs: ## show a service's log: make logs SERVICES=kafka
	$(STACK) logs $(SERVICES)

# The demo starts as soon as PostgreSQL, Kafka and Airflow answer, while the rest of the stack starts.
demo: ## the main job: bring the stack up and run the pipeline's DAGs through Airflow
	$(STACK) up $(SERVICES) --then "$(VENV_BIN)/python" -m ai_tweets.cli demo --source $(SOURCE) $(if $(FILE),--file $(FILE)) --count $(COUNT)

bench: up ## every benchmark on the local stack; figures printed and written to .local/bench/RESULTS.md
	"$(VENV_BIN)/python" benchmarks/run_all.py

soak: up ## 30 min of live stream at 1,000 tweets/s with a champion switch and a kill -9; rows, p95, memory
	"$(VENV_BIN)/python" benchmarks/soak.py --minutes $(or $(SOAK_MINUTES),30) --rate $(or $(SOAK_RATE),1000)

quality: up ## quality on held-out real tweets and the active-learning loop (needs ../shared/data; 2–3 h)
	"$(VENV_BIN)/python" benchmarks/quality.py

reliability: install ## the reliability suite at full size (100,000 tweets, repeated kill -9; stops and restarts services)
	RELIABILITY_SCALE=long RELIABILITY_ON_RUNNING_STACK=1 "$(VENV_BIN)/python" -m pytest tests/reliability

lint: install ## ruff over the whole project
	"$(VENV_BIN)/ruff" check .

test: preflight install ## lint, then every test (unit, DAG integrity, compose, integration on the real stack)
	$(STACK) install-browser
	"$(VENV_BIN)/ruff" check .
	"$(VENV_BIN)/python" -m pytest

test-unit: install ## the fast tests only (no services)
	"$(VENV_BIN)/python" -m pytest -m "not integration"

clean: ## stop the stack and delete its data (.local/, and PostgreSQL's cluster when run as root); cached downloads are kept
	$(STACK) clean
