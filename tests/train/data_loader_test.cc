// Datasets and batching (train/data/dataset.h): ArrayDataset and stacking; DataLoader's
// batches in every last_batch mode against Gluon's (tools/golden/gen_data_iter_golden.py),
// seeded shuffling (a permutation per epoch, reproducible, rollover carrying the tail of
// the previous order), the background thread giving exactly the synchronous batches,
// exceptions crossing from it, and Reset and destruction while it works; NDArrayIter's
// batches and pad against MXNet's mx.io.NDArrayIter. Tagged "concurrency": runs under
// ThreadSanitizer with --config=tsan.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "tests/op_test_util.h"
#include "train/data/dataset.h"

using namespace kiln;
using kiln::testing::ErrorOf;
using json = nlohmann::json;

namespace {

const std::string kGolden = "tests/data/mxnet/data_iter_golden.json";

// Sample i: data row [i, i, i] and label 100 + i (as the golden generator writes them).
Tensor DataRows(int64_t n) {
  std::vector<double> values;
  for (int64_t i = 0; i < n; ++i) values.insert(values.end(), 3, static_cast<double>(i));
  return Tensor::FromDoubles({n, 3}, values);
}
Tensor Labels(int64_t n) {
  std::vector<double> values;
  for (int64_t i = 0; i < n; ++i) values.push_back(100.0 + static_cast<double>(i));
  return Tensor::FromDoubles({n}, values);
}
std::shared_ptr<const Dataset> Samples(int64_t n) {
  return std::make_shared<ArrayDataset>(std::vector<Tensor>{DataRows(n), Labels(n)});
}

// The sample numbers of a batch's data rows, checked against its label rows.
std::vector<int64_t> SampleIds(const Tensor& data, const Tensor& label) {
  REQUIRE(data.ndim() == 2);
  REQUIRE(data.shape()[1] == 3);
  REQUIRE(label.shape() == Shape{data.shape()[0]});
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < data.shape()[0]; ++r) {
    const double id = data.GetDouble(3 * r);
    CHECK(data.GetDouble(3 * r + 1) == id);
    CHECK(data.GetDouble(3 * r + 2) == id);
    CHECK(label.GetDouble(r) == 100.0 + id);
    ids.push_back(static_cast<int64_t>(id));
  }
  return ids;
}

// One epoch of a loader, as the sample numbers of each batch.
std::vector<std::vector<int64_t>> Epoch(DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (Batch& batch : loader) {
    REQUIRE(batch.size() == 2);
    batches.push_back(SampleIds(batch[0], batch[1]));
  }
  return batches;
}

std::vector<int64_t> Flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& batch : batches) all.insert(all.end(), batch.begin(), batch.end());
  return all;
}

bool IsPermutation(std::vector<int64_t> ids, int64_t n) {
  std::sort(ids.begin(), ids.end());
  for (int64_t i = 0; i < n; ++i) {
    if (ids.size() != static_cast<size_t>(n) || ids[i] != i) return false;
  }
  return true;
}

// Sample i is ({i}); Get throws for the samples in `failing`, and may dawdle.
class TestDataset final : public Dataset {
 public:
  TestDataset(int64_t n, std::set<int64_t> failing = {}, std::chrono::milliseconds delay = {})
      : n_(n), failing_(std::move(failing)), delay_(delay) {}
  int64_t size() const override { return n_; }
  std::vector<Tensor> Get(int64_t index) const override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (failing_.contains(index)) throw Error("sample " + std::to_string(index) + " is unreadable");
    return {Tensor::FromDoubles({1}, std::vector<double>{static_cast<double>(index)})};
  }

 private:
  int64_t n_;
  std::set<int64_t> failing_;
  std::chrono::milliseconds delay_;
};

std::vector<int64_t> Values(const Batch& batch) {
  std::vector<int64_t> values;
  for (const double v : batch.at(0).ToDoubles()) values.push_back(static_cast<int64_t>(v));
  return values;
}

}  // namespace

