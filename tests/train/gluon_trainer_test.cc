// kiln's Gluon Trainer (train/gluon/trainer.h) against MXNet 1.9.1's gluon.Trainer step
// by step (tools/golden/gen_gluon_golden.py records the traces: the initial parameters
// as net.save_parameters wrote them, the batches, each step's losses and parameters),
// and on its own: a synthetic problem it learns, optimizer states saved and resumed,
// values set between steps.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/op_test_util.h"
#include "tests/train/gluon_test_util.h"
#include "train/gluon/loss.h"
#include "train/gluon/nn.h"
#include "train/gluon/trainer.h"

using namespace kiln;
using namespace kiln::gluon;

namespace {

std::shared_ptr<loss::Loss> MakeTraceLoss(const std::string& gluon) {
  if (gluon == "gluon.loss.SoftmaxCrossEntropyLoss()") return std::make_shared<loss::SoftmaxCrossEntropyLoss>();
  if (gluon == "gluon.loss.HuberLoss()") return std::make_shared<loss::HuberLoss>();
  if (gluon == "gluon.loss.L2Loss()") return std::make_shared<loss::L2Loss>();
  FAIL("no loss for " << gluon);
  return nullptr;
}

std::map<std::string, AttrArg> OptimizerParams(const nlohmann::json& params) {
  std::map<std::string, AttrArg> options;
  for (const auto& [key, value] : params.items()) options.emplace(key, value.get<double>());
  return options;
}

double MaxAbs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.size(); ++i) m = std::max(m, std::abs(t.GetDouble(i)));
  return m;
}

// Points in [-1, 1)^4 labelled by a linear teacher: the class whose row of a fixed random
// matrix gives the largest score.
std::pair<Tensor, Tensor> TeacherProblem(int64_t n, uint64_t seed) {
  const Tensor x = kiln::testing::RandomTensor({n, 4}, seed);
  const Tensor teacher = kiln::testing::RandomTensor({3, 4}, 99);
  Tensor y({n}, DType::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> scores(3, 0.0);
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t j = 0; j < 4; ++j) scores[c] += teacher.GetDouble(c * 4 + j) * x.GetDouble(i * 4 + j);
    }
    y.SetDouble(i, static_cast<double>(std::max_element(scores.begin(), scores.end()) - scores.begin()));
  }
  return {x, y};
}

std::shared_ptr<nn::HybridSequential> SmallMlp() {
  return kiln::testing::TwoLayerMlp(16, "relu", 3);
}

}  // namespace

TEST_CASE("Gluon's Trainer steps match MXNet 1.9.1's gluon.Trainer", "[gluon][train][mxnet]") {
  const auto index = kiln::testing::LoadGluonIndex("trainer.json");
  const auto arrays = kiln::testing::LoadGluonArrays("trainer.npz");
  REQUIRE(index["cases"].size() >= 3);
  for (const auto& c : index["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    NameManager::Reset();  // the settings select parameters by name
    auto net = c["net"] == "cnn_bn" ? kiln::testing::CnnBn() : kiln::testing::TwoLayerMlp(12, "tanh", 2);
    auto loss = MakeTraceLoss(c["loss"]);
    net->LoadParameters(std::string(kiln::testing::kGluonData) + name + "-init.params");
    for (const auto& setting : c["settings"]) {
      const std::string attr = setting[1];
      if (attr == "grad_req") {
        net->CollectParams(setting[0]).SetAttr(attr, setting[2].get<std::string>());
      } else {
        net->CollectParams(setting[0]).SetAttr(attr, setting[2].get<double>());
      }
    }
    Trainer trainer(net->CollectParams(), c["optimizer"], OptimizerParams(c["optimizer_params"]));
    const auto params = net->CollectParamsWithPrefix();
    double worst = 0;
    std::string where;
    for (size_t k = 0; k < c["batches"].size(); ++k) {
      const std::string step = std::to_string(k);
      const Tensor& label = arrays.at(name + "/label/" + step);
      const float mean_loss =
          trainer.TrainStep(*net, *loss, arrays.at(name + "/data/" + step), label, c["batches"][k].get<int64_t>());
      const Tensor& losses = arrays.at(name + "/loss/" + step);
      double expected = 0;
      for (int64_t i = 0; i < losses.size(); ++i) expected += losses.GetDouble(i) / static_cast<double>(losses.size());
      CHECK(mean_loss == Approx(expected).epsilon(1e-5));
      // Reading a parameter hands the trained value back from the compiled step.
      for (const auto& [key, param] : params) {
        const Tensor& golden = arrays.at(name + "/step" + std::to_string(k + 1) + "/" + key);
        std::string message;
        if (!kiln::testing::AllClose(param->Data(), golden, 0, 1e-5 * std::max(MaxAbs(golden), 1e-6), &message)) {
          worst = std::max(worst, 1.0);
          where = key + " after step " + std::to_string(k + 1) + ": " + message;
        }
      }
    }
    INFO(where);
    CHECK(worst == 0);
    CHECK(trainer.num_update() == static_cast<int64_t>(c["batches"].size()));
  }
}

TEST_CASE("Gluon's Trainer learns a synthetic classification problem", "[gluon][train]") {
  auto net = SmallMlp();
  net->Initialize("xavier(magnitude=2)", 3);
  loss::SoftmaxCrossEntropyLoss loss;
  Trainer trainer(net->CollectParams(), "sgd", {{"learning_rate", 0.2}, {"momentum", 0.9}, {"wd", 1e-4}});
  const auto [x, y] = TeacherProblem(48, 1);
  const float first = trainer.TrainStep(*net, loss, x, y, 48);
  float last = first;
  for (int step = 0; step < 30; ++step) last = trainer.TrainStep(*net, loss, x, y, 48);
  CHECK(last < 0.25f * first);
  // Calling the net sees the trained parameters.
  const Tensor logits = (*net)(x)[0];
  int correct = 0;
  for (int64_t i = 0; i < 48; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 3; ++j) best = logits.GetDouble(i * 3 + j) > logits.GetDouble(i * 3 + best) ? j : best;
    correct += best == static_cast<int64_t>(y.GetDouble(i));
  }
  CHECK(correct >= 45);
  CHECK(loss(logits, y).size() == 48);
}

