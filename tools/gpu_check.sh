#!/usr/bin/env bash
# The GPU proof (issue 15), prepared on a machine without a GPU and run on a GPU host:
#   tools/gpu_check.sh prepare   here: builds gpu_check (the runtime only: no LLVM, no
#                                NVRTC) and every case make_gpu_cases compiles for the
#                                GPU, into .gpu/ (git-ignored, about 47 MB)
#   tools/gpu_check.sh run       on the GPU host, in the repository root (the device
#                                tool: run with carry [".gpu"]): every case on GPU 0
#                                against the CPU's outputs, CUDA Graph replay against
#                                plain launches; ends "gpu_check: N passed, M failed"
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    bazel build --config=opt //tools/gpu_check:gpu_check //tools/gpu_check:make_gpu_cases
    rm -rf .gpu
    mkdir -p .gpu/lib
    cp bazel-out/k8-opt/bin/tools/gpu_check/gpu_check .gpu/
    # Debian's libraries the binary needs beyond libc and libstdc++ travel with it.
    ldd .gpu/gpu_check | awk '/=> \// {print $3}' | grep -E 'libprotobuf|libsodium|libz\.' |
      while read -r lib; do cp -L "$lib" .gpu/lib/; done
    # ResNet-18 and -50 for the timing against PyTorch (exported here, compiled at batch 64).
    onnx_dir=$(mktemp -d)
    trap 'rm -rf "$onnx_dir"' EXIT
    /opt/kiln-py/bin/python tools/onnx/export_models.py "$onnx_dir" --models resnet18,resnet50 >/dev/null
    bazel-out/k8-opt/bin/tools/gpu_check/make_gpu_cases .gpu/cases "$onnx_dir"
    cp tools/gpu_check/torch_resnet.py .gpu/
    du -sh .gpu
    ;;
  run)
    # cuBLAS from the host's CUDA toolkit (the runtime loads it by name at the first GEMM).
    cuda_libs=""
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
      [ -d "$dir" ] && cuda_libs="$cuda_libs:$dir"
    done
    status=0
    LD_LIBRARY_PATH=".gpu/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" .gpu/gpu_check .gpu/cases |
      tee .gpu/gpu_check.log || status=$?
    [ "$status" -eq 2 ] && exit 2  # no GPU
    # PyTorch eager on the same GPU, beside kiln's timings.
    python3 .gpu/torch_resnet.py --kiln-log .gpu/gpu_check.log || true
    exit "$status"
    ;;
  *)
    echo "usage: tools/gpu_check.sh prepare | run" >&2
    exit 2
    ;;
esac
