#!/usr/bin/env bash
# Installs MXNet 1.9.1 (CPU wheel, with oneDNN) for tools/bench/bench_mxnet.py into its own
# venv, /opt/mxvenv, made with `python3 -m venv` (PYTHON=... picks another interpreter):
# pip install "mxnet==1.9.1" "numpy<1.24" (MXNet 1.9 uses numpy aliases that numpy 1.24
# removed). Nothing else goes there, onnx included: bench_mxnet.py builds the networks
# from Gluon's model zoo. Quick and silent when both pins are met: it only asks the venv's
# package metadata. Needs root (or write access to /opt) when it has something to do.
set -euo pipefail

venv=${MXNET_VENV:-/opt/mxvenv}
python=${PYTHON:-python3}
requirements=("mxnet==1.9.1" "numpy<1.24")

if [[ ! -x $venv/bin/python ]]; then
  echo "creating venv $venv ($($python --version 2>&1))"
  "$python" -m venv "$venv"
fi

# The pins the venv does not meet.
unmet=$("$venv/bin/python" - "${requirements[@]}" <<'EOF'
import sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

for line in sys.argv[1:]:
    requirement = Requirement(line)
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        version = None
    if version is None or not requirement.specifier.contains(version, prereleases=True):
        print(line)
EOF
)
if [[ -n $unmet ]]; then
  echo "pip installing into $venv: ${unmet//$'\n'/ }"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "${requirements[@]}"
  "$venv/bin/python" -c 'import mxnet, numpy
print("ok: mxnet", mxnet.__version__, "numpy", numpy.__version__,
      "oneDNN" if mxnet.runtime.Features().is_enabled("MKLDNN") else "without oneDNN")'
fi
