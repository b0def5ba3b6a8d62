// Learning-rate schedules against MXNet 1.9.1's own schedulers (rates for updates
// 1..N recorded by tools/golden/gen_lr_schedule_golden.py in
// tests/data/mxnet/lr_schedules.json), the rate as a function of the update count, the
// spec round trip, and errors for bad specs.
#include "train/lr_scheduler.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runtime/error.h"

using namespace kiln;
using json = nlohmann::json;

namespace {

struct Recorded {
  std::string spec;
  double base_lr = 0;
  std::string mxnet;        // the constructor call
  std::vector<double> lrs;  // for num_update 1, 2, ...
};

const std::vector<Recorded>& RecordedSchedules() {
  static const std::vector<Recorded> schedules = [] {
    std::ifstream in("tests/data/mxnet/lr_schedules.json");
    REQUIRE(in);
    const json doc = json::parse(in);
    std::vector<Recorded> result;
    for (const json& s : doc["schedules"]) {
      result.push_back({s["spec"], s["base_lr"], s["mxnet"], s["lr"].get<std::vector<double>>()});
    }
    REQUIRE(result.size() >= 10);
    return result;
  }();
  return schedules;
}

bool Close(double actual, double expected) {
  return std::fabs(actual - expected) <= 1e-12 * std::fabs(expected);
}

// The first update (from 1) where `scheduler`, called in `order`, differs from `lrs`; 0 if none.
int64_t FirstDifference(LrScheduler& scheduler, const std::vector<double>& lrs, const std::vector<int64_t>& order) {
  for (const int64_t n : order) {
    if (!Close(scheduler(n), lrs.at(static_cast<size_t>(n - 1)))) return n;
  }
  return 0;
}

std::vector<int64_t> Counts(size_t n) {
  std::vector<int64_t> counts;
  for (size_t i = 1; i <= n; ++i) counts.push_back(static_cast<int64_t>(i));
  return counts;
}

}  // namespace

TEST_CASE("the recorded schedules cover every kind, with and without warm-up", "[lr_scheduler]") {
  std::set<std::string> kinds;
  bool linear = false, constant = false, plain = false;
  for (const Recorded& r : RecordedSchedules()) {
    kinds.insert(r.spec.substr(0, r.spec.find(':')));
    const bool warm = r.spec.find("warmup_steps") != std::string::npos;
    plain |= !warm;
    constant |= r.spec.find("warmup_mode=constant") != std::string::npos;
    linear |= warm && r.spec.find("warmup_mode=constant") == std::string::npos;
  }
  CHECK(kinds == std::set<std::string>{"factor", "multifactor", "poly", "cosine"});
  CHECK((linear && constant && plain));
}

TEST_CASE("schedules match MXNet 1.9.1's for increasing update counts", "[lr_scheduler][mxnet]") {
  for (const Recorded& r : RecordedSchedules()) {
    INFO(r.spec << " with base_lr " << r.base_lr << ", MXNet's " << r.mxnet);
    const auto scheduler = MakeLrScheduler(r.spec, r.base_lr);
    for (size_t i = 0; i < r.lrs.size(); ++i) {
      const auto n = static_cast<int64_t>(i + 1);
      INFO("num_update " << n);
      const double lr = (*scheduler)(n);
      CHECK(Close(lr, r.lrs[i]));
    }
  }
}

TEST_CASE("a schedule's rate depends on the update count alone", "[lr_scheduler]") {
  for (const Recorded& r : RecordedSchedules()) {
    INFO(r.spec);
    std::vector<int64_t> order = Counts(r.lrs.size());
    // Backward, then a restart after a run: MXNet's stateful schedulers would keep their
    // decayed rates; these give each count's rate.
    std::vector<int64_t> backward(order.rbegin(), order.rend());
    CHECK(FirstDifference(*MakeLrScheduler(r.spec, r.base_lr), r.lrs, backward) == 0);
    const auto scheduler = MakeLrScheduler(r.spec, r.base_lr);
    CHECK(FirstDifference(*scheduler, r.lrs, order) == 0);
    CHECK(FirstDifference(*scheduler, r.lrs, {3, 1, 2, 40, 7, 60, 59, 1}) == 0);
  }
}

TEST_CASE("ToString gives back the same schedule", "[lr_scheduler]") {
  for (const Recorded& r : RecordedSchedules()) {
    INFO(r.spec);
    const auto original = MakeLrScheduler(r.spec, r.base_lr);
    const std::string text = original->ToString();
    INFO(text);
    const auto again = MakeLrScheduler(text, r.base_lr);
    CHECK(again->ToString() == text);
    CHECK(FirstDifference(*again, r.lrs, Counts(r.lrs.size())) == 0);
    CHECK(again->base_lr == r.base_lr);
  }
  CHECK(MakeLrScheduler("factor:step=100,factor=0.5", 0.1)->ToString() ==
        "factor:step=100,factor=0.5,stop_factor_lr=1e-08");
  CHECK(MakeLrScheduler("multifactor:step=100;200,factor=0.1", 1)->ToString() == "multifactor:step=100;200,factor=0.1");
  CHECK(MakeLrScheduler("poly:max_update=1000,pwr=2,warmup_steps=10", 1)->ToString() ==
        "poly:max_update=1000,pwr=2,final_lr=0,warmup_steps=10,warmup_begin_lr=0,warmup_mode=linear");
  CHECK(MakeLrScheduler("", 0.5)->ToString() == "constant");
}

