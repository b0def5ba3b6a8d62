#!/usr/bin/env bash
# Rewrites the fuzzers' seed corpora (tests/fuzz/corpus/<target>/) and dictionaries
# (tests/fuzz/dict/<target>.dict) from the project's own files and from files its tools
# make: tests/fuzz/make_seeds.cc (tensors, parameter files, small graphs, one-node graphs
# of the MXNet golden cases, compiled artifacts, attribute texts, shape-inference cases,
# ONNX's backend test models where the Python venv has them), LeNet built by
# examples:build_lenet and compiled by `kiln compile`, the outputs of `kiln run`, .npy
# files written by NumPy (format versions 2 and 3, Fortran order, big-endian), and small
# IDX files (every element type, gzip, cut off).
# Regression files (tests/fuzz/regressions/) are left alone. Deterministic; commit
# the result (keep it small: about 1 MB in all).
#
# Usage: tests/fuzz/make_corpus.sh   (from anywhere; builds with the default gcc config)
set -euo pipefail
cd "$(dirname "$0")/../.."

bazel build //tests/fuzz:make_seeds //tools:kiln //examples:build_lenet
bin="$(bazel info bazel-bin)"

rm -rf tests/fuzz/corpus tests/fuzz/dict
onnx_dir="$(/opt/kiln-py/bin/python -c \
  'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node"))' \
  2>/dev/null || true)"
"$bin/tests/fuzz/make_seeds" tests/fuzz --golden tests/golden/data ${onnx_dir:+--onnx-dir "$onnx_dir"}

