# make demo: set up .venv and run the pipeline on the offline demo data (minutes on 2 CPU cores)
# make test: set up .venv, run the linters (make lint), then the tests (what CI runs)
# make test-fast: the unit tests only, no Snakemake runs and no SLURM (the edit-test loop, about 2 minutes)
# make device-benchmark: every GPU measurement the docs project (benchmarks/device.py), into DEVICE_OUT
# make lock: resolve pyproject.toml's dependencies again into requirements.lock (and envs/*.yaml)
#
# .venv gets the versions of requirements.lock, the ones the tests passed with (Python 3.11, Linux).
# torch is installed first, as TORCH_SPEC says (default: the lock's version), from PyPI unless
# TORCH_INDEX names another index; PyPI's Linux build runs on CPUs and CUDA GPUs alike. A CPU-only
# build: make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"

VENV ?= .venv
PYTHON ?= python3
LOCK := requirements.lock
TORCH_SPEC ?= $(shell grep -m1 '^torch==' $(LOCK))
TORCH_INDEX ?=
# medmnist's metadata requires torchvision, scikit-image, fire and tqdm, which the code we use does
# not import: installed without its dependencies (also by envs/workflow.post-deploy.sh).
MEDMNIST_SPEC := medmnist==3.0.2
CORES ?= all
BIN := $(VENV)/bin
# torch's CUDA libraries: its Linux wheel on PyPI pins them itself (==), and a CPU build of torch
# needs none of them, so the lock leaves them out (tests/test_envs.py checks that none is in it).
CUDA_PACKAGES := triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti \
	nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand \
	nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink \
	nvidia-nvshmem-cu13 nvidia-nvtx
# e.g. make lock LOCK_ARGS="-P torch" (the newest torch; or -P name==version), LOCK_ARGS=-U (all packages)
LOCK_ARGS ?=

DEVICE_OUT ?= benchmarks/results/device

.PHONY: install lock lint demo test test-fast device-benchmark paper clean-demo

$(VENV)/.installed: pyproject.toml $(LOCK) Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	# the lock without torch (installed above, maybe another build), each package at its locked version
	grep -v '^torch==' $(LOCK) > $(VENV)/requirements-without-torch.txt
	$(BIN)/python -m pip install --quiet --no-deps -r $(VENV)/requirements-without-torch.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip install --quiet --no-deps "$(MEDMNIST_SPEC)"
	touch $@

install: $(VENV)/.installed

lock: install
	$(BIN)/uv pip compile pyproject.toml --extra workflow --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 $(addprefix --no-emit-package ,$(CUDA_PACKAGES)) \
		--custom-compile-command "make lock" --quiet $(LOCK_ARGS) -o $(LOCK)
	$(BIN)/python envs/pin.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile presets/demo.yaml
	@echo "Tables: results/demo/tables/   Figures: results/demo/figures/   Per-run files: results/demo/runs/"

test: lint
	$(BIN)/python -m pytest

# tests marked slow run Snakemake, slurm a cluster; one that runs Snakemake unmarked fails here
test-fast: install
	TARGETCODEC_TESTS_WITHOUT_SNAKEMAKE=1 $(BIN)/python -m pytest -q -m "not slow and not slurm"

device-benchmark: install
	$(BIN)/python benchmarks/device.py --out $(DEVICE_OUT)

paper: install
	$(BIN)/snakemake --cores $(CORES)

clean-demo:
	rm -rf results/demo