TEST_CASE("ArrayDataset: samples are rows; arrays must agree in length", "[dataset]") {
  const ArrayDataset dataset({DataRows(4), Labels(4)});
  CHECK(dataset.size() == 4);
  const std::vector<Tensor> sample = dataset.Get(2);
  REQUIRE(sample.size() == 2);
  CHECK(sample[0].shape() == Shape{3});
  CHECK(sample[0].ToDoubles() == std::vector<double>{2, 2, 2});
  CHECK(sample[1].shape() == Shape{});
  CHECK(sample[1].ToDoubles() == std::vector<double>{102});

  const int64_t rows[] = {3, 0, 3};
  const Batch batch = dataset.GetBatch(rows);
  CHECK(SampleIds(batch[0], batch[1]) == std::vector<int64_t>{3, 0, 3});

  CHECK(ErrorOf([] {
          ArrayDataset({DataRows(4), Labels(5)});
        }) ==
        "ArrayDataset: expected every array to have 4 samples (as array 0 of shape (4,3) has), given array 1 of "
        "shape (5)");
  CHECK(ErrorOf([] { ArrayDataset({}); }) == "ArrayDataset: expected at least one array, given none");
  CHECK(ErrorOf([] { ArrayDataset({Tensor({}, DType::kFloat32)}); }) ==
        "ArrayDataset: expected array 0 to have a first (sample) axis, given a scalar");
  CHECK(ErrorOf([&] { dataset.Get(4); }).find("expected rows in [0, 4) of an array of shape (4,3), given row 4") !=
        std::string::npos);
}

TEST_CASE("Dataset::GetBatch stacks the fields of Get; mismatched samples are an error", "[dataset]") {
  class Ragged final : public Dataset {
   public:
    int64_t size() const override { return 3; }
    std::vector<Tensor> Get(int64_t index) const override {
      const int64_t width = index == 2 ? 3 : 2;
      return {Tensor({2, width}, DType::kFloat32), Tensor::FromDoubles({}, std::vector<double>{double(index)})};
    }
  };
  const Ragged dataset;
  const int64_t first_two[] = {1, 0};
  const Batch batch = dataset.GetBatch(first_two);
  REQUIRE(batch.size() == 2);
  CHECK(batch[0].shape() == Shape{2, 2, 2});
  CHECK(batch[1].shape() == Shape{2});
  CHECK(batch[1].ToDoubles() == std::vector<double>{1, 0});
  const int64_t all[] = {0, 1, 2};
  CHECK(ErrorOf([&] { dataset.GetBatch(all); }) ==
        "Dataset::GetBatch: sample 2 field 0: expected float32 (2,2) (as sample 0 has), given float32 (2,3)");
}

TEST_CASE("DataLoader matches Gluon's batches in every last_batch mode", "[dataloader]") {
  const json golden = json::parse(ReadFile(kGolden));
  for (const bool prefetch : {false, true}) {
    for (const json& c : golden["data_loader"]) {
      const int64_t n = c["num_data"];
      const std::string mode = c["last_batch"];
      const json abandon_after = c["abandon_after"];
      INFO("n=" << n << " batch_size=" << c["batch_size"] << " " << mode << " abandon_after=" << abandon_after
                << (prefetch ? " (prefetch)" : " (synchronous)"));
      DataLoader loader(Samples(n), c["batch_size"], false, mode, 0, prefetch);
      for (size_t epoch = 0; epoch < c["epochs"].size(); ++epoch) {
        INFO("epoch " << epoch);
        const json& expected = c["epochs"][epoch];
        loader.Reset();
        CHECK(loader.epoch() == static_cast<int64_t>(epoch));
        CHECK(loader.size() == expected["len"].get<int64_t>());
        for (const json& b : expected["batches"]) {
          CHECK(b["data"] == b["label"]);
          std::optional<Batch> batch = loader.Next();
          REQUIRE(batch);
          CHECK(SampleIds((*batch)[0], (*batch)[1]) == b["data"].get<std::vector<int64_t>>());
        }
        const bool abandoned = epoch == 1 && !abandon_after.is_null();
        if (!abandoned) CHECK_FALSE(loader.Next());
      }
    }
  }
}