corpus=tests/fuzz/corpus
cp examples/data/digit7.npy "$corpus/npy/digit7.npy"
# Symbol files MXNet 1.9.1 wrote (tools/mxnet/gen_models.py).
mkdir -p "$corpus/mxnet_symbol"
for file in tests/data/mxnet/models/*-symbol.json; do
  cp "$file" "$corpus/mxnet_symbol/$(basename "$file")"
done
# Initializer specs (train/initializer.h), one per file.
mkdir -p "$corpus/initializer"
i=0
for spec in zero one "constant(value=0.5)" "uniform(scale=0.1)" "normal(sigma=0.02)" \
  "xavier(rnd_type=gaussian, factor_type=in, magnitude=2)" "Xavier('uniform', 'avg', 3)" \
  "msra_prelu(factor_type=out, slope=0.1)" "orthogonal(scale=1.414, rand_type=normal)" "uniform(scale=-1)"; do
  printf '%s' "$spec" >"$corpus/initializer/spec_$i"
  i=$((i + 1))
done
# Optimizer specs: "NAME\nOPTIONS\nSCHEDULE" (train/optimizer.h, train/lr_scheduler.h).
mkdir -p "$corpus/optimizer"
i=0
for spec in "sgd\nlr=0.1\n" "sgd\nlr=0.1,momentum=0.9,wd=0.0005,rescale_grad=0.03125\nfactor:step=100,factor=0.5" \
  "nag\nmomentum=0.9,clip_gradient=1\nmultifactor:step=10;20,factor=0.1" "adam\nbeta1=0.8,beta2=0.99,epsilon=1e-6\ncosine:max_update=1000,final_lr=0.001,warmup_steps=10" \
  "adamw\nlr=0.001,wd=0.01\npoly:max_update=500,pwr=2" "rmsprop\ncentered=true,gamma1=0.9,gamma2=0.9,clip_weights=1\nconstant" \
  "sgd\nlr=-1\nfactor:step=0" "adagrad\n\n"; do
  printf "$spec" >"$corpus/optimizer/spec_$i"
  i=$((i + 1))
done
{
  echo "# Optimizer and schedule spec words (train/optimizer.h, train/lr_scheduler.h)."
  for word in sgd nag adam adamw rmsprop lr= learning_rate= wd= momentum= rescale_grad= clip_gradient= beta1= \
    beta2= epsilon= gamma1= gamma2= centered= clip_weights= lr_scheduler= factor: multifactor: poly: cosine: constant \
    step= factor= stop_factor_lr= max_update= final_lr= pwr= warmup_steps= warmup_begin_lr= warmup_mode=linear \
    warmup_mode=constant , ";"; do
    printf '"%s"\n' "$word"
  done
  printf '"\\x0a"\n'
} >tests/fuzz/dict/optimizer.dict
# IDX files (train/data/idx.h): magic 0x0000TTNN, big-endian uint32 dimensions, the
# elements big-endian; plain and gzip (gzip -n: no name or time, the same bytes each run),
# and cut-off ones.
idx="$corpus/idx"
mkdir -p "$idx"
printf '\x00\x00\x08\x01\x00\x00\x00\x05\x00\x01\x02\x09\xff' >"$idx/labels_u8_1d"
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03\x00\x01\x02\x03\x04\xff\x0a\x14\x1e\x28\x32\x3c' \
  >"$idx/images_u8_3d"
printf '\x00\x00\x0d\x02\x00\x00\x00\x02\x00\x00\x00\x02\x3f\x80\x00\x00\xc0\x20\x00\x00\x3f\x00\x00\x00\x7f\x80\x00\x00' \
  >"$idx/float32_2d"
printf '\x00\x00\x0e\x01\x00\x00\x00\x02\x3f\xf0\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\x01' >"$idx/float64_1d"
printf '\x00\x00\x0b\x01\x00\x00\x00\x02\x80\x00\x7f\xff' >"$idx/int16_1d"
printf '\x00\x00\x0c\x01\x00\x00\x00\x02\xff\xff\xff\xfe\x00\x01\x00\x00' >"$idx/int32_1d"
printf '\x00\x00\x09\x00\x80' >"$idx/int8_scalar"
printf '\x00\x00\x08\x02\x00\x00\x00\x00\x00\x00\x00\x07' >"$idx/u8_empty"
gzip -n -9 -c "$idx/images_u8_3d" >"$idx/images_u8_3d.gz"
{ head -c 12 "$idx/images_u8_3d" | gzip -n -9 -c; tail -c +13 "$idx/images_u8_3d" | gzip -n -1 -c; } \
  >"$idx/images_u8_3d_two_members.gz"
head -c 20 "$idx/images_u8_3d" >"$idx/images_u8_3d_cut_in_data"
head -c 10 "$idx/images_u8_3d" >"$idx/images_u8_3d_cut_in_dims"
head -c 3 "$idx/labels_u8_1d" >"$idx/labels_cut_in_magic"
gzip -n -9 -c "$idx/float32_2d" | head -c 25 >"$idx/float32_2d_cut.gz"
{
  echo "# IDX magic numbers (0x0000TTNN: element type, number of dimensions), dimensions, gzip."
  for word in '\x00\x00\x08\x01' '\x00\x00\x08\x03' '\x00\x00\x09\x01' '\x00\x00\x0b\x02' '\x00\x00\x0c\x01' \
    '\x00\x00\x0d\x02' '\x00\x00\x0e\x04' '\x00\x00\x00\x00' '\x00\x00\x00\x01' '\x00\x00\x00\x1c' '\x00\x00\xea\x60' \
    '\xff\xff\xff\xff' '\x80\x00\x00\x00' '\x1f\x8b\x08\x00' '\x1f\x8b'; do
    printf '"%s"\n' "$word"
  done
} >tests/fuzz/dict/idx.dict
# Parameter files MXNet 1.9.1 and NumPy wrote (tools/mxnet/gen_params_testdata.py).
for file in tests/data/mxnet/*.params tests/data/mxnet/*.npz; do
  cp "$file" "$corpus/params/mxnet_$(basename "$file")"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin/examples/build_lenet" "$tmp/lenet.kiln-graph" >/dev/null
"$bin/tools/kiln" compile "$tmp/lenet.kiln-graph" -o "$tmp/lenet.kiln" --input data:1x1x28x28 --cpu x86-64-v2 \
  --no-embed-params >/dev/null
cp "$tmp/lenet.kiln" "$corpus/artifact/kiln_compile_lenet_no_params.kiln"
"$bin/tools/kiln" compile "$tmp/lenet.kiln-graph" -o "$tmp/lenet_full.kiln" --input data:1x1x28x28 \
  --cpu x86-64-v2 >/dev/null
"$bin/tools/kiln" run "$tmp/lenet_full.kiln" --input data=examples/data/digit7.npy --output-dir "$tmp/out" >/dev/null
cp "$tmp/out/softmax_output.npy" "$corpus/npy/kiln_run_softmax_output.npy"

# NumPy's own writer, for what kiln's writer never makes (Debian's numpy).
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 - "$corpus/npy" <<'PY'
import sys, numpy as np
from numpy.lib import format as fmt
out = sys.argv[1]
def save(name, array, version=None):
    with open(f"{out}/numpy_{name}.npy", "wb") as f:
        fmt.write_array(f, array, version=version, allow_pickle=False)
a = np.arange(6, dtype=np.float32).reshape(2, 3)
save("v1_f4", a, (1, 0))
save("v2_f8", a.astype(np.float64), (2, 0))
save("v3_i8", a.astype(np.int64), (3, 0))
save("fortran_f4", np.asfortranarray(a))
save("big_endian_f4", a.astype(">f4"))
save("bool_3d", np.array([[[True, False]], [[False, True]]]))
save("f2_scalar", np.array(1.5, dtype=np.float16))
save("u1_empty", np.zeros((0, 4), dtype=np.uint8))
save("i1_i4", np.array([-128, 0, 127], dtype=np.int8))
save("u4_unsupported", np.array([1, 2], dtype=np.uint32))
save("c8_unsupported", np.array([1 + 2j], dtype=np.complex64))
save("U3_unsupported", np.array(["abc"]))
save("structured_unsupported", np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")]))
PY
else
  echo "make_corpus: Debian's python3-numpy is missing; NumPy-written .npy seeds skipped" >&2
fi

# Command lines (NUL-separated arguments after "kiln"): every command with its options,
# and the dictionary of option names.
mkdir -p "$corpus/cli"
cli_seed() {  # NAME ARG...
  local name="$1"
  shift
  printf '%s\0' "$@" | head -c -1 >"$corpus/cli/$name"
}
cli_seed ops ops --json
cli_seed inspect inspect m.kiln-graph --input data:1x3x224x224 --params p.params --json
cli_seed inspect_signed inspect m.kiln --trusted-key k.pub --trusted-key other.pub
cli_seed viz viz m.onnx -o m.dot --input x:2x3
cli_seed viz_fusion viz m.onnx -o m.dot --input x:2x3 --fusion
cli_seed compile_passes compile m.onnx -o m.kiln --graph-opt 1 --passes fuse,,dce --disable-pass cse --dump-after-each d
cli_seed interpret interpret m.kiln-graph --input data=x.npy --output-dir out --train --seed 18446744073709551615
cli_seed export export m.kiln-graph -o m.onnx --input data:1x1x28x28
cli_seed compile compile m.kiln-graph -o m.kiln --input data:8x3x224x224 --cpu x86-64-v3 --features +avx2,+fma -O3 \
  --no-embed-params --params-as-inputs --sign k --params p.params --target cpu
cli_seed compile_opt compile m.onnx -o m.kiln --opt-level=0
cli_seed compile_time_report compile m.onnx -o m.kiln --time-report --graph-opt 3
cli_seed run run m.kiln --input data=x.npy --input mask=y.npy --output-dir out --threads 1024 --params p.params \
  --trusted-key k.pub
cli_seed bench bench m.kiln --threads 0 --iters 1000000 --warmup 0 --json --profile --input data=x.npy
cli_seed keygen keygen -o k --name "release key" --force
cli_seed help inspect --help
cli_seed version --version
{
  for word in ops inspect viz interpret export compile run bench keygen --json --input --params --output -o \
    --output-dir --train --seed --target --cpu --features --opt-level -O3 --no-embed-params --params-as-inputs \
    --sign --trusted-key --threads --iters --warmup --profile --name --force --help --version data:1x3x224x224 \
    data=x.npy --graph-opt --passes --disable-pass --dump-after-each --fusion --time-report fold_batchnorm fuse; do
    printf '"%s"\n' "$word"
  done
  printf '"\\x00"\n'
} >tests/fuzz/dict/cli.dict

# Key files (first byte 0: read as public, 1: as secret) of a fixed key that is public on
# purpose, so that the seeds and the signed artifact below are the same on every run.
seed_secret='kiln-ed25519-secret-v1 f5829a96f4877f90860ea036a2ea6481f9c27de35fa5d9fd3891a42162e1e6dbfe29b41afa15c214dbadea480c0bcb6a1746cf547b4d502c1b467ae2165de547 fuzz seed key (public on purpose)'
seed_public='kiln-ed25519-public-v1 fe29b41afa15c214dbadea480c0bcb6a1746cf547b4d502c1b467ae2165de547 fuzz seed key (public on purpose)'
mkdir -p "$corpus/keys"
printf '\0%s\n' "$seed_public" >"$corpus/keys/public"
printf '\1%s\n' "$seed_secret" >"$corpus/keys/secret"
printf '\0%s\n' "${seed_public% fuzz*}" >"$corpus/keys/public_nameless"
printf '\1%s\n' "$seed_public" >"$corpus/keys/public_as_secret"
printf '%s\n' "$seed_secret" >"$tmp/seed_key"
"$bin/tools/kiln" compile "$tmp/lenet.kiln-graph" -o "$tmp/lenet_signed.kiln" --input data:1x1x28x28 \
  --cpu x86-64-v2 --no-embed-params --sign "$tmp/seed_key" >/dev/null
cp "$tmp/lenet_signed.kiln" "$corpus/artifact/kiln_compile_lenet_signed.kiln"
printf '"kiln-ed25519-secret-v1 "\n"kiln-ed25519-public-v1 "\n"KILNSIG\\x00"\n"KILNART\\x00"\n' \
  >tests/fuzz/dict/keys.dict

# Inference requests (serve/protocol.h): byte 0 picks the model (tests/fuzz/
# infer_request_fuzz.cc), byte 1's low bit and bytes 2-3 give a binary header length,
# then the body: JSON tensors flat and nested, binary data in and out, every datatype,
# and requests the server refuses.
ir="$corpus/infer_request"
mkdir -p "$ir"
printf '\0\0\0\0%s' '{"id":"r","inputs":[{"name":"a","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]},{"name":"b","shape":[3],"datatype":"INT32","data":[1,-2,3]}],"outputs":[{"name":"b"},{"name":"a","parameters":{"binary_data":true}}]}' >"$ir/json_nested_binary_out"
header='{"inputs":[{"name":"x","shape":[4],"datatype":"UINT8","parameters":{"binary_data_size":4}}],"parameters":{"binary_data_output":true}}'
length=${#header}
printf "\\x01\\x01\\x$(printf %02x $((length & 255)))\\x$(printf %02x $((length >> 8)))%s\\x01\\x02\\x03\\xff" "$header" >"$ir/binary_in_out"
printf '\2\0\0\0%s' '{"inputs":[{"name":"m","shape":[2],"datatype":"BOOL","data":[true,false]},{"name":"n","shape":[1],"datatype":"FP16","data":[0.5]},{"name":"o","shape":[2],"datatype":"INT64","data":[9007199254740993,-1]},{"name":"p","shape":[0],"datatype":"BF16","data":[]}]}' >"$ir/bool_fp16_int64_empty"
printf '\3\0\0\0%s' '{"inputs":[{"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]},{"name":"d","shape":[1,2],"datatype":"FP64","data":[1e308,-0.0]},{"name":"s","shape":[2],"datatype":"INT8","data":[-128,127]}]}' >"$ir/uint64_fp64_int8"
printf '\1\0\0\0%s' '{"inputs":[{"name":"x","shape":[4],"datatype":"UINT8","data":[1,2,3,256]}]}' >"$ir/out_of_range"
printf '\0\0\0\0%s' '{"inputs":[{"name":"a","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}' >"$ir/wrong_shape"
printf '\0\0\0\0%s' '{"inputs":[{"name":"a"' >"$ir/cut_json"
{
  for word in inputs outputs name shape datatype data parameters binary_data_size binary_data binary_data_output id \
    BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 BF16 BYTES true false null; do
    printf '"%s"\n' "$word"
  done
} >tests/fuzz/dict/infer_request.dict

# gRPC ModelInfer calls (serve/grpc_service.proto), encoded by protoc from the text
# format: byte 0 picks the model (tests/fuzz/grpc_infer_request_fuzz.cc), then the
# message: typed contents, raw bytes, a batched model's axis 0, and calls it refuses.
gr="$corpus/grpc_infer_request"
mkdir -p "$gr"
grpc_seed() {  # NAME MODEL_BYTE TEXT
  { printf "$2"; printf '%s' "$3" | protoc --proto_path=serve --encode=inference.ModelInferRequest \
    serve/grpc_service.proto; } >"$gr/$1"
}
grpc_seed typed '\0' 'model_name: "m" id: "r" inputs { name: "a" datatype: "FP32" shape: [2, 2] contents { fp32_contents: [1, 2, 3, 4.5] } } inputs { name: "b" datatype: "INT32" shape: 3 contents { int_contents: [1, -2, 3] } } outputs { name: "b" }'
grpc_seed raw_batched '\1' 'model_name: "m" inputs { name: "x" datatype: "UINT8" shape: [2, 4] } raw_input_contents: "\001\002\003\004\005\006\007\010"'
grpc_seed every_type '\2' 'inputs { name: "m" datatype: "BOOL" shape: 2 contents { bool_contents: [true, false] } } inputs { name: "n" datatype: "FP16" shape: 1 } inputs { name: "o" datatype: "INT64" shape: 2 contents { int64_contents: [9007199254740993, -1] } } inputs { name: "p" datatype: "BF16" shape: 0 } raw_input_contents: "" raw_input_contents: "\000\070" raw_input_contents: "" raw_input_contents: ""'
grpc_seed wide '\3' 'inputs { name: "u" datatype: "UINT64" shape: 1 contents { uint64_contents: 18446744073709551615 } } inputs { name: "d" datatype: "FP64" shape: [1, 2] contents { fp64_contents: [1e308, -0.0] } } inputs { name: "s" datatype: "INT8" shape: 2 contents { int_contents: [-128, 300] } }'
grpc_seed raw_short '\0' 'inputs { name: "a" datatype: "FP32" shape: [2, 2] } inputs { name: "b" datatype: "INT32" shape: 3 } raw_input_contents: "\000\000" raw_input_contents: ""'
grpc_seed unknown_output '\1' 'inputs { name: "x" datatype: "UINT8" shape: [1, 4] contents { uint_contents: [1, 2, 3, 4] } } outputs { name: "y" }'
{
  for word in FP32 INT32 UINT8 BOOL FP16 INT64 BF16 UINT64 FP64 INT8 a b x m n o p u d s; do
    printf '"%s"\n' "$word"
  done
} >tests/fuzz/dict/grpc_infer_request.dict

# Model configurations (serve/model_repository.h, Triton's text format).
mc="$corpus/model_config"
mkdir -p "$mc"
printf 'max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 200 }\n' >"$mc/batching"
printf 'name: "m"\nplatform: "kiln"\nmax_batch_size: 0\nversion_policy { latest { num_versions: 1 } }\n' >"$mc/off_unknown_fields"
printf 'max_batch_size: -2\n' >"$mc/negative"
printf 'input [ { name: "data" } ]\n' >"$mc/triton_list"
printf 'dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 18446744073709551615 }\n' >"$mc/wide_delay"
printf 'max_batch_size: 4\ndynamic_batching { max_queue_delay: }\n' >"$mc/broken"
{
  for word in name platform backend max_batch_size dynamic_batching preferred_batch_size \
    max_queue_delay_microseconds '{' '}' '[' ']' ':'; do
    printf '"%s"\n' "$word"
  done
} >tests/fuzz/dict/model_config.dict

du -sh tests/fuzz/corpus tests/fuzz/dict
for dir in "$corpus"/*/; do
  printf '%-12s %4d files %8s\n' "$(basename "$dir")" "$(find "$dir" -type f | wc -l)" "$(du -sh "$dir" | cut -f1)"
done
