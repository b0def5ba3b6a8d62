#!/usr/bin/env bash
# Installs what the ONNX tools need (tools/onnx, tools/bench/bench_reference.py), where
# missing, as root: Debian's PyTorch, ONNX headers and OpenBLAS, plus the venv /opt/kiln-py
# (Debian's python3 with system site packages) holding the pins of python-requirements.txt.
# Quick and silent when everything is there: it only asks dpkg and the venv.
#
# The libblas.so.3 alternative is left as it is: bench_reference.py preloads OpenBLAS
# itself, so no system-wide setting changes under other users of the machine.
set -euo pipefail

venv=/opt/kiln-py
requirements="$(cd "$(dirname "$0")" && pwd)/python-requirements.txt"
packages=(
  python3-torch python3-torchvision   # PyTorch 1.13.1, torchvision 0.14.1
  libonnx-dev                         # onnx.proto and libonnx_proto (ONNX 1.12, opset 17)
  python3-venv
  libopenblas0-pthread                # what bench_reference.py preloads for PyTorch
)

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: $1 and not root; run this script as root" >&2
    exit 1
  fi
}

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "apt installing: ${missing[*]}"
  need_root "missing packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Not the pyenv python3 that may come first on PATH: Debian's torch is built for /usr/bin/python3.
if ! grep -qx 'include-system-site-packages = true' "$venv/pyvenv.cfg" 2>/dev/null \
    || [[ ! -x $venv/bin/python ]]; then
  echo "creating venv $venv (/usr/bin/python3 with system site packages)"
  need_root "no venv at $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi

# Requirement lines that the venv (or Debian's site packages under it) does not meet.
unmet=$("$venv/bin/python" - "$requirements" <<'EOF'
import sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
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
  need_root "unmet pip requirements"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  "$venv/bin/python" -c 'import torch, torchvision, onnx, onnxruntime
print("ok: torch", torch.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)'
fi
