# Two commands on a fresh machine: `make test` (the tests) and `make book` (the embedded book).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= params/profiles/embedded.yaml
# Notebooks executed at once by grid and book. The small models gain little from a second thread,
# so two single-threaded runs do about twice the work of one two-threaded run on 2 cores.
WORKERS ?= 2
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export TOKENIZERS_PARALLELISM := false

.PHONY: venv data test test-fast book grid languages bench clean-runs browser

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (nbforget)" >/dev/null
	touch $@

data: venv
	$(BIN)/nbforget data

# Headless Chromium for the browser test of the built book (Debian packages).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { echo "installing chromium and chromium-driver"; \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	    echo "could not install chromium: the browser test will be skipped"; }

test: data browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: data
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

grid: data
	HF_HUB_OFFLINE=1 $(BIN)/nbforget grid --params $(PROFILE) --workers $(WORKERS)

# The book, then every page opened in headless Chromium when it is installed (`make browser`).
book: data
	HF_HUB_OFFLINE=1 $(BIN)/nbforget book --params $(PROFILE) --workers $(WORKERS) \
	  $$(command -v chromium >/dev/null && command -v chromedriver >/dev/null && echo --check)

languages: venv
	$(BIN)/nbforget languages

bench: data
	HF_HUB_OFFLINE=1 $(BIN)/python bench/train_throughput.py

clean-runs:
	rm -rf runs book/_build book/generated
