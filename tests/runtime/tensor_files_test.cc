// Tensors, dtypes, .npy files, parameter files and atomic writes.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"
#include "runtime/param_file.h"
#include "tests/op_test_util.h"

using namespace kiln;
using kiln::testing::Arange;

namespace {
std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}
}  // namespace

TEST_CASE("half precision conversion is exact where it should be", "[dtype]") {
  CHECK(HalfToFloat(FloatToHalf(1.0f)) == 1.0f);
  CHECK(HalfToFloat(FloatToHalf(-2.5f)) == -2.5f);
  CHECK(HalfToFloat(FloatToHalf(65504.0f)) == 65504.0f);           // largest half
  CHECK(std::isinf(HalfToFloat(FloatToHalf(70000.0f))));           // overflow
  CHECK(HalfToFloat(FloatToHalf(5.960464477539063e-08f)) > 0.0f);  // smallest subnormal
  CHECK(std::isnan(HalfToFloat(FloatToHalf(NAN))));
  CHECK(FloatToHalf(1.0f) == 0x3c00);
  // Round to nearest even: 1 + 2^-11 is halfway between 1 and the next half.
  CHECK(FloatToHalf(1.0f + 0.00048828125f) == 0x3c00);
  // Every half value survives half -> float -> half.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = HalfToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    REQUIRE(FloatToHalf(f) == bits);
  }
}

TEST_CASE("bfloat16 conversion rounds to nearest even and is exact where it should be", "[dtype]") {
  CHECK(FloatToBFloat16(1.0f) == 0x3f80);
  CHECK(BFloat16ToFloat(0x3f80) == 1.0f);
  CHECK(FloatToBFloat16(1.00390625f) == 0x3f80);  // 1 + 2^-8: halfway, to even (down)
  CHECK(FloatToBFloat16(1.01171875f) == 0x3f82);  // 1 + 3 * 2^-8: halfway, to even (up)
  CHECK(FloatToBFloat16(1.00390637f) == 0x3f81);  // just above halfway
  CHECK(FloatToBFloat16(-0.0f) == 0x8000);
  CHECK(FloatToBFloat16(3.4e38f) == 0x7f80);  // beyond the largest finite, 0x7f7f
  CHECK(std::isinf(BFloat16ToFloat(FloatToBFloat16(INFINITY))));
  CHECK(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
  // A NaN whose payload is only in the dropped bits stays a NaN (quiet), not infinity.
  float nan_low;
  const uint32_t nan_low_bits = 0xff800001;
  std::memcpy(&nan_low, &nan_low_bits, 4);
  CHECK(FloatToBFloat16(nan_low) == 0xffc0);
  // Every bfloat16 value survives bfloat16 -> float -> bfloat16.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    REQUIRE(FloatToBFloat16(f) == bits);
  }
}

TEST_CASE("dtype names follow MXNet", "[dtype]") {
  CHECK(DTypeName(DType::kFloat16) == "float16");
  CHECK(ParseDType("int64") == DType::kInt64);
  CHECK_FALSE(ParseDType("complex64").has_value());
  CHECK(static_cast<int>(DType::kInt32) == 4);  // mshadow::kInt32
  // mshadow::TypeFlag: kInt16 = 8, kUint16 = 9, kUint32 = 10, kUint64 = 11, kBfloat16 = 12.
  const std::vector<std::pair<std::string, int>> later = {
      {"int16", 8}, {"uint16", 9}, {"uint32", 10}, {"uint64", 11}, {"bfloat16", 12}};
  for (const auto& [name, code] : later) {
    INFO(name);
    REQUIRE(ParseDType(name).has_value());
    CHECK(static_cast<int>(*ParseDType(name)) == code);
    CHECK(DTypeName(static_cast<DType>(code)) == name);
    CHECK(IsValidDTypeCode(code));
  }
  CHECK_FALSE(IsValidDTypeCode(kNumDTypes));
  CHECK(DTypeSize(DType::kInt16) == 2);
  CHECK(DTypeSize(DType::kUInt32) == 4);
  CHECK(DTypeSize(DType::kUInt64) == 8);
  CHECK(DTypeSize(DType::kBFloat16) == 2);
  CHECK(IsFloat(DType::kBFloat16));
  CHECK_FALSE(IsFloat(DType::kUInt16));
  CHECK(IsUnsigned(DType::kUInt64));
  CHECK_FALSE(IsUnsigned(DType::kInt16));
  CHECK_FALSE(IsUnsigned(DType::kBool));
}

