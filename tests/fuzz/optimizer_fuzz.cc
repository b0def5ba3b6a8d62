// Optimizer and learning-rate schedule specs, as `kiln train --optimizer NAME --opt ...`
// and Module.InitOptimizer read them. The input is "NAME\nOPTIONS\nSCHEDULE": any text
// either parses or throws kiln::Error. A parsed optimizer's update rule names a
// registered operator that accepts its attributes, and its step scalars are finite; a
// parsed schedule's canonical spec (ToString) parses to a schedule that gives the same
// rates.
#include <cmath>
#include <string>

#include "graph/op.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"
#include "train/lr_scheduler.h"
#include "train/optimizer.h"

namespace kiln::fuzz {
namespace {

// Line `index` of `text` ("" past the end).
std::string Line(std::string_view text, int index) {
  for (int i = 0; i < index; ++i) {
    const size_t newline = text.find('\n');
    if (newline == std::string_view::npos) return "";
    text.remove_prefix(newline + 1);
  }
  return std::string(text.substr(0, text.find('\n')));
}

void CheckOptimizer(const std::string& name, const std::string& options) {
  try {
    Optimizer optimizer(ParseOptimizer(name, options));
    const UpdateRule rule = optimizer.Rule(0.5);
    const OpDef* op = OpRegistry::Global().Find(rule.op);
    FuzzCheck(op != nullptr, "optimizer '" + name + "' updates with unknown operator '" + rule.op + "'");
    try {
      op->ParseAttrs(rule.attrs, "fuzz_update");
    } catch (const Error& e) {
      // An attribute out of the operator's range (a negative epsilon, say) is refused there.
      (void)e;
    }
    for (int64_t t = 1; t <= 8; ++t) {
      const StepScalars scalars = optimizer.Scalars(t);
      FuzzCheck(!std::isnan(scalars.lr) && !std::isnan(scalars.eta), "optimizer '" + name + "': NaN step scalars");
    }
  } catch (const Error&) {
  }
}

void CheckSchedule(const std::string& spec) {
  try {
    const auto schedule = MakeLrScheduler(spec, 0.1);
    const std::string canonical = schedule->ToString();
    std::unique_ptr<LrScheduler> again;
    try {
      again = MakeLrScheduler(canonical, 0.1);
    } catch (const Error& e) {
      FuzzCheck(false, "the canonical schedule '" + canonical + "' does not parse: " + e.what());
    }
    for (int64_t t = 1; t <= 64; ++t) {
      const double first = (*schedule)(t), second = (*again)(t);
      FuzzCheck(first == second || (std::isnan(first) && std::isnan(second)),
                "'" + canonical + "' gives another rate than the spec it came from at update " + std::to_string(t));
    }
  } catch (const Error&) {
  }
}

}  // namespace

int FuzzOptimizer(const uint8_t* data, size_t size) {
  const std::string_view text = AsText(data, size);
  CheckOptimizer(Line(text, 0), Line(text, 1));
  CheckSchedule(Line(text, 2));
  return 0;
}

}  // namespace kiln::fuzz
