// MXNet's NDArray-list files (runtime/mxnet_params.h) against files real MXNet 1.9.1
// wrote (tests/data/mxnet, from tools/mxnet/gen_params_testdata.py, with the same arrays
// saved by NumPy): read exactly, written back byte for byte, and every malformed input
// refused with a message, never a crash.
#include "runtime/mxnet_params.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"

using namespace kiln;

namespace {

const std::string kDataDir = "tests/data/mxnet/";

std::string Bytes(const std::string& name) {
  return ReadFile(kDataDir + name + ".params");
}

void PutU32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), 4);
}
void PutU64(std::string& out, uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), 8);
}

// A one-array list file around `array` (the bytes of one array record), unnamed.
std::string ListOf(const std::string& array) {
  std::string out;
  PutU64(out, 0x112);
  PutU64(out, 0);
  PutU64(out, 1);
  out += array;
  PutU64(out, 0);
  return out;
}

std::string ParseError(const std::string& bytes) {
  try {
    ParseMxnetParams(bytes, "m.params");
  } catch (const Error& e) {
    return e.what();
  }
  return "parsed";
}

}  // namespace

TEST_CASE("files MXNet 1.9.1 wrote are read exactly and written back byte for byte", "[mxnet][params]") {
  for (const std::string name : {"checkpoint", "list", "numpy_shape"}) {
    INFO(name);
    const std::string bytes = Bytes(name);
    REQUIRE(LooksLikeMxnetParams(bytes));
    const ParamList params = ParseMxnetParams(bytes, name);
    std::ifstream manifest(kDataDir + name + ".json");
    const nlohmann::json doc = nlohmann::json::parse(manifest);
    CHECK(params.named == !doc["names"].is_null());
    size_t count = 0;
    while (std::filesystem::exists(kDataDir + name + "/" + std::to_string(count) + ".npy")) ++count;
    REQUIRE(params.tensors.size() == count);
    for (size_t i = 0; i < count; ++i) {
      INFO("array " << i);
      const Tensor expected = LoadNpy(kDataDir + name + "/" + std::to_string(i) + ".npy");
      const auto& [array_name, tensor] = params.tensors[i];
      if (params.named) CHECK(array_name == doc["names"][i].get<std::string>());
      CHECK(tensor.BitwiseEquals(expected));
    }
    CHECK(SerializeMxnetParams(params) == bytes);
  }
  // Module's prefixes stay in the names; the zero-size array keeps its shape.
  const auto map = ParseMxnetParams(Bytes("checkpoint")).AsMap();
  CHECK(map.at("arg:conv0_weight").shape() == Shape{4, 3, 3, 3});
  CHECK(map.at("aux:bn_moving_mean").dtype() == DType::kFloat16);
  CHECK(map.at("arg:empty_dim").shape() == Shape{0, 6});
  const auto numpy = ParseMxnetParams(Bytes("numpy_shape")).AsMap();
  CHECK(numpy.at("scalar").shape().empty());
  CHECK(numpy.at("scalar").GetDouble(0) == 2.5);
}

TEST_CASE("a file saved and loaded through the file system round-trips", "[mxnet][params]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_mxnet_params_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.params").string();
  ParamList params;
  params.tensors = {{"a", Tensor::FromFloats({2, 2}, std::vector<float>{1, 2, 3, 4})},
                    {"b", Tensor::FromDoubles({3}, std::vector<double>{-1, 0, 7}, DType::kInt64)}};
  SaveMxnetParams(path, params);
  const ParamList back = LoadMxnetParams(path);
  REQUIRE(back.tensors.size() == 2);
  CHECK(back.tensors[1].first == "b");
  CHECK(back.tensors[1].second.BitwiseEquals(params.tensors[1].second));
  // Without names, as nd.save of a list.
  params.named = false;
  CHECK_FALSE(ParseMxnetParams(SerializeMxnetParams(params)).named);
  std::filesystem::remove_all(dir);
}

TEST_CASE("every dtype round-trips, 0-d and empty arrays included, with MXNet's type flags", "[mxnet][params]") {
  ParamList params;
  for (int code = 0; code < kNumDTypes; ++code) {
    const auto dtype = static_cast<DType>(code);
    for (const Shape& shape : {Shape{}, Shape{0, 3}, Shape{2, 3}}) {
      Tensor t(shape, dtype);
      for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, static_cast<double>(i * 3 + 1));
      params.tensors.emplace_back(std::string(DTypeName(dtype)) + ShapeToString(shape), t);
    }
  }
  // uint64 beyond int64's range and 2^53, exactly.
  Tensor wide({2}, DType::kUInt64);
  wide.data_as<uint64_t>()[0] = UINT64_MAX;
  wide.data_as<uint64_t>()[1] = (uint64_t{1} << 63) + 1;
  params.tensors.emplace_back("wide", wide);
  const std::string bytes = SerializeMxnetParams(params);
  const ParamList back = ParseMxnetParams(bytes, "m.params");
  REQUIRE(back.tensors.size() == params.tensors.size());
  for (size_t i = 0; i < params.tensors.size(); ++i) {
    INFO(params.tensors[i].first);
    CHECK(back.tensors[i].first == params.tensors[i].first);
    CHECK(back.tensors[i].second.BitwiseEquals(params.tensors[i].second));
  }
  CHECK(SerializeMxnetParams(back) == bytes);
}