TEST_CASE("tensor casts saturate instead of overflowing", "[tensor]") {
  Tensor t({4}, DType::kUInt8);
  t.SetDouble(0, 300);
  t.SetDouble(1, -5);
  t.SetDouble(2, NAN);
  t.SetDouble(3, 7.9);
  CHECK(t.ToDoubles() == std::vector<double>{255, 0, 0, 7});
  CHECK_THROWS_WITH(Tensor({-1, 2}, DType::kFloat32), Catch::Contains("negative"));
  CHECK_THROWS_WITH(Arange({6}).Reshaped({4}), Catch::Contains("cannot reshape (6) to (4)"));
  const Tensor narrow = Tensor::FromDoubles({4}, std::vector<double>{70000, -70000, -1, 2.9e19}, DType::kInt16);
  CHECK(narrow.ToDoubles() == std::vector<double>{32767, -32768, -1, 32767});
  CHECK(Tensor::FromDoubles({3}, std::vector<double>{-1, 70000, 9.5}, DType::kUInt16).ToDoubles() ==
        std::vector<double>{0, 65535, 9});
  CHECK(Tensor::FromDoubles({2}, std::vector<double>{-1, 5e9}, DType::kUInt32).ToDoubles() ==
        std::vector<double>{0, 4294967295.0});
  const Tensor u64 = Tensor::FromDoubles({3}, std::vector<double>{-1, 1e19, 1e20}, DType::kUInt64);
  CHECK(u64.data_as<uint64_t>()[0] == 0);
  CHECK(u64.data_as<uint64_t>()[1] == 10000000000000000000u);
  CHECK(u64.data_as<uint64_t>()[2] == UINT64_MAX);
  CHECK(Tensor::FromDoubles({2}, std::vector<double>{1.00390625, 3.4e38}, DType::kBFloat16).ToDoubles() ==
        std::vector<double>{1.0, INFINITY});
}

TEST_CASE("64-bit integers convert exactly between integer dtypes, saturating", "[tensor]") {
  Tensor u64({4}, DType::kUInt64);
  const uint64_t values[4] = {UINT64_MAX, (uint64_t{1} << 63) + 1, (uint64_t{1} << 53) + 1, 7};
  std::memcpy(u64.data(), values, sizeof values);
  const Tensor as_i64 = u64.CastTo(DType::kInt64);
  CHECK(as_i64.data_as<int64_t>()[0] == INT64_MAX);
  CHECK(as_i64.data_as<int64_t>()[1] == INT64_MAX);
  CHECK(as_i64.data_as<int64_t>()[2] == (int64_t{1} << 53) + 1);  // beyond double's 2^53, exact
  CHECK(as_i64.data_as<int64_t>()[3] == 7);
  CHECK(u64.CastTo(DType::kUInt64).BitwiseEquals(u64));
  CHECK(u64.CastTo(DType::kUInt32).ToDoubles() == std::vector<double>{4294967295.0, 4294967295.0, 4294967295.0, 7});
  Tensor i64({3}, DType::kInt64);
  const int64_t signed_values[3] = {-5, INT64_MAX, (int64_t{1} << 60) + 3};
  std::memcpy(i64.data(), signed_values, sizeof signed_values);
  const Tensor back = i64.CastTo(DType::kUInt64);
  CHECK(back.data_as<uint64_t>()[0] == 0);
  CHECK(back.data_as<uint64_t>()[1] == static_cast<uint64_t>(INT64_MAX));
  CHECK(back.data_as<uint64_t>()[2] == (uint64_t{1} << 60) + 3);
  CHECK(i64.CastTo(DType::kInt16).ToDoubles() == std::vector<double>{-5, 32767, 32767});
  // Integer to float and back goes through double.
  CHECK(u64.CastTo(DType::kFloat64).GetDouble(0) == 0x1p64);
  CHECK(u64.CastTo(DType::kBFloat16).GetDouble(3) == 7.0);
  Tensor copy({1}, DType::kUInt64);
  copy.CopyElement(0, i64, 2);
  CHECK(copy.data_as<uint64_t>()[0] == (uint64_t{1} << 60) + 3);
}

