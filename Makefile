# logad: two commands set up a fresh machine.
#   make test   venv + install + Kafka jars + ruff, mypy, import contracts, the whole suite
#   make demo   the main job: Kafka, simulated raw log days, parse, train, serve, live alerts, precision/recall
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install kafka-jars chromium lint docs docs-check test test-unit test-fast test-fault demo bench-quality bench-replay bench-parse clean

# No pip cache: torch from PyPI is the CUDA build (~4 GB of wheels, ~6 GB installed), and a
# cached second copy of the wheels can fill a small disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@free_kb=$$(df -Pk . | awk 'NR==2 {print $$4}'); \
	if [ "$$free_kb" -lt 10000000 ]; then \
		echo "warning: installing needs about 10 GB free and $$((free_kb / 1000000)) GB are free here"; \
	fi
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

kafka-jars: $(STAMP)
	$(PY) -c "from stream.devtools.broker import fetch_jars; fetch_jars()"

# The console's browser test (tests/integration/test_console_browser.py) drives Debian's
# chromium headless; it fails, never skips, without it.
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium), then rerun; the console's browser test needs it"; \
		exit 1; \
	fi

lint: $(STAMP) docs-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The configuration reference, made from the settings classes' field docstrings.
docs: $(STAMP)
	$(PY) -m stream.cli config-docs --out docs/configuration.md

# Fails (run `make docs`) when docs/configuration.md no longer matches the settings.
docs-check: $(STAMP)
	$(PY) -m stream.cli config-docs --out docs/configuration.md --check

# Everything: lint, then tests/unit (in-process), tests/process (DDP, torchrun, child
# processes) and tests/integration (a real Kafka broker the session starts itself).
test: lint kafka-jars chromium
	$(VENV)/bin/pytest

# The in-process unit suite alone: no broker, no child process, about a minute.
test-unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

test-fast: $(STAMP)
	$(VENV)/bin/pytest tests/unit -m "not slow"

# The fault suite (also in `make test`): kill -9, broker outage, rebalance, poison, DLQ outage,
# session-id flood; its counts go to the terminal and build/fault-suite.json.
test-fault: $(STAMP) kafka-jars
	$(VENV)/bin/pytest -m fault

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out

# The main job: Kafka, simulated raw log days, logad parse, training, serve, live alerts, precision/recall.
demo: kafka-jars
	$(VENV)/bin/logad demo --workdir demo-out

# Detection quality on HDFS (CPU, about 10 min): bench/results/quality_hdfs.json, bundle in bench/out/hdfs/model/.
bench-quality: $(STAMP)
	$(PY) -m bench.quality_hdfs

# Replay of HDFS's raw event stream through the real sessionizer vs session files (after bench-quality).
bench-replay: $(STAMP)
	$(PY) -m bench.replay_hdfs

# Template mining on Loghub-2k, logad's miner vs Drain3 (a few seconds): bench/results/parse_loghub.json.
bench-parse: $(STAMP)
	$(PY) -m bench.parse_loghub

# Raw HDFS end to end (CPU, two trainings): mined template ids vs the given ones, bench/results/raw_hdfs.json.
.PHONY: bench-raw-hdfs
bench-raw-hdfs: $(STAMP)
	$(PY) -m bench.raw_hdfs

# Time-blind vs time-aware bundles on HDFS, 5 seeds each (CPU, about 10 minutes):
# bench/results/time_aware_hdfs.json and .png.
.PHONY: bench-time-hdfs
bench-time-hdfs: $(STAMP)
	$(PY) -m bench.time_aware_hdfs

# Real microservice logs (TrainTicket, Nezha; CPU, a few minutes): incidents detected and false alarms,
# logad vs three rules; bench/results/quality_trainticket.json and .png. Without the HDFS F1 check:
# .venv/bin/python -m bench.quality_trainticket --skip-hdfs
.PHONY: bench-trainticket
bench-trainticket: $(STAMP)
	$(PY) -m bench.quality_trainticket

# Raw text vs event ids on serve's consume path (in-process, a minute): bench/results/stream_raw.json.
# With serve's raw-event support: .venv/bin/python -m bench.stream_raw --serve (Kafka, about 5 min).
.PHONY: bench-stream-raw
bench-stream-raw: $(STAMP)
	$(PY) -m bench.stream_raw

# Soak of the closed loop (CPU, about 15 min): simulated days with incidents and a drift, logad retrain each night: bench/results/soak_loop.json and .png.
.PHONY: bench-soak
bench-soak: $(STAMP)
	$(PY) -m bench.soak_loop
