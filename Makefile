# The two commands of the README: `make demo` and `make test`. POSIX make; no GNU extensions.
# Each creates .venv when missing and re-installs the project when pyproject.toml changed.

PYTHON = python3
VENV = .venv
STAMP = $(VENV)/.installed-stamp

.PHONY: demo test venv bench

demo: $(STAMP)
	$(VENV)/bin/rhaii-nb run --params params/local.yaml

# Benchmarks (not tests): ratios measured side by side; needs `hey` and `wrk` (apt-get install -y hey wrk).
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks

test: $(STAMP)
	@sh .ci/ensure-browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n 2 --dist loadfile -p no:cacheprovider

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu run: apt-get install python3-venv" >&2; exit 1; }
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)
