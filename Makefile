# Two commands matter (see README.md):
#   make book   build the book at the default "book" preset into _build/html
#               (`make book PRESET=paper` builds it at another preset)
#   make test   unit tests + every chapter at the "ci" preset + a strict book
#               build + that book checked in a browser + the Colab setup cell
#
# Both create .venv and install the pinned stack on first use; `make test` also
# installs Debian's chromium and the npm copies of the CDN scripts. Chapters
# are executed ONCE, by nbmake, into a staged copy of the book (_stage/); the
# HTML is then built from those executed notebooks with execution switched off.
#
# The steps, each usable alone: unit, notebooks, html, browser (check
# _build/html in headless Chromium), colab (run the Colab setup cell in a fresh
# virtual environment), screenshots (refresh the README's pictures from the last
# browser run).

PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.ntkbook-installed
# nbmake ignores notebooks under any folder named _build, so the staged copy
# lives beside it.
STAGE     := _stage
JOBS      ?= 2
PRESET    ?= book
CELL_TIMEOUT ?= 1200
# 1: after each chapter's last cell, drive its widgets through their states (make test does).
WIDGETS   ?= 0
# Execute only these notebooks (e.g. NOTEBOOKS="07_trace_margin A_performance"; a trailing
# .ipynb is dropped); empty: all of them. The paper workflow runs one chapter per job with it.
NOTEBOOKS ?=
# After a cell that displays an ipywidget, nbclient could miss the kernel's reply
# until the cell timeout ran out (jupyter/nbclient#312): tools/nbclient_patch.py,
# loaded into pytest below, makes the executor wait in 0.5 s slices so a missed
# wake-up costs half a second. As a second line of defence a cell timeout is
# still retried once, in a fresh kernel; any other failure is not. Chapters are
# seeded, so a rerun gives the same numbers, and a real error fails again.
RERUN     := --reruns 1 --only-rerun "A cell timed out"
# The browser check: Debian's Chromium, driven by Playwright (requirements-dev.txt),
# and local copies of the scripts the pages load from a CDN (integration/package.json).
CHROMIUM  ?= /usr/bin/chromium
NODE_STAMP := integration/node_modules/.ntkbook-installed
# apt-get needs root; other users go through sudo.
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET   := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

# Figures vanish from executed notebooks under a non-interactive backend.
unexport MPLBACKEND
# The static book shows one summary line per training loop, not a frozen widget bar.
export NTKBOOK_PROGRESS ?= summary

.PHONY: book test venv unit notebooks html browser browser-deps colab screenshots bench bench-quick seeds pythons nt-upstream lab lab-deps lab-check clean distclean
# The steps depend on each other's outputs; each is parallel inside.
.NOTPARALLEL:

book: PRESET = book
book: notebooks html
	@echo
	@echo "The book ($(PRESET) preset) is at $(CURDIR)/_build/html/index.html"

test: PRESET = ci
# No ci cell takes two minutes even two at a time: a hung one is caught and retried early.
test: CELL_TIMEOUT = 300
# ...and every live widget is moved through its range in the chapter's kernel (tools/widget_check.py).
test: WIDGETS = 1
test: HTML_FLAGS = -W -n --keep-going
test: unit notebooks html browser lab-check colab
	@echo
	@echo "All tests passed: unit tests, every chapter at the ci preset, strict book build,"
	@echo "every page checked in Chromium, the Colab setup cell installs the pinned stack."

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -c "import jax, ntkbook.kernels; assert jax.__version__ == '0.4.38', jax.__version__"
	touch $@

# The fast tests: no built book, no browser, no network. Two worker processes, as for the
# chapters (JOBS); a test file stays in one worker, so its module fixtures and compiled
# functions are built once. The slowest tests are listed so that a slow one shows up.
unit: venv
	$(BIN)/python -m pytest tests -q -n $(JOBS) --dist loadfile --durations=15

# Execute every chapter (or NOTEBOOKS) at $(PRESET) into the staged copy of the book.
notebooks: venv
	rm -rf $(STAGE) _build/html _build/.doctrees _build/jupyter_execute _build/widget-report
	mkdir -p $(STAGE)
	cp -r book $(STAGE)/
	NTKBOOK_PRESET=$(PRESET) NTKBOOK_WIDGET_CHECK=$(WIDGETS) NTKBOOK_WIDGET_REPORT=$(CURDIR)/_build/widget-report \
		PYTHONPATH=$(CURDIR)/tools $(BIN)/python -m pytest -q -p no:cacheprovider -p nbclient_patch -p widget_check -n $(JOBS) \
		--nbmake --overwrite --nbmake-timeout=$(CELL_TIMEOUT) $(RERUN) --durations=0 \
		$(if $(strip $(NOTEBOOKS)),$(foreach n,$(NOTEBOOKS),$(STAGE)/book/$(n:.ipynb=).ipynb),$(STAGE)/book)
	$(BIN)/python tools/nbclient_patch.py $(STAGE)/book
	if [ "$(WIDGETS)" = 1 ]; then $(BIN)/python tools/widget_check.py _build/widget-report; fi