TEST_CASE("DataLoader iterates with range-for or Next(); begin() starts the next epoch", "[dataloader]") {
  DataLoader loader(Samples(10), 4);
  CHECK(loader.epoch() == -1);
  CHECK(loader.size() == 3);
  // Next() on a new loader starts epoch 0.
  int count = 0;
  while (const std::optional<Batch> batch = loader.Next()) ++count;
  CHECK(count == 3);
  CHECK(loader.epoch() == 0);
  CHECK(Epoch(loader) == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
  CHECK(loader.epoch() == 1);
  // A loop left early, then a new one: a fresh epoch from the start.
  for (Batch& batch : loader) {
    CHECK(SampleIds(batch[0], batch[1]) == std::vector<int64_t>{0, 1, 2, 3});
    break;
  }
  CHECK(Epoch(loader).size() == 3);
  CHECK(loader.epoch() == 3);
}

TEST_CASE("DataLoader's arguments are checked", "[dataloader]") {
  CHECK(ErrorOf([] { DataLoader(Samples(3), 0); }) == "DataLoader: expected a batch size >= 1, given 0");
  CHECK(ErrorOf([] { DataLoader(Samples(3), 2, false, "pad"); }) ==
        "DataLoader: expected last_batch \"keep\", \"discard\" or \"rollover\", given \"pad\"");
  CHECK(ErrorOf([] { DataLoader(nullptr, 2); }) == "DataLoader: expected a dataset, given none");
  DataLoader empty(Samples(0), 2, true);
  CHECK(empty.size() == 0);
  CHECK(Epoch(empty).empty());
}

TEST_CASE("shuffling gives a permutation per epoch, reproducible per seed and epoch", "[dataloader]") {
  constexpr int64_t n = 103;
  DataLoader a(Samples(n), 10, true, "keep", 42);
  DataLoader b(Samples(n), 10, true, "keep", 42, /*prefetch=*/false);
  DataLoader other_seed(Samples(n), 10, true, "keep", 43);
  std::set<std::vector<int64_t>> orders;
  for (int epoch = 0; epoch < 5; ++epoch) {
    INFO("epoch " << epoch);
    const std::vector<std::vector<int64_t>> batches = Epoch(a);
    REQUIRE(batches.size() == 11);
    CHECK(batches.back().size() == 3);
    const std::vector<int64_t> order = Flatten(batches);
    CHECK(IsPermutation(order, n));
    CHECK(Flatten(Epoch(b)) == order);
    CHECK(Flatten(Epoch(other_seed)) != order);
    orders.insert(order);
  }
  CHECK(orders.size() == 5);

  // An epoch's order depends on the seed and its number only, not on what came before.
  DataLoader fresh(Samples(n), 10, true, "keep", 42);
  fresh.Reset();
  fresh.Next();  // epoch 0, abandoned
  const std::vector<int64_t> epoch1 = Flatten(Epoch(fresh));
  DataLoader replay(Samples(n), 10, true, "keep", 42);
  Epoch(replay);
  CHECK(Flatten(Epoch(replay)) == epoch1);

  // Every position is reached by every sample over many epochs (no fixed points kept).
  DataLoader many(Samples(5), 5, true, "keep", 7);
  std::set<std::pair<int64_t, int64_t>> seen;  // (position, sample)
  for (int epoch = 0; epoch < 200; ++epoch) {
    const std::vector<int64_t> order = Flatten(Epoch(many));
    for (size_t p = 0; p < order.size(); ++p) seen.insert({static_cast<int64_t>(p), order[p]});
  }
  CHECK(seen.size() == 25);
}

TEST_CASE("rollover carries the tail of a shuffled epoch into the next", "[dataloader]") {
  constexpr int64_t n = 10;
  constexpr int64_t batch_size = 4;
  DataLoader loader(Samples(n), batch_size, true, "rollover", 5);
  // Each epoch's permutation (one batch of everything, same seed): it depends on the seed
  // and the epoch's number only.
  DataLoader permutations(Samples(n), n, true, "keep", 5);
  std::vector<int64_t> carried;
  for (int epoch = 0; epoch < 6; ++epoch) {
    INFO("epoch " << epoch);
    std::vector<int64_t> order = carried;
    const std::vector<int64_t> permutation = Flatten(Epoch(permutations));
    REQUIRE(IsPermutation(permutation, n));
    order.insert(order.end(), permutation.begin(), permutation.end());
    const size_t batched = order.size() / batch_size * batch_size;

    const std::vector<std::vector<int64_t>> batches = Epoch(loader);
    CHECK(loader.size() == static_cast<int64_t>(batches.size()));
    for (const auto& batch : batches) CHECK(batch.size() == static_cast<size_t>(batch_size));
    CHECK(Flatten(batches) == std::vector<int64_t>(order.begin(), order.begin() + batched));
    carried.assign(order.begin() + batched, order.end());
  }
}

TEST_CASE("the background thread gives exactly the synchronous batches", "[dataloader][concurrency]") {
  for (const std::string mode : {"keep", "discard", "rollover"}) {
    INFO(mode);
    DataLoader prefetching(Samples(37), 5, true, mode, 11, true);
    DataLoader synchronous(Samples(37), 5, true, mode, 11, false);
    for (int epoch = 0; epoch < 4; ++epoch) {
      prefetching.Reset();
      synchronous.Reset();
      while (true) {
        std::optional<Batch> expected = synchronous.Next();
        std::optional<Batch> actual = prefetching.Next();
        REQUIRE(expected.has_value() == actual.has_value());
        if (!expected) break;
        REQUIRE(actual->size() == expected->size());
        for (size_t f = 0; f < expected->size(); ++f) CHECK((*actual)[f].BitwiseEquals((*expected)[f]));
      }
    }
  }
}

TEST_CASE("an exception in the background thread is rethrown by Next()", "[dataloader][concurrency]") {
  for (const bool prefetch : {true, false}) {
    INFO((prefetch ? "prefetch" : "synchronous"));
    DataLoader loader(std::make_shared<TestDataset>(10, std::set<int64_t>{5}), 2, false, "keep", 0, prefetch);
    CHECK(Values(*loader.Next()) == std::vector<int64_t>{0, 1});
    CHECK(Values(*loader.Next()) == std::vector<int64_t>{2, 3});
    CHECK(ErrorOf([&] { loader.Next(); }) == "sample 5 is unreadable");
    // The loader goes on with the batches after it, and starts over cleanly.
    CHECK(Values(*loader.Next()) == std::vector<int64_t>{6, 7});
    loader.Reset();
    CHECK(Values(*loader.Next()) == std::vector<int64_t>{0, 1});
  }
}

TEST_CASE("Reset and destruction while the background thread works", "[dataloader][concurrency]") {
  const auto slow = std::make_shared<TestDataset>(40, std::set<int64_t>{}, std::chrono::milliseconds(1));
  {
    DataLoader loader(slow, 4, true, "keep", 3);
    loader.Next();  // the thread now assembles the second batch
  }                 // destroyed mid-batch: joins
  DataLoader loader(slow, 4, true, "rollover", 3);
  DataLoader reference(slow, 4, true, "rollover", 3, false);
  for (int round = 0; round < 5; ++round) {
    // Abandon epochs after a few batches, at different points of the thread's work.
    loader.Reset();
    reference.Reset();
    for (int i = 0; i < round; ++i) CHECK(Values(*loader.Next()) == Values(*reference.Next()));
  }
  // Full epochs after that agree too (nothing carried from abandoned epochs).
  for (int epoch = 0; epoch < 3; ++epoch) {
    loader.Reset();
    reference.Reset();
    while (std::optional<Batch> expected = reference.Next()) CHECK(Values(*loader.Next()) == Values(*expected));
    CHECK_FALSE(loader.Next());
  }
  // Many short-lived loaders: start-up and shutdown races.
  for (int i = 0; i < 50; ++i) {
    DataLoader brief(Samples(8), 3, true, "keep", static_cast<uint64_t>(i));
    if (i % 2 == 0) CHECK(brief.Next().has_value());
  }
}

TEST_CASE("NDArrayIter matches MXNet's batches and pad in every mode", "[ndarrayiter]") {
  const json golden = json::parse(ReadFile(kGolden));
  for (const json& c : golden["ndarray_iter"]) {
    const int64_t n = c["num_data"];
    const int64_t batch_size = c["batch_size"];
    const json abandon_after = c["abandon_after"];
    INFO("n=" << n << " batch_size=" << batch_size << " " << c["last_batch_handle"]
              << " abandon_after=" << abandon_after);
    NDArrayIter iter(DataRows(n), Labels(n), batch_size, false, c["last_batch_handle"].get<std::string>());
    for (const auto& [descs, expected] :
         {std::pair{iter.provide_data(), c["provide_data"]}, std::pair{iter.provide_label(), c["provide_label"]}}) {
      REQUIRE(descs.size() == 1);
      CHECK(descs[0].name == expected[0]["name"]);
      CHECK(descs[0].shape == expected[0]["shape"].get<Shape>());
      CHECK(descs[0].dtype == DType::kFloat32);
    }
    for (size_t epoch = 0; epoch < c["epochs"].size(); ++epoch) {
      INFO("epoch " << epoch);
      for (const json& expected : c["epochs"][epoch]) {
        std::optional<DataBatch> batch = iter.Next();
        REQUIRE(batch);
        REQUIRE(batch->data.size() == 1);
        REQUIRE(batch->label.size() == 1);
        CHECK(SampleIds(batch->data[0], batch->label[0]) == expected["data"].get<std::vector<int64_t>>());
        CHECK(batch->pad == expected["pad"].get<int64_t>());
      }
      const bool abandoned = epoch == 1 && !abandon_after.is_null();
      if (!abandoned) CHECK_FALSE(iter.Next());
      iter.Reset();
    }
  }
}

TEST_CASE("NDArrayIter shuffles reproducibly; pad wraps around the shuffled order", "[ndarrayiter]") {
  NDArrayIter a(DataRows(10), Labels(10), 4, true, "pad", 9);
  NDArrayIter b(DataRows(10), Labels(10), 4, true, "pad", 9);
  std::set<std::vector<int64_t>> orders;
  for (int epoch = 0; epoch < 4; ++epoch) {
    std::vector<std::vector<int64_t>> batches;
    std::vector<int64_t> pads;
    while (std::optional<DataBatch> batch = a.Next()) {
      const std::optional<DataBatch> twin = b.Next();
      REQUIRE(twin);
      CHECK(batch->data[0].BitwiseEquals(twin->data[0]));
      batches.push_back(SampleIds(batch->data[0], batch->label[0]));
      pads.push_back(batch->pad);
    }
    CHECK_FALSE(b.Next());
    REQUIRE(batches.size() == 3);
    CHECK(pads == std::vector<int64_t>{0, 0, 2});
    std::vector<int64_t> order = Flatten(batches);
    // The last batch's two padding samples are the epoch's first two.
    CHECK(order[10] == order[0]);
    CHECK(order[11] == order[1]);
    order.resize(10);
    CHECK(IsPermutation(order, 10));
    orders.insert(order);
    a.Reset();
    b.Reset();
  }
  CHECK(orders.size() == 4);
}

TEST_CASE("NDArrayIter: roll_over with shuffling, HardReset, several arrays, errors", "[ndarrayiter]") {
  NDArrayIter iter(DataRows(10), Labels(10), 4, true, "roll_over", 1);
  std::vector<int64_t> first_epoch;
  while (std::optional<DataBatch> batch = iter.Next()) {
    const std::vector<int64_t> ids = SampleIds(batch->data[0], batch->label[0]);
    first_epoch.insert(first_epoch.end(), ids.begin(), ids.end());
  }
  REQUIRE(first_epoch.size() == 8);
  iter.Reset();
  const std::optional<DataBatch> rolled = iter.Next();
  REQUIRE(rolled);
  CHECK(rolled->pad == 2);  // MXNet reports the held-back samples as padding
  const std::vector<int64_t> ids = SampleIds(rolled->data[0], rolled->label[0]);
  std::set<int64_t> held_back = {ids[0], ids[1]};
  for (const int64_t id : first_epoch) CHECK_FALSE(held_back.contains(id));

  iter.HardReset();
  int batches = 0;
  while (iter.Next()) ++batches;
  CHECK(batches == 2);
  iter.HardReset();  // after an incomplete batch: the held-back samples are dropped
  const std::optional<DataBatch> fresh = iter.Next();
  REQUIRE(fresh);
  CHECK(fresh->pad == 0);

  // Several named arrays; a label-less iterator.
  NDArrayIter named({{"image", DataRows(6)}, {"mask", Tensor({6, 2, 2}, DType::kUInt8)}}, {}, 4, false, "discard");
  const std::vector<DataDesc> provided = named.provide_data();
  REQUIRE(provided.size() == 2);
  CHECK(provided[1].name == "mask");
  CHECK(provided[1].shape == Shape{4, 2, 2});
  CHECK(provided[1].dtype == DType::kUInt8);
  CHECK(named.provide_label().empty());
  const std::optional<DataBatch> batch = named.Next();
  REQUIRE(batch);
  CHECK(batch->data.size() == 2);
  CHECK(batch->label.empty());
  CHECK_FALSE(named.Next());
  CHECK(NDArrayIter(DataRows(3), Tensor(), 2).provide_label().empty());

  CHECK(ErrorOf([] { NDArrayIter(DataRows(3), Labels(4), 2); }) ==
        "NDArrayIter: expected every array to have 3 samples (as 'data' of shape (3,3) has), given 'softmax_label' "
        "of shape (4)");
  CHECK(ErrorOf([] { NDArrayIter(DataRows(3), Labels(3), 4, false, "roll_over"); }) ==
        "NDArrayIter: roll_over expects a batch size of at most the 3 samples, given 4");
  CHECK(ErrorOf([] { NDArrayIter(DataRows(3), Labels(3), 2, false, "rollover"); }) ==
        "NDArrayIter: expected last_batch_handle \"pad\", \"discard\" or \"roll_over\", given \"rollover\"");
  CHECK(ErrorOf([] { NDArrayIter(std::vector<NamedArray>{}, {}, 2); }) ==
        "NDArrayIter: expected at least one data array, given none");
}
