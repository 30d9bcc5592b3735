# Two commands matter (see README.md):
#   make book   build the book at the default "book" preset into _build/html
#   make test   unit tests + every chapter at the "ci" preset + a strict book build
#
# Both create .venv and install the pinned stack on first use. Chapters are
# executed ONCE, by nbmake, into a staged copy of the book (_stage/); the
# HTML is then built from those executed notebooks with execution switched off.

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

# Figures vanish from executed notebooks under a non-interactive backend.
unexport MPLBACKEND
# The static book shows one summary line per training loop, not a frozen widget bar.
export NTKBOOK_PROGRESS ?= summary

.PHONY: book test venv unit notebooks html clean distclean

book: PRESET = book
book: notebooks html
	@echo
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: PRESET = ci
test: HTML_FLAGS = -W -n --keep-going
test: unit notebooks html
	@echo
	@echo "All tests passed: unit tests, every chapter at the ci preset, strict book build."

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -c "import jax, ntkbook.kernels; assert jax.__version__ == '0.4.38', jax.__version__"
	touch $@

unit: venv
	$(BIN)/python -m pytest tests -q

# Execute every chapter at $(PRESET) into the staged copy of the book.
notebooks: venv
	rm -rf $(STAGE) _build/html _build/.doctrees _build/jupyter_execute
	mkdir -p $(STAGE)
	cp -r _config.yml _toc.yml references.bib book $(STAGE)/
	sed -i 's/^\(\s*execute_notebooks:\).*/\1 "off"/' $(STAGE)/_config.yml
	grep -q 'execute_notebooks: "off"' $(STAGE)/_config.yml
	NTKBOOK_PRESET=$(PRESET) $(BIN)/python -m pytest -q -p no:cacheprovider -n $(JOBS) \
		--nbmake --overwrite --nbmake-timeout=$(CELL_TIMEOUT) $(STAGE)/book

html: venv
	$(BIN)/jupyter-book build $(STAGE) --path-output . $(HTML_FLAGS)

clean:
	rm -rf _build $(STAGE)

distclean: clean
	rm -rf $(VENV)