TEST_CASE("constant schedules, with warm-up", "[lr_scheduler]") {
  for (const std::string spec : {"", "constant", " constant "}) {
    const auto scheduler = MakeLrScheduler(spec, 0.25);
    CHECK((*scheduler)(1) == 0.25);
    CHECK((*scheduler)(1000000) == 0.25);
  }
  const auto warm = MakeLrScheduler("constant:warmup_steps=4,warmup_begin_lr=0.05", 0.25);
  CHECK((*warm)(0) == 0.05);
  CHECK((*warm)(2) == 0.05 + (0.25 - 0.05) * 2.0 / 4.0);
  CHECK((*warm)(4) == 0.25);
  CHECK(warm->ToString() == "constant:warmup_steps=4,warmup_begin_lr=0.05,warmup_mode=linear");
}

TEST_CASE("factor schedules reduce once per step, never below stop_factor_lr", "[lr_scheduler]") {
  const auto scheduler = MakeLrScheduler("factor:step=100, factor=0.5, stop_factor_lr=0.01", 1.0);
  CHECK((*scheduler)(100) == 1.0);
  CHECK((*scheduler)(101) == 0.5);
  CHECK((*scheduler)(201) == 0.25);
  CHECK((*scheduler)(1000000000) == 0.01);  // the stop is a fixed point: no billion multiplications
  CHECK((*scheduler)(150) == 0.5);
  // A list's items may be separated by ',' too, as in specs nested where ';' means ','.
  const auto listed = MakeLrScheduler("multifactor:step=100,200,factor=0.1", 1.0);
  CHECK(listed->ToString() == "multifactor:step=100;200,factor=0.1");
  CHECK((*listed)(201) == 1.0 * 0.1 * 0.1);
}

TEST_CASE("poly and cosine schedules stay at their final rate past max_update", "[lr_scheduler]") {
  CHECK((*MakeLrScheduler("poly:max_update=10,final_lr=0.01", 0.1))(1000) == 0.01);
  CHECK(Close((*MakeLrScheduler("cosine:max_update=10,final_lr=0.01", 0.1))(11), 0.01));
  CHECK((*MakeLrScheduler("poly:max_update=10,pwr=0", 0.1))(1000) == 0.1);
}

TEST_CASE("bad schedule specs are errors naming the key and the value", "[lr_scheduler][errors]") {
  const auto fails = [](const std::string& spec, const std::string& message, double base_lr = 0.1) {
    INFO(spec);
    CHECK_THROWS_WITH(MakeLrScheduler(spec, base_lr), Catch::Contains(message));
  };
  fails("exponential:step=3", "unknown kind 'exponential' (expected constant, factor, multifactor, poly, cosine)");
  fails("factor:step=10,decay=0.5", "unknown key 'decay' for factor (known: step, factor, stop_factor_lr, ");
  fails("factor:factor=0.5", "missing key 'step'");
  fails("factor:step=0", "key 'step': expected an integer >= 1, given 0");
  fails("factor:step=1.5", "key 'step': expected an integer, given '1.5'");
  fails("factor:step=ten", "key 'step': expected an integer, given 'ten'");
  fails("factor:step=10,factor=1.5", "key 'factor': expected at most 1 (the rate must not grow), given 1.5");
  fails("factor:step=10,factor=abc", "key 'factor': expected a finite number, given 'abc'");
  fails("factor:step=10,factor=nan", "key 'factor': expected a finite number, given 'nan'");
  fails("factor:step=10,factor=0.5x", "key 'factor': expected a finite number, given '0.5x'");
  fails("factor:step=10,step=20", "key 'step' given twice");
  fails("factor:step=", "key 'step': no value");
  fails("factor:step=10,", "expected KEY=VALUE, given ''");
  fails("factor:step=10,0.5", "expected KEY=VALUE, given '0.5'");
  fails("multifactor:step=200;100", "key 'step': expected increasing counts, given 200 then 100");
  fails("multifactor:step=0;100", "key 'step': expected an integer >= 1, given 0");
  fails("multifactor:step=10;;20", "key 'step': expected an integer, given ''");
  fails("poly:pwr=2", "missing key 'max_update'");
  fails("poly:max_update=0", "key 'max_update': expected an integer >= 1, given 0");
  fails("poly:max_update=100,pwr=-1", "key 'pwr': expected a power >= 0, given -1");
  fails("cosine:max_update=10,warmup_steps=10", "key 'warmup_steps': expected fewer than max_update (10), given 10");
  fails("cosine:max_update=10,warmup_steps=-1", "key 'warmup_steps': expected an integer >= 0, given -1");
  fails("cosine:max_update=10,warmup_mode=cubic", "key 'warmup_mode': expected linear or constant, given 'cubic'");
  fails("cosine:max_update=10,warmup_begin_lr=0.5",
        "key 'warmup_begin_lr': expected at most the base rate 0.1, given 0.5");
  fails("constant:step=3", "unknown key 'step' for constant (known: warmup_steps, warmup_begin_lr, warmup_mode)");
  fails("factor:step=10", "the base rate must be finite, given inf", INFINITY);
  // The spec is named too.
  fails("factor:step=0", "lr_scheduler 'factor:step=0': ");
  const auto scheduler = MakeLrScheduler("factor:step=10", 0.1);
  CHECK_THROWS_WITH((*scheduler)(-1), Catch::Contains("num_update must be >= 0, given -1"));
}
