# make demo: set up .venv and run the pipeline on the offline demo data (minutes on 2 CPU cores)
# make test: set up .venv and run the tests
# TORCH_SPEC picks the torch build; the default is a build that runs on CPUs and GPUs alike
# (on PyPI's Linux wheels CUDA is included). Example: make test TORCH_SPEC="torch==2.13.0"

VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
CORES ?= all
BIN := $(VENV)/bin

.PHONY: install demo test paper clean-demo

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# medmnist's metadata requires torchvision, which it does not import; skip its dependencies
	$(BIN)/python -m pip install --quiet --no-deps "medmnist>=3,<4"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile presets/demo.yaml
	@echo "Tables: results/demo/tables/   Figures: results/demo/figures/   Per-run files: results/demo/runs/"

test: install
	$(BIN)/python -m pytest

paper: install
	$(BIN)/snakemake --cores $(CORES)

clean-demo:
	rm -rf results/demo
