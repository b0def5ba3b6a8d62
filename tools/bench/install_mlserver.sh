#!/usr/bin/env bash
# Seldon's MLServer with ONNX Runtime in a venv of its own (/opt/mlserver-venv): the
# anchor tools/bench/bench_serve.py --servers kiln,mlserver runs beside kiln serve. Not
# needed by the tests. Quick when it is there.
set -euo pipefail
venv=/opt/mlserver-venv
if [[ -x $venv/bin/mlserver ]] && "$venv/bin/python" -c 'import mlserver, onnxruntime' 2>/dev/null; then
  exit 0
fi
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
  mlserver==1.7.1 onnxruntime==1.32.0 "numpy<2.5" \
  uvloop==0.21.0  # 0.22 and later: MLServer 1.7.1's workers find no event loop and die
"$venv/bin/python" -c 'import mlserver, onnxruntime; print("ok: mlserver", mlserver.__version__, "onnxruntime", onnxruntime.__version__)'