TEST_CASE(".npy round trip for every supported dtype", "[npy]") {
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32, DType::kInt64, DType::kUInt8,
                      DType::kInt8, DType::kBool, DType::kInt16, DType::kUInt16, DType::kUInt32, DType::kUInt64}) {
    for (const Shape& shape : {Shape{}, Shape{0}, Shape{5}, Shape{2, 3, 4}}) {
      Tensor t = Arange(shape, dtype);
      const std::string path = TempPath("t.npy");
      SaveNpy(path, t);
      const Tensor back = LoadNpy(path);
      INFO(DTypeName(dtype) << " " << ShapeToString(shape));
      CHECK(back.BitwiseEquals(t));
    }
  }
}

TEST_CASE(".npy holds uint64 exactly, names the new dtypes as NumPy does and refuses bfloat16", "[npy]") {
  Tensor wide({2}, DType::kUInt64);
  wide.data_as<uint64_t>()[0] = UINT64_MAX;
  wide.data_as<uint64_t>()[1] = (uint64_t{1} << 63) + 1;
  CHECK(ParseNpy(SerializeNpy(wide)).BitwiseEquals(wide));
  for (const auto& [dtype, descr] : std::vector<std::pair<DType, std::string>>{
           {DType::kInt16, "'<i2'"}, {DType::kUInt16, "'<u2'"}, {DType::kUInt32, "'<u4'"}, {DType::kUInt64, "'<u8'"}}) {
    INFO(DTypeName(dtype));
    CHECK(SerializeNpy(Arange({2}, dtype)).find("'descr': " + descr) != std::string::npos);
  }
  CHECK_THROWS_WITH(SerializeNpy(Arange({2}, DType::kBFloat16)),
                    Catch::Contains("bfloat16 cannot be written to .npy") && Catch::Contains("float32"));
  std::string bytes = SerializeNpy(Arange({2}, DType::kUInt16));
  bytes.replace(bytes.find("<u2"), 3, "<V2");  // ml_dtypes' bfloat16 as NumPy saves it
  CHECK_THROWS_WITH(ParseNpy(bytes), Catch::Contains("'<V2' is not supported"));
}

TEST_CASE(".npy header as numpy writes it", "[npy]") {
  const std::string bytes = SerializeNpy(Arange({2, 3}));
  CHECK(bytes.substr(0, 6) == "\x93NUMPY");
  CHECK(bytes.find("'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") != std::string::npos);
  CHECK((bytes.size() - 24) % 64 == 0);  // data aligned to 64 bytes
  CHECK(SerializeNpy(Arange({7})).find("'shape': (7,)") != std::string::npos);
}

TEST_CASE(".npy rejects what it cannot read, clearly", "[npy]") {
  const std::string good = SerializeNpy(Arange({2, 3}));
  CHECK_THROWS_WITH(ParseNpy("hello"), Catch::Contains("bad magic"));
  CHECK_THROWS_WITH(ParseNpy(good.substr(0, good.size() - 1)), Catch::Contains("data is 23 bytes, expected 24"));
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  CHECK_THROWS_WITH(ParseNpy(fortran), Catch::Contains("Fortran"));
  std::string complex = good;
  complex.replace(complex.find("<f4"), 3, "<c8");
  CHECK_THROWS_WITH(ParseNpy(complex), Catch::Contains("'<c8' is not supported"));
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  CHECK_THROWS_WITH(ParseNpy(big_endian), Catch::Contains("not supported"));
  CHECK_THROWS_AS(LoadNpy("/nonexistent/x.npy"), Error);
  // Any prefix or corruption gives a clean error, never a crash.
  std::mt19937 rng(7);
  for (size_t cut = 0; cut < good.size(); ++cut) CHECK_THROWS_AS(ParseNpy(good.substr(0, cut)), Error);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    bad[rng() % bad.size()] = static_cast<char>(rng());
    try {
      ParseNpy(bad);
    } catch (const Error&) {
    }
  }
}