TEST_CASE("Gluon's Trainer resumes from saved parameters and optimizer states", "[gluon][train]") {
  const auto [x, y] = TeacherProblem(12, 2);
  const std::string params_file = kiln::testing::TempPath("resume.params");
  const std::string states_file = kiln::testing::TempPath("resume.states");
  loss::SoftmaxCrossEntropyLoss loss;

  auto net = SmallMlp();
  net->Initialize("xavier", 4);
  Trainer trainer(net->CollectParams(), "adam", {{"learning_rate", 0.01}, {"wd", 1e-3}});
  for (int step = 0; step < 2; ++step) trainer.TrainStep(*net, loss, x, y, 12);
  net->SaveParameters(params_file);
  trainer.SaveStates(states_file);
  for (int step = 0; step < 3; ++step) trainer.TrainStep(*net, loss, x, y, 12);

  auto resumed = SmallMlp();
  resumed->LoadParameters(params_file);
  Trainer again(resumed->CollectParams(), "adam", {{"learning_rate", 0.01}, {"wd", 1e-3}});
  again.LoadStates(states_file);
  CHECK(again.num_update() == 2);
  for (int step = 0; step < 3; ++step) again.TrainStep(*resumed, loss, x, y, 12);
  const auto expected = net->CollectParamsWithPrefix();
  const auto actual = resumed->CollectParamsWithPrefix();
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i].first);
    CHECK(actual[i].second->Data().BitwiseEquals(expected[i].second->Data()));
  }
  CHECK_THAT(kiln::testing::ErrorOf([&] {
               ParamList bogus;
               bogus.tensors.emplace_back("4__mom", Tensor({1}, DType::kFloat32));
               SaveNamedParams(states_file + ".kiln-params", bogus);
               again.LoadStates(states_file + ".kiln-params");
             }),
             Catch::Contains("'4__mom'") && Catch::Contains("not an optimizer state of this trainer's 4 parameters"));
}

TEST_CASE("Gluon's Trainer takes values set between steps and leaves frozen parameters", "[gluon][train]") {
  const auto [x, y] = TeacherProblem(9, 3);
  auto net = SmallMlp();
  net->Initialize("xavier", 5);
  loss::SoftmaxCrossEntropyLoss loss;
  auto& first = dynamic_cast<nn::Dense&>((*net)[0]);
  first.bias()->SetGradReq(GradReq::kNull);
  Trainer trainer(net->CollectParams(), "sgd", {{"learning_rate", 0.5}});
  trainer.TrainStep(*net, loss, x, y, 9);
  const Tensor frozen = first.bias()->Data().Clone();
  // A value set between steps is what the next step starts from.
  first.weight()->SetData(Tensor(first.weight()->shape(), DType::kFloat32));
  trainer.TrainStep(*net, loss, x, y, 9);
  CHECK(first.bias()->Data().BitwiseEquals(frozen));
  // From zero weights the first layer's gradient is zero (relu of the bias alone, and
  // the bias frozen at zero): the weights stay zero.
  CHECK(first.weight()->Data().ToDoubles() == std::vector<double>(first.weight()->Data().size(), 0.0));
}

TEST_CASE("Gluon's Trainer draws Dropout's masks from its seed", "[gluon][train]") {
  const auto [x, y] = TeacherProblem(8, 4);
  loss::SoftmaxCrossEntropyLoss loss;
  const auto train = [&](uint64_t seed) {
    NameManager::Reset();             // the same names: the same initial values
    auto net = kiln::testing::Mlp();  // Dense, BatchNorm, Dropout(0.3), Dense
    net->Initialize("xavier", 1);
    Trainer trainer(net->CollectParams(), "sgd", {{"learning_rate", 0.1}}, seed);
    for (int step = 0; step < 2; ++step) trainer.TrainStep(*net, loss, x, y, 8);
    return dynamic_cast<nn::Dense&>((*net)[0]).weight()->Data().Clone();
  };
  const Tensor first = train(7);
  CHECK(train(7).BitwiseEquals(first));
  CHECK(!train(8).BitwiseEquals(first));
}
