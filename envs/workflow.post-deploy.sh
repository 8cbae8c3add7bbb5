#!/usr/bin/env bash
# Snakemake runs this in envs/workflow.yaml's environment once it is created. Written by envs/pin.py.
# medmnist without its dependencies, as the Makefile installs it: its metadata pulls torchvision,
# scikit-image, fire and tqdm, which the code we use does not import.
set -euo pipefail
python -m pip install --no-deps "medmnist==3.0.2"
