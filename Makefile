# Two commands do all set-up on a fresh Debian/Ubuntu/Raspberry Pi OS machine with Python 3.10+:
#   make demo   — build every micromodel (quick preset), run a simulated fleet over MQTT, print a summary
#   make test   — run the test suite with real mosquitto, TFLM and gcc
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tinyfleet-installed

.PHONY: setup test demo lint format bench clean check-ha

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "tinyfleet needs Python >= 3.10")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(VENV)/bin/tinyfleet demo

# Home Assistant's own schema code validates every discovery config (separate venv, not in `test`)
HA_VERSION ?= 2024.3.3
check-ha: $(STAMP)
	./scripts/check-home-assistant.sh $(PY) $(HA_VERSION)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf artifacts .pytest_cache build *.egg-info
