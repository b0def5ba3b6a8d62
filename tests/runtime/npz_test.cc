// NumPy .npz archives (runtime/npz.h): NumPy's own files (stored and deflated) read
// exactly; kiln's round-trip; damaged archives refused with a message.
#include "runtime/npz.h"

#include <catch2/catch.hpp>
#include <random>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/mxnet_params.h"

using namespace kiln;

namespace {

const std::string kDataDir = "tests/data/mxnet/";

std::string ParseError(const std::string& bytes) {
  try {
    ParseNpz(bytes, "a.npz");
  } catch (const Error& e) {
    return e.what();
  }
  return "parsed";
}

}  // namespace

TEST_CASE("NumPy's archives hold the arrays MXNet's file holds, in order", "[npz]") {
  // tools/mxnet/gen_params_testdata.py saved the same arrays with np.savez,
  // np.savez_compressed and mx.nd.save.
  const ParamList mxnet = LoadMxnetParams(kDataDir + "checkpoint.params");
  for (const std::string file : {"checkpoint.npz", "checkpoint_compressed.npz"}) {
    INFO(file);
    const std::string bytes = ReadFile(kDataDir + file);
    REQUIRE(LooksLikeNpz(bytes));
    const ParamList npz = ParseNpz(bytes, file);
    REQUIRE(npz.tensors.size() == mxnet.tensors.size());
    for (size_t i = 0; i < npz.tensors.size(); ++i) {
      INFO(mxnet.tensors[i].first);
      CHECK(npz.tensors[i].first == mxnet.tensors[i].first);
      CHECK(npz.tensors[i].second.BitwiseEquals(mxnet.tensors[i].second));
    }
  }
}

TEST_CASE("kiln's archives round-trip; lists are named arr_0, arr_1, ...", "[npz]") {
  ParamList params = LoadMxnetParams(kDataDir + "checkpoint.params");
  const ParamList back = ParseNpz(SerializeNpz(params));
  REQUIRE(back.tensors.size() == params.tensors.size());
  for (size_t i = 0; i < back.tensors.size(); ++i) {
    CHECK(back.tensors[i].first == params.tensors[i].first);
    CHECK(back.tensors[i].second.BitwiseEquals(params.tensors[i].second));
  }
  // The later dtypes, 0-d included; bfloat16 has no .npy form and names its member.
  ParamList later;
  for (const DType dtype : {DType::kInt16, DType::kUInt16, DType::kUInt32, DType::kUInt64}) {
    for (const Shape& shape : {Shape{}, Shape{3}}) {
      Tensor t(shape, dtype);
      for (int64_t i = 0; i < t.size(); ++i) t.SetDouble(i, 1000.0 * static_cast<double>(i + 1));
      later.tensors.emplace_back(std::string(DTypeName(dtype)) + ShapeToString(shape), t);
    }
  }
  const ParamList later_back = ParseNpz(SerializeNpz(later));
  REQUIRE(later_back.tensors.size() == later.tensors.size());
  for (size_t i = 0; i < later.tensors.size(); ++i) {
    INFO(later.tensors[i].first);
    CHECK(later_back.tensors[i].second.BitwiseEquals(later.tensors[i].second));
  }
  later.tensors.emplace_back("half", Tensor({2}, DType::kBFloat16));
  CHECK_THROWS_WITH(SerializeNpz(later), Catch::Contains("'half.npy'") && Catch::Contains("bfloat16"));
  params.named = false;
  const ParamList listed = ParseNpz(SerializeNpz(params));
  CHECK(listed.tensors[1].first == "arr_1");
  CHECK(ParseNpz(SerializeNpz(ParamList{})).tensors.empty());
}

TEST_CASE("damaged archives get one clear error each", "[npz][errors]") {
  const std::string good = ReadFile(kDataDir + "checkpoint.npz");
  CHECK_THAT(ParseError("PK\x03\x04 not really"), Catch::Contains("'a.npz' is not a readable .npz (zip) archive"));
  CHECK_THAT(ParseError(good.substr(0, good.size() / 2)), Catch::Contains("not a readable .npz"));
  ParamList odd;
  odd.tensors = {{"x", Tensor({2}, DType::kFloat32)}};
  std::string renamed = SerializeNpz(odd);
  // The member's name, in the local header and the central directory: x.npy -> x.txt.
  for (size_t at = renamed.find("x.npy"); at != std::string::npos; at = renamed.find("x.npy", at + 1)) {
    renamed.replace(at, 5, "x.txt");
  }
  CHECK_THAT(ParseError(renamed), Catch::Contains("member 'x.txt' is not a .npy file"));
  // Random damage: parsed or refused, never a crash (ASan runs this too).
  std::mt19937 rng(11);
  for (int trial = 0; trial < 500; ++trial) {
    std::string bad = good;
    bad[rng() % bad.size()] = static_cast<char>(rng());
    try {
      ParseNpz(bad);
    } catch (const Error&) {
    }
  }
}
