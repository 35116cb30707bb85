# mlgrid — `make help` lists the targets. `make up` and `make test` need only Python 3.10+ and make:
# both create .venv and install the project into it (again only when the dependency list changes).

PYTHON ?= python3
comma := ,
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := tools/node_modules/.bin/buf
HOST ?= 127.0.0.1
PORT ?= 50051
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help up test test-all compat proto proto-lint lint bench bench-scale venv clean system-deps image image-lock push

# The image (deploy/Dockerfile; docs/deploy.md "Image"). ENGINE: docker when its daemon answers,
# else podman. CA_BUNDLE / PIP_CONF are passed as build secrets (never stored in the image).
VERSION := $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*/\1/p' deploy/helm/mlgrid/Chart.yaml)
ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; elif command -v podman >/dev/null 2>&1; then echo podman; else echo docker; fi)
IMAGE ?= mlgrid:$(VERSION)
BASE_IMAGE ?= python:3.11-slim-bookworm
PIP_INDEX_URL ?=
CA_BUNDLE ?=
PIP_CONF ?=
IMAGE_BUILD_FLAGS ?=
REGISTRY ?=

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "mlgrid needs Python 3.10 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install mlgrid with its server and dev extras

system-deps: ## Install the Debian packages the real-part test tiers need (tools/system-packages.txt; root)
	tools/system-packages.sh

$(BUF): tools/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tools && npm install --no-audit --no-fund --silent && touch node_modules/.bin/buf; \
	else echo "npm not found: buf (proto lint) unavailable"; fi

up: $(STAMP) ## Start the whole local stack (gateway on $(HOST):$(PORT)); Ctrl-C stops it
	$(VENV)/bin/mlgrid up --host $(HOST) --port $(PORT) $(ARGS)

test: $(STAMP) $(BUF) ## Run the test suite (fast tiers; see test-all)
	$(PY) -m pytest -n 2 -m "not slow" $(ARGS)

test-all: $(STAMP) $(BUF) ## Run every test, including the slow tier (large transfers)
	$(PY) -m pytest -n 2 $(ARGS)

compat: $(STAMP) ## Install mlgrid in throwaway venvs at both ends of its ranges (Python 3.10 + oldest protobuf/grpcio; newest) and run an SDK subset
	$(PY) tools/compat.py $(ARGS)

proto: $(STAMP) ## Regenerate the Python stubs from protos/ into sdk/mlgrid/api (pinned generator: tools/proto-generator.txt)
	$(PY) tools/gen_protos.py

proto-lint: $(BUF) ## Lint the protobuf contracts with buf
	cd protos && ../$(BUF) lint

lint: $(STAMP) proto-lint ## ruff (lint + format check) and mypy on hand-written code, buf on protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) tools/typecheck.py

bench: $(STAMP) ## Benchmark mlgrid against the real MLflow server, side by side
	$(PY) -m bench $(ARGS)

bench-scale: $(STAMP) ## Scale tier (not in CI): 10k..1M runs, 10M points, beside MLflow
	$(PY) -m bench.scale $(ARGS)

image: ## Build the image $(IMAGE) with $(ENGINE) (BASE_IMAGE, PIP_INDEX_URL, CA_BUNDLE, PIP_CONF, IMAGE_BUILD_FLAGS)
	$(ENGINE) build -f deploy/Dockerfile -t $(IMAGE) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		$(if $(PIP_INDEX_URL),--build-arg PIP_INDEX_URL=$(PIP_INDEX_URL)) \
		$(if $(CA_BUNDLE),--secret id=ca-bundle$(comma)src=$(CA_BUNDLE)) \
		$(if $(PIP_CONF),--secret id=pip-conf$(comma)src=$(PIP_CONF)) \
		$(if $(findstring podman,$(ENGINE)),--ignorefile deploy/Dockerfile.dockerignore) \
		$(IMAGE_BUILD_FLAGS) .

image-lock: ## Regenerate deploy/requirements.lock (the image's pinned dependencies) after changing the server extra
	$(PYTHON) tools/lock_image.py

push: ## Tag $(IMAGE) as $(REGISTRY)/mlgrid:$(VERSION) and push it (e.g. make push REGISTRY=registry.example.com/ml)
	@test -n "$(REGISTRY)" || { echo "make push needs REGISTRY=host[:port]/path (where the cluster pulls from)"; exit 2; }
	$(ENGINE) tag $(IMAGE) $(REGISTRY)/mlgrid:$(VERSION)
	$(ENGINE) push $(REGISTRY)/mlgrid:$(VERSION)
	@echo "pushed $(REGISTRY)/mlgrid:$(VERSION): helm install … --set image.repository=$(REGISTRY)/mlgrid"
	@echo "its digest (image.digest pins it):"; $(ENGINE) image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' $(REGISTRY)/mlgrid:$(VERSION)

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .venv-proto tools/node_modules .pytest_cache .mypy_cache .ruff_cache