# Build the HTML from the staged, executed notebooks. The configuration, the
# pages that are not notebooks and the Sphinx extension in tools/ are copied
# afresh, so a change to them needs only `make html`, not a new execution.
html: venv
	test -d $(STAGE)/book || { echo "Nothing staged: run 'make notebooks' first."; exit 1; }
	cp _config.yml _toc.yml references.bib $(STAGE)/
	rm -rf $(STAGE)/tools && mkdir -p $(STAGE)/tools && cp tools/*.py $(STAGE)/tools/
	find book -type f ! -name '*.ipynb' -exec cp --parents {} $(STAGE)/ \;
	sed -i 's/^\(\s*execute_notebooks:\).*/\1 "off"/' $(STAGE)/_config.yml
	grep -q 'execute_notebooks: "off"' $(STAGE)/_config.yml
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build $(STAGE) --path-output . $(HTML_FLAGS)

# Each Python that pyproject.toml promises and this machine has: a fresh venv with the
# pinned stack, then the unit tests (a measurement, not part of make test; minutes
# per interpreter). Writes benchmarks/results/pythons.json.
pythons:
	$(PYTHON) tools/check_python.py
	$(PYTHON) tools/pythons.py

# Open every page of _build/html in headless Chromium (see integration/browser.py).
# Screenshots: _build/browser-screenshots/ (every page), _build/browser-failures/.
browser: venv browser-deps
	$(BIN)/python -m pytest integration/test_browser.py -q -p no:cacheprovider \
		--html-dir _build/html --chromium $(CHROMIUM)

browser-deps: $(CHROMIUM) $(NODE_STAMP)

$(CHROMIUM):
	$(APT_GET) update -qq
	$(APT_GET) install -y -qq chromium
	test -x $@ || { echo "Chromium is not at $@; set CHROMIUM=/path/to/chromium"; exit 1; }

$(NODE_STAMP): integration/package.json integration/package-lock.json
	command -v npm >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq npm; }
	cd integration && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Run the chapters yourself: JupyterLab (requirements-lab.txt, installed into .venv
# with the book's pins as constraints), the environment's kernel registered as
# "Python (ntkbook)" for other Jupyter installs too, opened on book/. The preset
# is the book's default ("book"; `make lab PRESET=ci` for the small sizes), and
# training loops show live progress bars.
LAB_STAMP := $(VENV)/.ntkbook-lab-installed
PORT      ?= 8888
lab: lab-deps
	$(BIN)/python -m ipykernel install --user --name ntkbook --display-name "Python (ntkbook)"
	cd book && env -u NTKBOOK_PROGRESS NTKBOOK_PRESET=$(PRESET) $(abspath $(BIN))/jupyter lab --ServerApp.port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root)

lab-deps: $(LAB_STAMP)

$(LAB_STAMP): $(STAMP) requirements-lab.txt
	$(BIN)/python -m pip install --quiet -r requirements-lab.txt -c requirements-dev.txt
	$(BIN)/python -c "import jax; assert jax.__version__ == '0.4.38', jax.__version__"
	touch $@

# The local path in a real browser: JupyterLab from `make lab`'s environment on a
# loopback port with a token, chapter 01 run in headless Chromium, one slider moved
# (integration/lab.py). Screenshot: _build/lab-screenshots/.
lab-check: lab-deps browser-deps
	$(BIN)/python -m pytest integration/test_lab.py -q -p no:cacheprovider --chromium $(CHROMIUM)

# The Colab setup cell, run in a fresh virtual environment against this checkout.
colab: venv
	$(BIN)/python -m pytest integration/test_colab_setup.py -q -p no:cacheprovider

# Benchmarks (benchmarks/, rendered by appendix A): results go to
# benchmarks/results/latest.json, section by section. `make bench` runs every
# section at full size, chapters at the ci and book presets included (about an
# hour on 2 cores); `make bench-quick` runs the kernel sections small (< 5 min).
# `make bench CHAPTERS=05_finite_ntk` re-times only that chapter (ci and book, or
# PRESETS=ci) and replaces its rows in the results file; BENCH_CELL_TIMEOUT=7200 raises the
# per-cell limit (1800 s), which `paper` cells on a CPU can exceed.
bench: venv
	$(BIN)/python -m benchmarks.run --size full $(if $(SECTIONS),--sections $(SECTIONS)) $(if $(CHAPTERS),--chapters $(CHAPTERS)) $(if $(PRESETS),--presets $(PRESETS)) $(if $(BENCH_CELL_TIMEOUT),--timeout $(BENCH_CELL_TIMEOUT))

bench-quick: venv
	$(BIN)/python -m benchmarks.run --size quick $(if $(SECTIONS),--sections $(SECTIONS))

# Which claims survive other random draws (a measurement, not part of `make test`):
# every chapter (or CHAPTERS=01_lazy,02_ntk_flow) under each NTKBOOK_SEED in
# SEEDS, two at a time in fresh kernels, one row per run in
# benchmarks/results/seeds.json (appendix B renders it). PRESET defaults to ci here.
SEEDS ?= 0 1 2 3 4 5
seeds: PRESET = ci
seeds: venv
	$(BIN)/python tools/seeds.py --preset $(PRESET) --seeds $(SEEDS) --jobs $(JOBS) $(if $(CHAPTERS),--chapters $(CHAPTERS))

# neural-tangents' own tests (batching, Monte Carlo, predict, stax elementwise, empirical NTK) on the pinned, patched stack:
# a measurement, not part of make test (about 20 min). Writes benchmarks/results/nt_upstream.json.
nt-upstream: venv
	$(BIN)/python tools/nt_upstream.py

# Copy two pictures from the last browser run into docs/screenshots (README).
screenshots: venv
	$(BIN)/python integration/screenshots.py _build/browser-screenshots docs/screenshots

clean:
	rm -rf _build $(STAGE)

distclean: clean
	rm -rf $(VENV) integration/node_modules
