# The two commands: `make demo` (install, world, features, serve) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow lint bench services browser clean-data base-images image deploy-test

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash .ci/start-services

demo: install
	$(BIN)/funnelcast world generate
	$(BIN)/funnelcast features build
	$(BIN)/funnelcast features apply
	$(BIN)/funnelcast features materialize
	$(BIN)/funnelcast train all
	$(BIN)/funnelcast score weekly
	@echo "serving on http://127.0.0.1:8000 (docs: /docs); Ctrl-C to stop"
	$(BIN)/funnelcast serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check features funnelcast training service tests bench deploy

# Debian's Chromium for the dashboard test (skipped, and said so, where it cannot be installed), and
# CJK fonts so the Chinese page's screenshot (docs/dashboard_zh.png) shows characters, not boxes
browser:
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null || echo "chromium not installed: the dashboard test will be skipped"
	@fc-list :lang=zh | grep -q . || apt-get install -y -q fonts-noto-cjk >/dev/null || echo "fonts-noto-cjk not installed: the zh screenshot will show boxes"

test: install services browser lint
	$(BIN)/pytest -n 2 --dist loadgroup --timeout 300 -m "not slow" --durations=15

# End-to-end checks that start several service processes, retrain or drive a browser (two uvicorn
# workers sharing state and reloads, the external clock across processes, a scheduled promotion, a
# reload with requests in flight, the notebooks run whole, the MLflow UI in chromium): .ci/run runs
# them after `make test`, so the main suite stays near 10 minutes on 2 cores.
test-slow: install services browser
	$(BIN)/pytest -n 2 --dist loadgroup --timeout 600 -m slow --durations=10

# The Docker stack, slow, so not in `make test` (.ci/run calls deploy-test after it when Docker can
# be started). base-images: the official python/redis/postgres images, or Debian-built ones where no
# registry can be reached; image: the service image; deploy-test: build, run, check (deploy/).
base-images:
	bash deploy/base-images.sh

image: base-images
	bash deploy/build-image.sh

deploy-test:
	bash deploy/deploy-test.sh

bench: install
	$(BIN)/python bench/world_and_features.py
	$(BIN)/python bench/train_models.py
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python bench/serve_latency.py
	$(BIN)/python bench/routing_replay.py
	$(BIN)/python bench/forecast_and_risk.py
	$(BIN)/python bench/faults.py

# Feast's and MLflow's own UIs on the stores the settings name (Ctrl-C stops them)
.PHONY: feast-ui mlflow-ui
feast-ui: install
	$(BIN)/funnelcast ui feast

mlflow-ui: install
	$(BIN)/funnelcast ui mlflow

clean-data:
	rm -rf data
