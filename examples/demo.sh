#!/usr/bin/env bash
# One command: set everything up on a fresh machine, then compile the bundled digits model for
# Cortex-M4 and run it on the emulated chip (QEMU), printing predictions and accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
exec .venv/bin/python examples/digits/demo.py "$@"
