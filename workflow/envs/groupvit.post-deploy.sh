#!/usr/bin/env bash
# Installs the project (editable) into the env Snakemake built from groupvit.yaml. Not a relative pip path in the
# env file: that resolves against Snakemake's copy under its conda prefix, while this script runs in Snakemake's
# working directory, the checkout, wherever the prefix is (an env shared by two checkouts keeps the first one).
set -euo pipefail
if [[ ! -f pyproject.toml ]] || ! grep -q '^name = "groupvit-repro"$' pyproject.toml; then
    echo "groupvit.post-deploy.sh: $PWD is not the groupvit-repro checkout; run snakemake from the checkout" >&2
    exit 1
fi
python -m pip install --no-deps --editable "$PWD"