TEST_CASE("parameter files round trip as dict and list", "[params]") {
  const std::map<std::string, Tensor> params = {
      {"fc1_weight", Arange({3, 4})}, {"fc1_bias", Arange({3}, DType::kFloat64)}, {"step", Arange({}, DType::kInt64)}};
  const std::string path = TempPath("p.params");
  SaveParams(path, params);
  const ParamList loaded = LoadParams(path);
  CHECK(loaded.named);
  REQUIRE(loaded.tensors.size() == 3);
  for (const auto& [name, tensor] : loaded.tensors) CHECK(tensor.BitwiseEquals(params.at(name)));

  // Every dtype, 0-d and empty tensors included.
  std::map<std::string, Tensor> every;
  for (int code = 0; code < kNumDTypes; ++code) {
    const auto dtype = static_cast<DType>(code);
    for (const Shape& shape : {Shape{}, Shape{0}, Shape{2, 3}}) {
      every[std::string(DTypeName(dtype)) + ShapeToString(shape)] = Arange(shape, dtype);
    }
  }
  SaveParams(path, every);
  for (const auto& [name, tensor] : LoadParams(path).tensors) {
    INFO(name);
    CHECK(tensor.BitwiseEquals(every.at(name)));
  }

  SaveParamList(path, {Arange({2}), Arange({1, 1})});
  const ParamList list = LoadParams(path);
  CHECK_FALSE(list.named);
  CHECK(list.tensors[1].second.shape() == Shape{1, 1});
}

TEST_CASE("parameter files reject corruption", "[params]") {
  ParamList list;
  list.tensors = {{"w", Arange({4, 4})}};
  const std::string good = SerializeParams(list);
  CHECK_THROWS_WITH(ParseParams("not a params file"), Catch::Contains("not a kiln parameter file"));
  for (size_t cut = 0; cut + 1 < good.size(); ++cut) CHECK_THROWS_AS(ParseParams(good.substr(0, cut)), Error);
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    try {
      ParseParams(bad);
    } catch (const Error&) {
    }
  }
  // A tensor whose bytes do not match its shape names the tensor.
  proto::ParamFileProto file;
  file.ParseFromString(good);
  file.mutable_tensors(0)->add_shape(2);
  CHECK_THROWS_WITH(ParseParams(file.SerializeAsString()), Catch::Contains("'w'") && Catch::Contains("expected 128"));
  file.mutable_tensors(0)->set_dtype(42);
  CHECK_THROWS_WITH(ParseParams(file.SerializeAsString()), Catch::Contains("unknown dtype code 42"));
  file.set_format_version(99);
  CHECK_THROWS_WITH(ParseParams(file.SerializeAsString()), Catch::Contains("version 99"));
}

TEST_CASE("atomic writes leave no temporary files and replace whole files", "[files]") {
  const std::string path = TempPath("atomic.bin");
  WriteFileAtomic(path, "first version");
  WriteFileAtomic(path, "second");
  CHECK(ReadFile(path) == "second");
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
  }
  CHECK_THROWS_WITH(WriteFileAtomic("/nonexistent-dir/x", "y"),
                    Catch::Contains("the directory '/nonexistent-dir' does not exist"));
}