TEST_CASE("a bfloat16 array MXNet 1.9.1 saved is read exactly and written back byte for byte", "[mxnet][params]") {
  // mx.nd.save(path, {'w': mx.nd.amp_cast(mx.nd.array([1, -2.5, 3.140625, 65504, 1e-3]),
  // dtype=bfloat16)}) with MXNet 1.9.1: type flag 12; 65504 rounds to 65536.
  const std::string hex =
      "120100000000000000000000000000000100000000000000c9fa93f900000000010000000500000000000000010000000000"
      "00000c000000803f20c049408047833a0100000000000000010000000000000077";
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  const ParamList params = ParseMxnetParams(bytes, "bf16.params");
  REQUIRE(params.tensors.size() == 1);
  const Tensor& w = params.tensors[0].second;
  CHECK(params.tensors[0].first == "w");
  CHECK(w.dtype() == DType::kBFloat16);
  CHECK(w.ToDoubles() == std::vector<double>{1, -2.5, 3.140625, 65536, BFloat16ToFloat(FloatToBFloat16(1e-3f))});
  CHECK(SerializeMxnetParams(params) == bytes);
}

TEST_CASE("older MXNet array versions: V1 and the legacy shape without a magic", "[mxnet][params]") {
  const auto array = [](bool v1) {
    std::string a;
    if (v1) {
      PutU32(a, 0xF993FAC8);
      PutU32(a, 2);  // i32 ndim, i64 dims
      PutU64(a, 2);
      PutU64(a, 1);
    } else {
      PutU32(a, 2);  // u32 ndim, u32 dims
      PutU32(a, 2);
      PutU32(a, 1);
    }
    PutU32(a, 1);  // cpu
    PutU32(a, 0);
    PutU32(a, 0);  // float32
    const float values[2] = {1.5f, -2.0f};
    a.append(reinterpret_cast<const char*>(values), sizeof values);
    return a;
  };
  for (const bool v1 : {true, false}) {
    const ParamList list = ParseMxnetParams(ListOf(array(v1)));
    REQUIRE(list.tensors.size() == 1);
    CHECK(list.tensors[0].second.shape() == Shape{2, 1});
    CHECK(list.tensors[0].second.GetDouble(1) == -2.0);
  }
}

TEST_CASE("malformed MXNet files get one clear error each", "[mxnet][params][errors]") {
  const std::string good = Bytes("checkpoint");
  CHECK_THAT(ParseError(Bytes("sparse")), Catch::Contains("stored as csr") && Catch::Contains("dense arrays only"));
  CHECK_THAT(ParseError("not a params file"), Catch::Contains("not an MXNet NDArray file"));
  CHECK_THAT(ParseError(good + "x"), Catch::Contains("1 bytes follow the last name"));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    const std::string error = ParseError(good.substr(0, cut));
    INFO("cut at " << cut << ": " << error);
    CHECK((error.find("truncated") != std::string::npos || error.find("not an MXNet") != std::string::npos));
  }
  // Field by field: a none array, an unsupported dtype, absurd dimensions, a count the
  // file cannot hold, names that do not match the arrays.
  std::string none;
  PutU32(none, 0xF993FAC9);
  PutU32(none, 0);
  PutU32(none, 0);  // ndim 0 in V2: none
  CHECK_THAT(ParseError(ListOf(none)), Catch::Contains("array 0 is an empty (none) NDArray"));
  std::string unknown_flag;
  PutU32(unknown_flag, 0xF993FAC9);
  PutU32(unknown_flag, 0);
  PutU32(unknown_flag, 1);
  PutU64(unknown_flag, 2);
  PutU32(unknown_flag, 1);
  PutU32(unknown_flag, 0);
  PutU32(unknown_flag, 13);
  unknown_flag += std::string(4, '\0');
  CHECK_THAT(ParseError(ListOf(unknown_flag)),
             Catch::Contains("array 0 has dtype flag 13") && Catch::Contains("(0 to 12)"));
  std::string wide;
  PutU32(wide, 0xF993FAC9);
  PutU32(wide, 0);
  PutU32(wide, 1000);
  CHECK_THAT(ParseError(ListOf(wide)), Catch::Contains("claims 1000 dimensions"));
  std::string huge;
  PutU32(huge, 0xF993FAC9);
  PutU32(huge, 0);
  PutU32(huge, 2);
  PutU64(huge, uint64_t{1} << 40);
  PutU64(huge, uint64_t{1} << 40);
  PutU32(huge, 1);
  PutU32(huge, 0);
  PutU32(huge, 0);
  CHECK_THAT(ParseError(ListOf(huge)), Catch::Contains("array 0: shape (1099511627776,1099511627776) has too many"));
  std::string many;
  PutU64(many, 0x112);
  PutU64(many, 0);
  PutU64(many, uint64_t{1} << 60);
  CHECK_THAT(ParseError(many), Catch::Contains("arrays in 0 bytes"));
  std::string mismatched = good;
  // The names count sits after the arrays: rewrite it from 9 to 3.
  const std::string nine("\x09\0\0\0\0\0\0\0", 8);
  const size_t names_at = mismatched.rfind(nine);
  REQUIRE(names_at != std::string::npos);
  mismatched[names_at] = 3;
  CHECK_THAT(ParseError(mismatched), Catch::Contains("3 names for 9 arrays"));
  ParamList twice;
  twice.tensors = {{"w", Tensor({1}, DType::kFloat32)}, {"w", Tensor({1}, DType::kFloat32)}};
  CHECK_THAT(ParseError(SerializeMxnetParams(twice)), Catch::Contains("names two arrays 'w'"));

  // Random damage: parsed or refused, never a crash (ASan runs this too).
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      bad[rng() % bad.size()] = static_cast<char>(rng());
    }
    try {
      ParseMxnetParams(bad);
    } catch (const Error&) {
    }
  }
}
