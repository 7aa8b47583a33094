# Two commands on a fresh machine:  make demo   and   make test
# Everything they need is installed here: the virtualenv, Python packages, Debian tools, Kafka jars.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian tools the tests use, as command:package (kcat talks to the broker; openssl makes the test
# certificates of the TLS and SASL listeners; promtool checks and
# prometheus runs the monitoring files of deploy/prometheus; dot draws the journeys' pictures).
DEB_TOOLS := kcat:kcat promtool:prometheus prometheus:prometheus openssl:openssl dot:graphviz

.PHONY: demo test check install debs kafka-jars clean

demo: install
	$(BIN)/orchestrator demo

test: install debs kafka-jars
	$(BIN)/ruff check orchestrator tests
	$(BIN)/ruff format --check orchestrator tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

check: install
	$(BIN)/ruff check orchestrator tests
	$(BIN)/ruff format --check orchestrator tests
	$(BIN)/mypy

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (aiokafka 0.14)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# (PYTHONWARNINGS: setuptools' notes about editable installs are not for the user of make demo)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Installs the package of every DEB_TOOLS command that is missing (each package once), saying which
# first, without recommended packages. SKIP_DEBS=1 skips it (install them yourself: README, "Install").
debs:
	@missing=""; for t in $(DEB_TOOLS); do cmd=$${t%%:*}; pkg=$${t#*:}; \
	  command -v $$cmd >/dev/null || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ] && [ -n "$(SKIP_DEBS)" ]; then \
	  echo "SKIP_DEBS is set: not installing the Debian packages$$missing (the tests that need them will fail)"; \
	elif [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing the Debian packages$$missing: $$SUDO apt-get install -y --no-install-recommends$$missing"; \
	  echo "(skip with: make test SKIP_DEBS=1)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The Kafka broker jars, fetched once from Maven Central into ~/.cache/orchestrator/kafka.
kafka-jars: install
	$(BIN)/python -c 'from orchestrator.kafka.local_broker import fetch_kafka; print("kafka jars:", fetch_kafka())'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