// Regressions from the reliability probe (issue 8).
TEST_CASE(".npy headers are parsed without recursion and capped as NumPy caps them", "[npy][regression]") {
  const std::string good = SerializeNpy(Arange({2, 3}));
  const auto with_header = [](const std::string& header, const std::string& data, int major = 1) {
    std::string out("\x93NUMPY", 6);
    out += static_cast<char>(major);
    out += '\0';
    const size_t n = header.size();
    if (major == 1) {
      out += static_cast<char>(n & 0xff);
      out += static_cast<char>((n >> 8) & 0xff);
    } else {
      for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
    }
    return out + header + data;
  };
  // A 60 KB header (it overflowed the stack of the old std::regex parser).
  const std::string huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }" + std::string(60000, ' ') + "\n";
  CHECK_THROWS_WITH(ParseNpy(with_header(huge, std::string(4, '\0'))),
                    Catch::Contains("more than the 10000 NumPy reads"));
  CHECK_THROWS_WITH(ParseNpy(with_header(huge, std::string(4, '\0'), 2)), Catch::Contains("more than the 10000"));
  const std::string shape_bomb = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::string(9000, '(') + "}";
  CHECK_THROWS_AS(ParseNpy(with_header(shape_bomb, "")), Error);
  // Spellings NumPy writes or accepts.
  const Tensor t = ParseNpy(
      with_header("{\"descr\": \"<f4\", \"shape\": (2L, 1L), \"fortran_order\": False}\n", std::string(8, '\0')));
  CHECK(t.shape() == Shape{2, 1});
  CHECK(ParseNpy(with_header("{'descr': '|b1', 'fortran_order': False, 'shape': (), }", std::string(1, '\3')))
            .GetDouble(0) == 1.0);
  // Malformed headers name the problem.
  CHECK_THROWS_WITH(ParseNpy(with_header("{'descr': '<f4', 'shape': (1,), }", std::string(4, '\0'))),
                    Catch::Contains("no 'fortran_order'"));
  CHECK_THROWS_WITH(
      ParseNpy(with_header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "")),
      Catch::Contains("appears twice"));
  CHECK_THROWS_WITH(ParseNpy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,-2)}", "")),
                    Catch::Contains("non-negative integers"));
  CHECK_THROWS_WITH(
      ParseNpy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999999999)}", "")),
      Catch::Contains("too many elements"));
  CHECK_THROWS_WITH(ParseNpy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 10000000)}", "")),
                    Catch::Contains("exceeds kiln's limit"));
  CHECK_THROWS_WITH(ParseNpy(with_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "")),
                    Catch::Contains("True or False"));
  CHECK_THROWS_WITH(ParseNpy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "")),
                    Catch::Contains("after the header"));
  // A 20,000-character dtype is not echoed in full.
  try {
    ParseNpy(with_header("{'descr': '" + std::string(20000 / 4, 'x') + "', 'fortran_order': False, 'shape': ()}", ""));
    FAIL("accepted a bad dtype");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).size() < 400);
    CHECK_THAT(e.what(), Catch::Contains("(5000 bytes)"));
  }
}

TEST_CASE("reads refuse directories and cap streams; writes clean up stale temporary files", "[files][regression]") {
  CHECK_THROWS_WITH(ReadFile(std::filesystem::temp_directory_path().string()), Catch::Contains("is a directory"));
  CHECK_THROWS_WITH(ReadFile(""), Catch::Contains("no file name"));
  CHECK_THROWS_WITH(LoadNpy("/dev/zero"), Catch::Contains("gives more than 268435456 bytes"));
  CHECK_THROWS_WITH(WriteFileAtomic("", "x"), Catch::Contains("empty name"));
  const std::string dir_target = TempPath("a_directory");
  std::filesystem::create_directories(dir_target);
  CHECK_THROWS_WITH(WriteFileAtomic(dir_target, "x"), Catch::Contains("cannot write '" + dir_target + "'"));

  // A writer killed mid-write left PATH.tmp.PID.RANDOM behind; PID 2^22+1 is beyond
  // Linux's pid_max default (no such process), so the next write removes it. Temporary
  // files of living processes (ours) and unrelated names stay.
  const std::string path = TempPath("target.bin");
  const std::string stale = path + ".tmp.4194305.12345";
  const std::string live = path + ".tmp." + std::to_string(::getpid()) + ".7";
  const std::string unrelated = path + ".tmp.notapid";
  for (const auto& p : {stale, live, unrelated}) WriteFileAtomic(p, "partial");
  WriteFileAtomic(path, "whole");
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(live));
  CHECK(std::filesystem::exists(unrelated));
  CHECK(ReadFile(path) == "whole");
  for (const auto& p : {live, unrelated}) std::filesystem::remove(p);
}
