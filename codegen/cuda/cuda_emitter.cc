#include "codegen/cuda/cuda_emitter.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "codegen/cuda/cuda_prelude.h"
#include "runtime/code_module.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

namespace kiln::cuda {
namespace {

using kir::BinaryOp;
using kir::ExprKind;
using kir::LoopKind;
using kir::ScalarType;
using kir::StmtKind;
using kir::UnaryOp;

// The C type a value of `type` is computed in.
const char* ValueType(ScalarType type) {
  switch (type) {
    case ScalarType::kBool: return "bool";
    case ScalarType::kInt8: return "signed char";
    case ScalarType::kUInt8: return "unsigned char";
    case ScalarType::kInt16: return "short";
    case ScalarType::kUInt16: return "unsigned short";
    case ScalarType::kInt32: return "int";
    case ScalarType::kUInt32: return "unsigned int";
    case ScalarType::kInt64: return "long long";
    case ScalarType::kUInt64: return "unsigned long long";
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kFloat32: return "float";
    case ScalarType::kFloat64: return "double";
  }
  return "void";
}

// The C type an element of a buffer of `type` is stored as.
const char* StorageType(ScalarType type) {
  switch (type) {
    case ScalarType::kBool: return "unsigned char";
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16: return "unsigned short";
    default: return ValueType(type);
  }
}

bool IsSigned(ScalarType type) {
  return !kir::IsFloatType(type) && !kir::IsUnsignedType(type) && type != ScalarType::kBool;
}

// Rounds a float result to a 16-bit float type's precision (a no-op for other types).
std::string Rounded(ScalarType type, const std::string& value) {
  if (type == ScalarType::kFloat16) return "kiln_round_h(" + value + ")";
  if (type == ScalarType::kBFloat16) return "kiln_round_bf(" + value + ")";
  return value;
}

std::string IntLiteral(ScalarType type, int64_t value) {
  std::string digits;
  if (type == ScalarType::kUInt64) {
    digits = std::to_string(static_cast<uint64_t>(value)) + "ull";
  } else if (value == std::numeric_limits<int64_t>::min()) {
    digits = "(-9223372036854775807ll - 1)";
  } else {
    digits = std::to_string(value) + "ll";
  }
  if (type == ScalarType::kInt64 || type == ScalarType::kUInt64) return digits;
  if (type == ScalarType::kBool) return value != 0 ? "true" : "false";
  return "((" + std::string(ValueType(type)) + ")" + digits + ")";
}

// A float immediate, rounded to its type as the interpreter rounds it, written exactly.
std::string FloatLiteral(ScalarType type, double value) {
  const bool is_double = type == ScalarType::kFloat64;
  if (type == ScalarType::kFloat32) value = static_cast<float>(value);
  if (type == ScalarType::kFloat16) value = HalfToFloat(FloatToHalf(static_cast<float>(value)));
  if (type == ScalarType::kBFloat16) value = BFloat16ToFloat(FloatToBFloat16(static_cast<float>(value)));
  if (std::isnan(value)) return is_double ? "KILN_NAN_D" : "KILN_NAN_F";
  if (std::isinf(value)) {
    const std::string inf = is_double ? "KILN_INF_D" : "KILN_INF_F";
    return value < 0 ? "(-" + inf + ")" : inf;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%a", value);
  const std::string literal = std::string(text) + (is_double ? "" : "f");
  return value < 0 || std::signbit(value) ? "(" + literal + ")" : literal;
}

// A static upper bound of an int64 expression, where one is evident.
std::optional<int64_t> UpperBound(const kir::Expr& e) {
  if (e->kind == ExprKind::kIntImm) return e->int_value;
  if (e->kind == ExprKind::kBinary && e->binary == BinaryOp::kMin) {
    const auto a = UpperBound(e->operands[0]), b = UpperBound(e->operands[1]);
    if (a && b) return std::min(*a, *b);
    return a ? a : b;
  }
  return std::nullopt;
}

// The independent loop bound to threads together with the parallel loop `parallel`, and
// its extent's bound; nothing when there is none.
std::optional<std::pair<const kir::StmtNode*, int64_t>> ThreadBoundInnerLoop(const kir::StmtNode& parallel) {
  const kir::Stmt& body = parallel.body[0];
  if (body->kind != StmtKind::kFor || body->loop_kind != LoopKind::kIndependent) return std::nullopt;
  const auto bound = UpperBound(body->extent);
  if (!bound || *bound < 1 || *bound > (int64_t{1} << 20)) return std::nullopt;
  return std::pair{body.get(), *bound};
}

bool Mentions(const kir::Expr& e, const kir::Expr& var) {
  if (e->kind == ExprKind::kVar) return e->var_id == var->var_id;
  for (const auto& operand : e->operands) {
    if (Mentions(operand, var)) return true;
  }
  return false;
}

// Whether `index` is var + (something without var): consecutive iterations, consecutive
// elements.
bool UnitStride(const kir::Expr& index, const kir::Expr& var) {
  if (index->kind == ExprKind::kVar) return index->var_id == var->var_id;
  if (index->kind != ExprKind::kBinary) return false;
  const kir::Expr& a = index->operands[0];
  const kir::Expr& b = index->operands[1];
  if (index->binary == BinaryOp::kAdd) {
    return (UnitStride(a, var) && !Mentions(b, var)) || (!Mentions(a, var) && UnitStride(b, var));
  }
  return index->binary == BinaryOp::kSub && UnitStride(a, var) && !Mentions(b, var);
}

// Elementwise work four elements a thread, with 16-byte loads and stores: an inner loop
// bound to threads whose body stores only float32 arguments at unit stride, after the
// loads of its value (one store, or stores to arguments the plan keeps apart from the
// others). The loads it moves as float4 are the float32 arguments read at unit stride
// outside a select's arms (those read only when chosen).
struct Float4Plan {
  std::vector<const kir::StmtNode*> stores;
  std::vector<const kir::ExprNode*> loads;
};
constexpr int64_t kFloat4 = 4;

bool IsFloat32Arg(const kir::Buffer& buffer) {
  return buffer->type == ScalarType::kFloat32 && !buffer->is_local;
}

void CollectFloat4Loads(const kir::Expr& e, const kir::Expr& var, std::set<const kir::ExprNode*>& seen,
                        Float4Plan& plan) {
  if (!seen.insert(e.get()).second) return;
  if (e->kind == ExprKind::kLoad && IsFloat32Arg(e->buffer) && UnitStride(e->operands[0], var)) {
    plan.loads.push_back(e.get());
    return;
  }
  // A select's arms are read only when chosen (they may guard an index): not hoisted.
  const size_t operands = e->kind == ExprKind::kSelect ? 1 : e->operands.size();
  for (size_t k = 0; k < operands; ++k) CollectFloat4Loads(e->operands[k], var, seen, plan);
}

// Whether `e` loads any of `buffers` (select arms included).
bool LoadsAny(const kir::Expr& e, const std::set<const kir::BufferNode*>& buffers) {
  if (e->kind == ExprKind::kLoad && buffers.count(e->buffer.get())) return true;
  return std::any_of(e->operands.begin(), e->operands.end(),
                     [&](const kir::Expr& operand) { return LoadsAny(operand, buffers); });
}

std::optional<Float4Plan> PlanFloat4(const kir::Kernel& kernel, const kir::StmtNode& inner, int64_t bound) {
  if (bound % kFloat4 != 0) return std::nullopt;
  const kir::Stmt& body = inner.body[0];
  std::vector<const kir::StmtNode*> stores;
  if (body->kind == StmtKind::kStore) {
    stores.push_back(body.get());
  } else if (body->kind == StmtKind::kBlock) {
    for (const auto& child : body->body) {
      if (child->kind != StmtKind::kStore) return std::nullopt;
      stores.push_back(child.get());
    }
  } else {
    return std::nullopt;
  }
  Float4Plan plan;
  std::set<const kir::ExprNode*> seen;
  std::set<const kir::BufferNode*> stored;  // by the stores before this one
  for (const kir::StmtNode* store : stores) {
    if (!IsFloat32Arg(store->buffer) || !UnitStride(store->index, inner.loop_var)) return std::nullopt;
    // The four elements' loads come before their stores: a value that reads what an
    // earlier store of the body wrote needs the stores in order.
    if (LoadsAny(store->value, stored)) return std::nullopt;
    stored.insert(store->buffer.get());
    if (stores.size() > 1) {
      // A later store's loads must not read what an earlier one wrote.
      const auto arg = std::find(kernel.args.begin(), kernel.args.end(), store->buffer);
      const auto k = static_cast<size_t>(arg - kernel.args.begin());
      if (arg == kernel.args.end() || k >= kernel.noalias.size() || !kernel.noalias[k]) return std::nullopt;
    }
    CollectFloat4Loads(store->value, inner.loop_var, seen, plan);
  }
  plan.stores = std::move(stores);
  return plan;
}

// Threads of a block that cooperates on one parallel iteration (reductions).
constexpr int64_t kCudaCooperativeBlock = 256;

bool HasReduction(const kir::Stmt& s) {
  if (s == nullptr) return false;
  if (s->kind == StmtKind::kFor && s->loop_kind == LoopKind::kReduction) return true;
  for (const auto& child : s->body) {
    if (HasReduction(child)) return true;
  }
  return HasReduction(s->otherwise);
}

bool CallsRoutine(const kir::Stmt& s) {
  if (s == nullptr) return false;
  if (s->kind == StmtKind::kCall) return true;
  for (const auto& child : s->body) {
    if (CallsRoutine(child)) return true;
  }
  return CallsRoutine(s->otherwise);
}

class KernelWriter {
 public:
  KernelWriter(const kir::Kernel& kernel, std::ostringstream& out) : kernel_(kernel), out_(out) {}

  CudaKernelInfo Write() {
    CudaKernelInfo info;
    info.name = kernel_.name;
    info.entry = CudaEntryName(kernel_.name);
    info.args = kernel_.args;
    info.parallel_extent = kernel_.parallel_extent;
    // Arguments the plan keeps apart from every other written one are __restrict__, and
    // const where the kernel only reads them (loads through the read-only cache).
    const std::vector<bool> written = kir::WrittenArgs(kernel_);
    info.written = written;
    std::string params;
    for (size_t k = 0; k < kernel_.args.size(); ++k) {
      const kir::Buffer& arg = kernel_.args[k];
      buffer_names_[arg.get()] = "a" + std::to_string(k);
      const bool restrict = k < kernel_.noalias.size() && kernel_.noalias[k];
      params += std::string(restrict && !written[k] ? "const " : "") + StorageType(arg->type) +
                (restrict ? "* __restrict__ a" : "* a") + std::to_string(k) + ", ";
    }
    out_ << "// kernel " << kernel_.name << "\n";
    out_ << "extern \"C\" __global__ void " << info.entry << "(" << params << "long long begin, long long end) {\n";
    const kir::Stmt& body = kernel_.body;
    const std::string thread = "((long long)blockIdx.x * blockDim.x + threadIdx.x)";
    const std::string stride = "((long long)gridDim.x * blockDim.x)";
    const bool parallel = body->kind == StmtKind::kFor && body->loop_kind == LoopKind::kParallel;
    if (HasReduction(body)) {
      // A block per parallel iteration, its threads cooperating.
      info.block_threads = kCudaCooperativeBlock;
      info.has_parallel_loop = parallel;
      cooperative_ = true;
      if (parallel) {
        const std::string p = VarName(body->loop_var);
        Line("for (long long " + p + " = begin + blockIdx.x; " + p + " < end; " + p + " += gridDim.x) {");
        ++indent_;
        Emit(body->body[0]);
        --indent_;
        Line("}");
      } else {
        Line("if (blockIdx.x != 0 || begin >= end) return;");
        Emit(body);
      }
      out_ << "}\n\n";
      return info;
    }
    if (parallel) {
      info.has_parallel_loop = true;
      const std::string p = VarName(body->loop_var);
      const auto bound = ThreadBoundInnerLoop(*body);
      const std::optional<Float4Plan> float4 = bound ? PlanFloat4(kernel_, *bound->first, bound->second) : std::nullopt;
      if (float4) {
        info.inner_threads = bound->second / kFloat4;
        info.float4 = true;
        EmitFloat4Loop(*body, *bound->first, *float4, info.inner_threads, thread, stride);
      } else if (bound) {
        const kir::StmtNode* inner = bound->first;
        info.inner_threads = bound->second;
        OpenThreadBoundLoop(p, info.inner_threads, 1, thread, stride);
        Statement([&] {
          const std::string extent = Value(inner->extent);
          Line("if (kiln_lane < " + extent + ") {");
          ++indent_;
          const std::string first = Value(inner->begin);
          Line("const long long " + VarName(inner->loop_var) + " = " + first + " + kiln_lane;");
          Emit(inner->body[0]);
          --indent_;
          Line("}");
        });
      } else {
        Line("for (long long " + p + " = begin + " + thread + "; " + p + " < end; " + p + " += " + stride + ") {");
        ++indent_;
        Emit(body->body[0]);
      }
      if (!float4) {
        --indent_;
        Line("}");
      }
    } else {
      Line("if (" + thread + " != 0 || begin >= end) return;");
      Emit(body);
    }
    out_ << "}\n\n";
    return info;
  }

 private:
  // Opens the grid-stride loop over (parallel iteration `p`, thread of it) pairs, with
  // `threads` threads an iteration, each starting at inner index kiln_lane = its thread
  // number times `scale`.
  void OpenThreadBoundLoop(const std::string& p, int64_t threads, int64_t scale, const std::string& thread,
                           const std::string& stride) {
    const std::string lanes = std::to_string(threads) + "ll";
    Line("const long long kiln_items = (end - begin) * " + lanes + ";");
    Line("for (long long kiln_t = " + thread + "; kiln_t < kiln_items; kiln_t += " + stride + ") {");
    ++indent_;
    Line("const long long " + p + " = begin + kiln_t / " + lanes + ";");
    Line("const long long kiln_lane = kiln_t % " + lanes + (scale == 1 ? "" : " * " + std::to_string(scale)) + ";");
  }

  // The parallel loop and its inner loop bound to threads, four inner iterations a thread:
  // where all four are in range and every moved access is 16-byte aligned, the planned
  // loads as kiln_f4, the body once per element on their components, and the stores as
  // kiln_f4; else the four one by one, as the scalar form runs them.
  void EmitFloat4Loop(const kir::StmtNode& parallel, const kir::StmtNode& inner, const Float4Plan& plan,
                      int64_t quads_per_iteration, const std::string& thread, const std::string& stride) {
    const std::string j = VarName(inner.loop_var);
    OpenThreadBoundLoop(VarName(parallel.loop_var), quads_per_iteration, kFloat4, thread, stride);
    Statement([&] {
      const std::string extent = Value(inner.extent);
      const std::string first = Value(inner.begin);
      Line("const long long " + j + " = " + first + " + kiln_lane;");
      // The moved accesses' addresses at the first of the four.
      std::vector<std::string> pointers;
      for (size_t k = 0; k < plan.loads.size(); ++k) {
        const kir::ExprNode& load = *plan.loads[k];
        pointers.push_back("kiln_p" + std::to_string(k));
        Line("const float* " + pointers.back() + " = " + BufferName(load.buffer) + " + " + Value(load.operands[0]) +
             ";");
      }
      std::vector<std::string> targets;
      for (size_t s = 0; s < plan.stores.size(); ++s) {
        targets.push_back("kiln_q" + std::to_string(s));
        Line("float* " + targets.back() + " = " + BufferName(plan.stores[s]->buffer) + " + " +
             Value(plan.stores[s]->index) + ";");
      }
      std::string aligned;
      for (const auto* names : {&pointers, &targets}) {
        for (const std::string& name : *names)
          aligned += (aligned.empty() ? "" : " | ") + ("(unsigned long long)" + name);
      }
      Line("if (kiln_lane + 4 <= " + extent + " && ((" + aligned + ") & 15) == 0) {");
      ++indent_;
      for (size_t k = 0; k < plan.loads.size(); ++k) {
        Line("const kiln_f4 kiln_v" + std::to_string(k) + " = *(const kiln_f4*)" + pointers[k] + ";");
        vector_loads_[plan.loads[k]] = "kiln_v" + std::to_string(k);
      }
      for (size_t s = 0; s < plan.stores.size(); ++s) Line("kiln_f4 kiln_s" + std::to_string(s) + ";");
      static constexpr const char* kComponents[] = {"x", "y", "z", "w"};
      for (int u = 0; u < kFloat4; ++u) {
        vector_lane_ = kComponents[u];
        Line("{");
        ++indent_;
        Line("const long long " + j + " = " + first + " + kiln_lane + " + std::to_string(u) + ";");
        for (size_t s = 0; s < plan.stores.size(); ++s) {
          Statement([&] {
            Line("kiln_s" + std::to_string(s) + "." + kComponents[u] + " = " + Value(plan.stores[s]->value) + ";");
          });
        }
        --indent_;
        Line("}");
      }
      vector_lane_ = nullptr;
      vector_loads_.clear();
      for (size_t s = 0; s < plan.stores.size(); ++s) {
        Line("*(kiln_f4*)" + targets[s] + " = kiln_s" + std::to_string(s) + ";");
      }
      --indent_;
      Line("} else {");
      ++indent_;
      Line("for (long long kiln_u = 0; kiln_u < 4 && kiln_lane + kiln_u < " + extent + "; ++kiln_u) {");
      ++indent_;
      Line("const long long " + j + " = " + first + " + kiln_lane + kiln_u;");
      Emit(inner.body[0]);
      --indent_;
      Line("}");
      --indent_;
      Line("}");
    });
    --indent_;
    Line("}");
  }

  void Line(const std::string& text) { out_ << std::string(2 * indent_, ' ') << text << '\n'; }

  std::string VarName(const kir::Expr& var) {
    const auto [it, inserted] = var_names_.emplace(var->var_id, "");
    if (inserted) {
      std::string name;
      for (const char c : var->name) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      it->second = "v" + std::to_string(var->var_id) + "_" + name;
    }
    return it->second;
  }

  const std::string& BufferName(const kir::Buffer& buffer) {
    const auto it = buffer_names_.find(buffer.get());
    if (it == buffer_names_.end()) {
      throw Error("kernel " + kernel_.name + ": buffer '" + buffer->name + "' is used outside its Allocate");
    }
    return it->second;
  }

  // Runs `emit` as one statement: shared subexpressions are computed once within it,
  // and never reused by another statement (a store may have changed what they loaded).
  template <typename F>
  void Statement(F emit) {
    std::vector<Memo> saved;
    saved.swap(memo_);
    memo_.emplace_back();
    emit();
    memo_.swap(saved);
  }

  std::string Temp(ScalarType type, const std::string& value) {
    const std::string name = "t" + std::to_string(next_temp_++);
    Line("const " + std::string(ValueType(type)) + " " + name + " = " + value + ";");
    return name;
  }

  // The C expression for `e`, emitting the lines its shared parts need first.
  std::string Value(const kir::Expr& e) {
    switch (e->kind) {
      case ExprKind::kIntImm: return IntLiteral(e->type, e->int_value);
      case ExprKind::kFloatImm: return FloatLiteral(e->type, e->float_value);
      case ExprKind::kVar: return VarName(e);
      default: break;
    }
    if (vector_lane_ != nullptr) {
      // A load moved as kiln_f4: this element's component.
      const auto moved = vector_loads_.find(e.get());
      if (moved != vector_loads_.end()) return moved->second + "." + vector_lane_;
    }
    for (auto scope = memo_.rbegin(); scope != memo_.rend(); ++scope) {
      const auto it = scope->find(e.get());
      if (it != scope->end()) return it->second;
    }
    std::string value;
    if (e->kind == ExprKind::kSelect && (HasLoad(e->operands[1]) || HasLoad(e->operands[2]))) {
      value = GuardedSelect(e);  // already a name
    } else {
      value = "(" + Compute(e) + ")";
      if (e.shared()) value = Temp(e->type, value);
    }
    memo_.back()[e.get()] = value;
    return value;
  }

  bool HasLoad(const kir::Expr& e) {
    const auto it = has_load_.find(e.get());
    if (it != has_load_.end()) return it->second;
    bool result = e->kind == ExprKind::kLoad;
    for (const auto& operand : e->operands) result = HasLoad(operand) || result;
    has_load_[e.get()] = result;
    return result;
  }

  // A select whose arms load: only the chosen arm runs, with its own shared values.
  std::string GuardedSelect(const kir::Expr& e) {
    const std::string condition = Value(e->operands[0]);
    const std::string name = "t" + std::to_string(next_temp_++);
    Line(std::string(ValueType(e->type)) + " " + name + ";");
    Line("if (" + condition + ") {");
    for (int arm = 1; arm <= 2; ++arm) {
      ++indent_;
      memo_.emplace_back();
      Line(name + " = " + Value(e->operands[arm]) + ";");
      memo_.pop_back();
      --indent_;
      Line(arm == 1 ? "} else {" : "}");
    }
    return name;
  }

  std::string LoadExpr(const kir::Buffer& buffer, const std::string& index) {
    const std::string element = BufferName(buffer) + "[" + index + "]";
    switch (buffer->type) {
      case ScalarType::kBool: return element + " != 0";
      case ScalarType::kFloat16: return "kiln_h2f(" + element + ")";
      case ScalarType::kBFloat16: return "kiln_bf2f(" + element + ")";
      default: return element;
    }
  }

  static std::string StoredValue(ScalarType type, const std::string& value) {
    switch (type) {
      case ScalarType::kBool: return "(unsigned char)(" + value + " ? 1 : 0)";
      case ScalarType::kFloat16: return "kiln_f2h(" + value + ")";
      case ScalarType::kBFloat16: return "kiln_f2bf(" + value + ")";
      default: return value;
    }
  }

  std::string Compute(const kir::Expr& e) {
    switch (e->kind) {
      case ExprKind::kLoad: return LoadExpr(e->buffer, Value(e->operands[0]));
      case ExprKind::kCast: return Cast(e->type, e->operands[0]);
      case ExprKind::kSelect:
        return Value(e->operands[0]) + " ? " + Value(e->operands[1]) + " : " + Value(e->operands[2]);
      case ExprKind::kUnary: return UnaryExpr(e);
      case ExprKind::kBinary: return BinaryExpr(e);
      default: break;
    }
    throw Error("kernel " + kernel_.name + ": unexpected expression");
  }

  std::string Cast(ScalarType to, const kir::Expr& operand) {
    const ScalarType from = operand.type();
    const std::string a = Value(operand);
    const bool from_float = kir::IsFloatType(from);
    if (kir::IsFloatType(to)) {
      const std::string c_type = ValueType(to);
      // Integers convert through double, as the interpreter does (one rounding to double,
      // then to the type).
      const std::string value = from_float ? "(" + c_type + ")" + a : "(" + c_type + ")(double)" + a;
      return Rounded(to, value);
    }
    if (to == ScalarType::kBool) return a + " != 0";
    if (from_float) {
      if (to == ScalarType::kUInt64) return "kiln_f2u64((double)" + a + ")";
      return "(" + std::string(ValueType(to)) + ")kiln_f2i((double)" + a + ")";
    }
    return "(" + std::string(ValueType(to)) + ")" + a;
  }

  std::string UnaryExpr(const kir::Expr& e) {
    const ScalarType type = e->type;
    const std::string a = Value(e->operands[0]);
    if (e->unary == UnaryOp::kNot) return a + " == 0";
    if (!kir::IsFloatType(type)) {
      switch (e->unary) {
        case UnaryOp::kNeg: return "kiln_neg(" + a + ")";
        case UnaryOp::kAbs: return "kiln_abs(" + a + ")";
        default: return a;  // floor, ceil, round, trunc of an integer
      }
    }
    const bool is_double = type == ScalarType::kFloat64;
    const auto fn = [&](const std::string& name) {
      return Rounded(type, name + (is_double ? "" : "f") + "(" + a + ")");
    };
    switch (e->unary) {
      case UnaryOp::kNeg: return Rounded(type, "-" + a);
      case UnaryOp::kAbs: return fn("fabs");
      case UnaryOp::kExp: return fn("exp");
      case UnaryOp::kLog: return fn("log");
      case UnaryOp::kSqrt: return fn("sqrt");
      case UnaryOp::kTanh: return fn("tanh");
      case UnaryOp::kErf: return fn("erf");
      case UnaryOp::kFloor: return fn("floor");
      case UnaryOp::kCeil: return fn("ceil");
      case UnaryOp::kRound: return fn("round");
      case UnaryOp::kTrunc: return fn("trunc");
      case UnaryOp::kSin: return fn("sin");
      case UnaryOp::kCos: return fn("cos");
      case UnaryOp::kTan: return fn("tan");
      case UnaryOp::kAsin: return fn("asin");
      case UnaryOp::kAcos: return fn("acos");
      case UnaryOp::kAtan: return fn("atan");
      case UnaryOp::kSinh: return fn("sinh");
      case UnaryOp::kCosh: return fn("cosh");
      case UnaryOp::kAsinh: return fn("asinh");
      case UnaryOp::kAcosh: return fn("acosh");
      case UnaryOp::kAtanh: return fn("atanh");
      case UnaryOp::kNot: break;
    }
    throw Error("kernel " + kernel_.name + ": unexpected unary operator");
  }

  std::string BinaryExpr(const kir::Expr& e) {
    const std::string a = Value(e->operands[0]);
    const std::string b = Value(e->operands[1]);
    return BinaryText(e->binary, e->type, e->operands[0].type(), a, b);
  }

  // The C expression of a binary operator on operands `a` and `b`.
  std::string BinaryText(BinaryOp op, ScalarType result_type, ScalarType operand_type, const std::string& a,
                         const std::string& b) const {
    const auto infix = [&](const char* text) { return a + " " + text + " " + b; };
    switch (op) {
      case BinaryOp::kLT: return infix("<");
      case BinaryOp::kLE: return infix("<=");
      case BinaryOp::kGT: return infix(">");
      case BinaryOp::kGE: return infix(">=");
      case BinaryOp::kEQ: return infix("==");
      case BinaryOp::kNE: return infix("!=");
      default: break;
    }
    const std::string c_type = ValueType(result_type);
    if (op == BinaryOp::kAnd || op == BinaryOp::kOr) {
      const char* logical = op == BinaryOp::kAnd ? " && " : " || ";
      return "(" + c_type + ")((" + a + " != 0)" + logical + "(" + b + " != 0) ? 1 : 0)";
    }
    if (kir::IsFloatType(operand_type)) {
      const bool is_double = operand_type == ScalarType::kFloat64;
      const std::string suffix = is_double ? "" : "f";
      std::string value;
      switch (op) {
        case BinaryOp::kAdd: value = infix("+"); break;
        case BinaryOp::kSub: value = infix("-"); break;
        case BinaryOp::kMul: value = infix("*"); break;
        case BinaryOp::kDiv: value = infix("/"); break;
        case BinaryOp::kMod: value = "fmod" + suffix + "(" + a + ", " + b + ")"; break;
        case BinaryOp::kMin: value = "kiln_fmin(" + a + ", " + b + ")"; break;
        case BinaryOp::kMax: value = "kiln_fmax(" + a + ", " + b + ")"; break;
        case BinaryOp::kPow: value = "pow" + suffix + "(" + a + ", " + b + ")"; break;
        default: throw Error("kernel " + kernel_.name + ": unexpected float operator");
      }
      return Rounded(result_type, value);
    }
    const bool is_signed = IsSigned(operand_type);
    const auto call = [&](const std::string& fn) { return fn + "(" + a + ", " + b + ")"; };
    switch (op) {
      case BinaryOp::kAdd: return call("kiln_add");
      case BinaryOp::kSub: return call("kiln_sub");
      case BinaryOp::kMul: return call("kiln_mul");
      case BinaryOp::kDiv: return call(is_signed ? "kiln_sdiv" : "kiln_udiv");
      case BinaryOp::kMod: return call(is_signed ? "kiln_smod" : "kiln_umod");
      case BinaryOp::kMin: return call("kiln_imin");
      case BinaryOp::kMax: return call("kiln_imax");
      case BinaryOp::kPow: {
        const std::string power = "pow((double)" + a + ", (double)" + b + ")";
        if (operand_type == ScalarType::kUInt64) return "kiln_f2u64(" + power + ")";
        return "(" + c_type + ")kiln_f2i(" + power + ")";
      }
      default: break;
    }
    throw Error("kernel " + kernel_.name + ": unexpected integer operator");
  }

  void Emit(const kir::Stmt& s) {
    switch (s->kind) {
      case StmtKind::kFor: EmitFor(*s); return;
      case StmtKind::kStore:
        Statement([&] {
          const std::string index = Value(s->index);
          const std::string value = Value(s->value);
          const std::string store =
              BufferName(s->buffer) + "[" + index + "] = " + StoredValue(s->buffer->type, value) + ";";
          if (cooperative_ && !s->buffer->is_local) {
            // Every thread computed the same value: one stores it, and the block waits
            // so that all read it after.
            Line("if (threadIdx.x == 0) " + store);
            Line("__syncthreads();");
          } else {
            Line(store);
          }
        });
        return;
      case StmtKind::kBlock:
        for (const auto& child : s->body) Emit(child);
        return;
      case StmtKind::kIf:
        Statement([&] {
          Line("if (" + Value(s->condition) + ") {");
          ++indent_;
          Emit(s->body[0]);
          --indent_;
          if (s->otherwise) {
            Line("} else {");
            ++indent_;
            Emit(s->otherwise);
            --indent_;
          }
          Line("}");
        });
        return;
      case StmtKind::kAllocate: {
        const std::string name = "l" + std::to_string(s->buffer->id);
        buffer_names_[s->buffer.get()] = name;
        Line("{");
        ++indent_;
        Line(std::string(StorageType(s->buffer->type)) + " " + name + "[" +
             std::to_string(std::max<int64_t>(s->buffer->size, 1)) + "] = {};");
        Emit(s->body[0]);
        --indent_;
        Line("}");
        buffer_names_.erase(s->buffer.get());
        return;
      }
      case StmtKind::kCall:
        throw Error("kernel " + kernel_.name + " calls the routine '" + s->routine +
                    "': the CUDA emitter runs library routines as steps of their own (cuBLAS), not inside kernels");
    }
  }

  // Opens `for (var = begin + threadIdx.x; var < begin + extent; var += blockDim.x) {`:
  // the loop's iterations dealt to the block's threads in turn.
  void OpenBlockStridedLoop(const kir::StmtNode& s) {
    const std::string first = Value(s.begin);
    const std::string limit = "kiln_end" + std::to_string(next_temp_++);
    Line("const long long " + limit + " = " + first + " + " + Value(s.extent) + ";");
    const std::string var = VarName(s.loop_var);
    Line("for (long long " + var + " = " + first + " + threadIdx.x; " + var + " < " + limit + "; " + var +
         " += blockDim.x) {");
    ++indent_;
  }

  // A kReduction loop's iterations split across the block, the threads' partial values
  // combined (kiln_block_reduce), then into the accumulator, in every thread.
  void EmitBlockReduction(const kir::StmtNode& s) {
    const kir::Reduction r = kir::ReductionOf(s);
    const ScalarType type = r.acc->type;
    const std::string c_type = ValueType(type);
    const std::string identity = Identity(r.op, type);
    const auto combine = [&](const std::string& a, const std::string& b) { return BinaryText(r.op, type, type, a, b); };
    Statement([&] {
      Line("{");
      ++indent_;
      const std::string part = "kiln_part" + std::to_string(next_temp_++);
      Line(c_type + " " + part + " = " + identity + ";");
      OpenBlockStridedLoop(s);
      Statement([&] { Line(part + " = " + combine(part, Value(r.value)) + ";"); });
      --indent_;
      Line("}");
      Line(part + " = kiln_block_reduce(" + part + ", (" + c_type + ")" + identity + ", [](" + c_type + " a, " +
           c_type + " b) { return (" + c_type + ")(" + combine("a", "b") + "); });");
      const std::string slot = BufferName(r.acc) + "[" + std::to_string(r.slot) + "]";
      Line(slot + " = " + StoredValue(type, combine(LoadExpr(r.acc, std::to_string(r.slot)), part)) + ";");
      --indent_;
      Line("}");
    });
  }

  // The value op leaves unchanged: 0 for sums, 1 for products, the far end of the type
  // for min and max (infinities for floats).
  static std::string Identity(BinaryOp op, ScalarType type) {
    if (op == BinaryOp::kAdd) return kir::IsFloatType(type) ? FloatLiteral(type, 0.0) : IntLiteral(type, 0);
    if (op == BinaryOp::kMul) return kir::IsFloatType(type) ? FloatLiteral(type, 1.0) : IntLiteral(type, 1);
    const bool max = op == BinaryOp::kMax;
    if (kir::IsFloatType(type)) {
      return FloatLiteral(type,
                          max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
    }
    if (type == ScalarType::kBool) return max ? "false" : "true";
    const int bits = 8 * kir::ScalarTypeBytes(type);
    if (kir::IsUnsignedType(type)) {
      return max ? IntLiteral(type, 0) : IntLiteral(type, bits == 64 ? -1 : (int64_t{1} << bits) - 1);
    }
    const int64_t top = bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1;
    return max ? IntLiteral(type, -top - 1) : IntLiteral(type, top);
  }

  // An independent loop in a cooperative kernel: its iterations split across the block,
  // which then waits for all of them.
  void EmitBlockSplitLoop(const kir::StmtNode& s) {
    Statement([&] {
      Line("{");
      ++indent_;
      OpenBlockStridedLoop(s);
      cooperative_ = false;  // each thread its own iterations
      Emit(s.body[0]);
      cooperative_ = true;
      --indent_;
      Line("}");
      Line("__syncthreads();");
      --indent_;
      Line("}");
    });
  }

  void EmitFor(const kir::StmtNode& s) {
    if (cooperative_ && s.loop_kind == LoopKind::kReduction && CanReduceInBlock(s)) {
      EmitBlockReduction(s);
      return;
    }
    if (cooperative_ && s.loop_kind == LoopKind::kIndependent) {
      EmitBlockSplitLoop(s);
      return;
    }
    Statement([&] {
      Line("{");
      ++indent_;
      const std::string first = Value(s.begin);
      const std::string extent = Value(s.extent);
      const std::string var = VarName(s.loop_var);
      const std::string limit = "kiln_end" + std::to_string(next_temp_++);
      Line("const long long " + limit + " = " + first + " + " + extent + ";");
      if (s.loop_kind == LoopKind::kUnroll) Line("#pragma unroll");
      Line("for (long long " + var + " = " + first + "; " + var + " < " + limit + "; ++" + var + ") {");
      ++indent_;
      Emit(s.body[0]);
      --indent_;
      Line("}");
      --indent_;
      Line("}");
    });
  }

  // 16-bit floats accumulate rounded after each step: their reductions stay serial.
  static bool CanReduceInBlock(const kir::StmtNode& s) {
    const ScalarType type = kir::ReductionOf(s).acc->type;
    return type != ScalarType::kFloat16 && type != ScalarType::kBFloat16;
  }

  using Memo = std::unordered_map<const kir::ExprNode*, std::string>;
  const kir::Kernel& kernel_;
  bool cooperative_ = false;  // emitting a block-cooperative kernel's shared part
  // Emitting one element of a float4 loop: its component ("x".."w") of the moved loads.
  const char* vector_lane_ = nullptr;
  std::unordered_map<const kir::ExprNode*, std::string> vector_loads_;
  std::ostringstream& out_;
  int indent_ = 1;
  int next_temp_ = 0;
  std::vector<Memo> memo_;
  std::unordered_map<const kir::ExprNode*, bool> has_load_;
  std::unordered_map<const kir::BufferNode*, std::string> buffer_names_;
  std::unordered_map<int, std::string> var_names_;
};

}  // namespace

std::string CudaEntryName(const std::string& kernel_name) {
  return "cuda_" + KernelSymbolName(kernel_name);
}

const char* CudaStorageType(kir::ScalarType type) {
  return StorageType(type);
}

bool CudaCanEmit(const kir::Kernel& kernel) {
  return !CallsRoutine(kernel.body);
}

CudaModuleSource EmitCudaModule(const std::vector<kir::Kernel>& kernels) {
  std::ostringstream out;
  out << CudaPrelude() << "\n";
  CudaModuleSource module;
  for (const kir::Kernel& kernel : kernels) {
    kir::Verify(kernel);
    module.kernels.push_back(KernelWriter(kernel, out).Write());
  }
  module.source = out.str();
  return module;
}

proto::CudaKernelProto LaunchForm(const CudaKernelInfo& kernel) {
  proto::CudaKernelProto form;
  form.set_entry(kernel.entry);
  form.set_has_parallel_loop(kernel.has_parallel_loop);
  form.set_inner_threads(kernel.inner_threads);
  form.set_block_threads(kernel.block_threads);
  for (size_t k = 0; k < kernel.written.size(); ++k) {
    if (kernel.written[k]) form.add_written_args(static_cast<uint32_t>(k));
  }
  for (const auto& arg : kernel.args) form.add_arg_bytes(arg->size * kir::ScalarTypeBytes(arg->type));
  return form;
}

}  // namespace kiln::cuda
