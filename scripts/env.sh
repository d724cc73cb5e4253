#!/usr/bin/env bash
# Creates (once) and activates the project's virtualenv in .venv, installing the package
# with its test extra. Sourced by the README's commands; safe to source repeatedly.
# DEEPLAB_DPC_TF=gpu installs the full TensorFlow wheel with CUDA instead of the CPU one.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DEEPLAB_DPC_VENV:-$repo_root/.venv}"
flavour="${DEEPLAB_DPC_TF:-cpu}"
# The stamp follows whatever defines the install (setup.py too, should one come back).
install_files=("$repo_root/pyproject.toml")
if [ -f "$repo_root/setup.py" ]; then install_files+=("$repo_root/setup.py"); fi
stamp="$venv/.installed-$flavour-$(cat "${install_files[@]}" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[env] creating $venv (TensorFlow: $flavour)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$repo_root[$flavour,test]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$repo_root"
