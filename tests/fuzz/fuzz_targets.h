// kiln's fuzz targets: one plain function per loader or parser, shared by the libFuzzer
// binaries (fuzz_entry.cc, built with --config=fuzz; see tools/fuzz.sh) and by the
// regression replay test that runs with the normal suite (fuzz_replay_test.cc).
//
// Each function takes any bytes and must return 0 normally. kiln::Error is the one
// expected failure and is caught; any other exception (std::bad_alloc included) escapes
// and is a bug, as is a sanitizer report, an abort, a timeout or an allocation over the
// fuzzer's -malloc_limit_mb. A broken invariant that is not a crash by itself (a graph
// that loads but does not load again after saving) aborts through FuzzCheck.
//
// To add a target: write tests/fuzz/<name>_fuzz.cc with `int Fuzz<Name>(const uint8_t*,
// size_t)`, declare it here, list it in kFuzzTargets, and add one line to the TARGETS
// table in tests/fuzz/BUILD. Seeds go in tests/fuzz/corpus/<name>/, a dictionary in
// tests/fuzz/dict/<name>.dict (both written by tests/fuzz/make_corpus.sh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kiln::fuzz {

int FuzzNpy(const uint8_t* data, size_t size);               // ParseNpy
int FuzzParams(const uint8_t* data, size_t size);            // ParseAnyParams: kiln, MXNet .params, .npz
int FuzzGraph(const uint8_t* data, size_t size);             // ParseGraph, then shapes, types, dumps
int FuzzGraphText(const uint8_t* data, size_t size);         // ParseGraphText, the same
int FuzzArtifact(const uint8_t* data, size_t size);          // ParseArtifact, checksum as given
int FuzzExecutor(const uint8_t* data, size_t size);          // checksum fixed, Executor::Create, Run
int FuzzOnnx(const uint8_t* data, size_t size);              // ImportOnnxBytes
int FuzzAttrs(const uint8_t* data, size_t size);             // AttrField::Normalize of MXNet text
int FuzzShape(const uint8_t* data, size_t size);             // an operator's attributes and shape inference
int FuzzCommandLine(const uint8_t* data, size_t size);       // the kiln command line's argument parsing
int FuzzKeys(const uint8_t* data, size_t size);              // key files: ParsePublicKey, ParseSecretKey
int FuzzMxnetSymbol(const uint8_t* data, size_t size);       // ImportMxnetJson, then shapes and types
int FuzzInitializer(const uint8_t* data, size_t size);       // MakeInitializer, InitWeight, ToString
int FuzzOptimizer(const uint8_t* data, size_t size);         // ParseOptimizer, update rules, MakeLrScheduler
int FuzzIdx(const uint8_t* data, size_t size);               // ParseIdx (MNIST's IDX files, plain or gzip)
int FuzzInferRequest(const uint8_t* data, size_t size);      // the server's ParseInferRequest, BuildInferResponse
int FuzzGrpcInferRequest(const uint8_t* data, size_t size);  // the gRPC endpoint's ParseModelInferRequest
int FuzzModelConfig(const uint8_t* data, size_t size);       // a model repository's config.pbtxt
int FuzzCudaExecutor(const uint8_t* data, size_t size);      // GPU artifacts' plans (a fake device)

struct FuzzTarget {
  const char* name;  // the directory under corpus/, regressions/ and dict/
  int (*fn)(const uint8_t* data, size_t size);
};

// Every target, for the replay test.
inline constexpr FuzzTarget kFuzzTargets[] = {
    {"npy", FuzzNpy},
    {"params", FuzzParams},
    {"graph", FuzzGraph},
    {"graph_text", FuzzGraphText},
    {"artifact", FuzzArtifact},
    {"executor", FuzzExecutor},
    {"cuda_executor", FuzzCudaExecutor},
    {"onnx", FuzzOnnx},
    {"attrs", FuzzAttrs},
    {"shape", FuzzShape},
    {"cli", FuzzCommandLine},
    {"keys", FuzzKeys},
    {"mxnet_symbol", FuzzMxnetSymbol},
    {"initializer", FuzzInitializer},
    {"optimizer", FuzzOptimizer},
    {"idx", FuzzIdx},
    {"infer_request", FuzzInferRequest},
    {"grpc_infer_request", FuzzGrpcInferRequest},
    {"model_config", FuzzModelConfig},
};

// Aborts with `what` on stderr when `ok` is false: an invariant the fuzzer must report.
void FuzzCheck(bool ok, std::string_view what);

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace kiln::fuzz
