#include "codegen/kir_interpreter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "codegen/library_steps.h"
#include "runtime/dtype.h"
#include "runtime/gemm_step.h"

namespace kiln {
namespace {

using kir::BinaryOp;
using kir::ExprKind;
using kir::ScalarType;
using kir::StmtKind;
using kir::UnaryOp;

// A scalar: floats in `f`, integers and bools in `i` (as kir::WrapTo holds them: uint64
// as its bit pattern).
struct Value {
  double f = 0;
  int64_t i = 0;
};

// Rounds a computed float to its type's precision, so results match compiled code.
double RoundTo(ScalarType type, double v) {
  if (type == ScalarType::kFloat32) return static_cast<float>(v);
  if (type == ScalarType::kFloat16) return HalfToFloat(FloatToHalf(static_cast<float>(v)));
  if (type == ScalarType::kBFloat16) return BFloat16ToFloat(FloatToBFloat16(static_cast<float>(v)));
  return v;
}

template <typename T>
T Read(const char* p) {
  T x;
  std::memcpy(&x, p, sizeof(T));
  return x;
}

template <typename T>
void Write(char* p, T x) {
  std::memcpy(p, &x, sizeof(T));
}

// Integer results wrap to their width, as machine arithmetic does.
using kir::WrapTo;

class Interpreter {
 public:
  Interpreter(const kir::Kernel& kernel, const std::vector<void*>& buffers, const KilnRuntimeApi* api) : api_(api) {
    if (buffers.size() != kernel.args.size()) {
      throw std::invalid_argument("kernel " + kernel.name + " takes " + std::to_string(kernel.args.size()) +
                                  " buffers, given " + std::to_string(buffers.size()));
    }
    for (size_t k = 0; k < buffers.size(); ++k) memory_[kernel.args[k].get()] = static_cast<char*>(buffers[k]);
  }

  void Run(const kir::Stmt& body, int64_t begin, int64_t end) {
    if (body->kind == StmtKind::kFor && body->loop_kind == kir::LoopKind::kParallel) {
      for (int64_t v = begin; v < end; ++v) {
        vars_[body->loop_var->var_id] = v;
        Exec(body->body[0]);
      }
      return;
    }
    if (begin < end) Exec(body);
  }

 private:
  char* Address(const kir::Buffer& buffer, int64_t index) {
    if (index < 0 || index >= buffer->size) {
      throw std::out_of_range("index " + std::to_string(index) + " out of range for buffer '" + buffer->name + "' of " +
                              std::to_string(buffer->size) + " elements");
    }
    return memory_.at(buffer.get()) + index * kir::ScalarTypeBytes(buffer->type);
  }

  Value LoadValue(const kir::Buffer& buffer, int64_t index) {
    const char* p = Address(buffer, index);
    if (!buffer->is_local) {
      for (IndependenceCheck& check : checks_) {
        const auto [it, inserted] = check.reads.emplace(Element{buffer.get(), index}, check.iteration);
        if (!inserted && it->second != check.iteration) it->second = kSeveral;
      }
    }
    Value v;
    switch (buffer->type) {
      case ScalarType::kBool: v.i = Read<uint8_t>(p) != 0; break;
      case ScalarType::kInt8: v.i = Read<int8_t>(p); break;
      case ScalarType::kUInt8: v.i = Read<uint8_t>(p); break;
      case ScalarType::kInt16: v.i = Read<int16_t>(p); break;
      case ScalarType::kUInt16: v.i = Read<uint16_t>(p); break;
      case ScalarType::kInt32: v.i = Read<int32_t>(p); break;
      case ScalarType::kUInt32: v.i = Read<uint32_t>(p); break;
      case ScalarType::kInt64:
      case ScalarType::kUInt64: v.i = Read<int64_t>(p); break;
      case ScalarType::kFloat16: v.f = HalfToFloat(Read<uint16_t>(p)); break;
      case ScalarType::kBFloat16: v.f = BFloat16ToFloat(Read<uint16_t>(p)); break;
      case ScalarType::kFloat32: v.f = Read<float>(p); break;
      case ScalarType::kFloat64: v.f = Read<double>(p); break;
    }
    return v;
  }

  void StoreValue(const kir::Buffer& buffer, int64_t index, Value v) {
    char* p = Address(buffer, index);
    if (!buffer->is_local) {
      for (IndependenceCheck& check : checks_) {
        const auto [it, inserted] = check.writes.emplace(Element{buffer.get(), index}, check.iteration);
        if (!inserted && it->second != check.iteration) {
          throw std::logic_error("independent loop '" + check.loop->loop_var->name + "': iterations " +
                                 std::to_string(it->second) + " and " + std::to_string(check.iteration) +
                                 " both write " + buffer->name + "[" + std::to_string(index) + "]");
        }
      }
    }
    switch (buffer->type) {
      case ScalarType::kBool: Write<uint8_t>(p, v.i != 0); break;
      case ScalarType::kInt8:
      case ScalarType::kUInt8: Write(p, static_cast<uint8_t>(v.i)); break;
      case ScalarType::kInt16:
      case ScalarType::kUInt16: Write(p, static_cast<uint16_t>(v.i)); break;
      case ScalarType::kInt32:
      case ScalarType::kUInt32: Write(p, static_cast<uint32_t>(v.i)); break;
      case ScalarType::kInt64:
      case ScalarType::kUInt64: Write(p, v.i); break;
      case ScalarType::kFloat16: Write(p, FloatToHalf(static_cast<float>(v.f))); break;
      case ScalarType::kBFloat16: Write(p, FloatToBFloat16(static_cast<float>(v.f))); break;
      case ScalarType::kFloat32: Write(p, static_cast<float>(v.f)); break;
      case ScalarType::kFloat64: Write(p, v.f); break;
    }
  }

  // Shared subexpressions evaluate once per statement (fused chains are DAGs).
  Value Eval(const kir::Expr& e) {
    if (!e.shared() || e->kind == ExprKind::kVar) return EvalUncached(e);
    for (const auto& [node, value] : memo_) {
      if (node == e.get()) return value;
    }
    const Value value = EvalUncached(e);
    memo_.emplace_back(e.get(), value);
    return value;
  }

  Value EvalUncached(const kir::Expr& e) {
    Value r;
    const bool is_float = kir::IsFloatType(e->type);
    switch (e->kind) {
      case ExprKind::kIntImm: r.i = e->int_value; return r;
      case ExprKind::kFloatImm: r.f = RoundTo(e->type, e->float_value); return r;
      case ExprKind::kVar: {
        const auto it = vars_.find(e->var_id);
        if (it == vars_.end()) throw std::logic_error("unbound variable " + e->name);
        r.i = it->second;
        return r;
      }
      case ExprKind::kLoad: return LoadValue(e->buffer, Eval(e->operands[0]).i);
      case ExprKind::kCast: {
        const Value a = Eval(e->operands[0]);
        const bool from_float = kir::IsFloatType(e->operands[0].type());
        if (is_float) {
          r.f = RoundTo(e->type, from_float ? a.f : kir::IntToDouble(e->operands[0].type(), a.i));
        } else if (e->type == ScalarType::kBool) {
          r.i = from_float ? a.f != 0.0 : a.i != 0;
        } else if (from_float) {
          // Out-of-range conversions are undefined in C++ and LLVM; saturate here.
          r.i = kir::FloatToInt(e->type, a.f);
        } else {
          r.i = WrapTo(e->type, a.i);
        }
        return r;
      }
      case ExprKind::kSelect: return Eval(e->operands[0]).i ? Eval(e->operands[1]) : Eval(e->operands[2]);
      case ExprKind::kUnary: {
        const Value a = Eval(e->operands[0]);
        if (e->unary == UnaryOp::kNot) {
          r.i = kir::IsFloatType(e->operands[0].type()) ? a.f == 0.0 : a.i == 0;
          return r;
        }
        if (!is_float) {
          // Negation in unsigned arithmetic: INT64_MIN wraps to itself, as machine code does.
          const int64_t negated = static_cast<int64_t>(0 - static_cast<uint64_t>(a.i));
          if (e->unary == UnaryOp::kNeg)
            r.i = WrapTo(e->type, negated);
          else if (e->unary == UnaryOp::kAbs)
            r.i = kir::IsUnsignedType(e->type) ? a.i : WrapTo(e->type, a.i < 0 ? negated : a.i);
          else
            r.i = a.i;  // floor/ceil/round/trunc of an integer
          return r;
        }
        double x = a.f;
        switch (e->unary) {
          case UnaryOp::kNeg: x = -x; break;
          case UnaryOp::kAbs: x = std::fabs(x); break;
          case UnaryOp::kExp: x = std::exp(x); break;
          case UnaryOp::kLog: x = std::log(x); break;
          case UnaryOp::kSqrt: x = std::sqrt(x); break;
          case UnaryOp::kTanh: x = std::tanh(x); break;
          case UnaryOp::kErf: x = std::erf(x); break;
          case UnaryOp::kFloor: x = std::floor(x); break;
          case UnaryOp::kCeil: x = std::ceil(x); break;
          case UnaryOp::kRound: x = std::round(x); break;
          case UnaryOp::kTrunc: x = std::trunc(x); break;
          case UnaryOp::kNot: break;
          case UnaryOp::kSin: x = std::sin(x); break;
          case UnaryOp::kCos: x = std::cos(x); break;
          case UnaryOp::kTan: x = std::tan(x); break;
          case UnaryOp::kAsin: x = std::asin(x); break;
          case UnaryOp::kAcos: x = std::acos(x); break;
          case UnaryOp::kAtan: x = std::atan(x); break;
          case UnaryOp::kSinh: x = std::sinh(x); break;
          case UnaryOp::kCosh: x = std::cosh(x); break;
          case UnaryOp::kAsinh: x = std::asinh(x); break;
          case UnaryOp::kAcosh: x = std::acosh(x); break;
          case UnaryOp::kAtanh: x = std::atanh(x); break;
        }
        r.f = RoundTo(e->type, x);
        return r;
      }
      case ExprKind::kBinary: {
        const Value a = Eval(e->operands[0]);
        const Value b = Eval(e->operands[1]);
        const bool float_operands = kir::IsFloatType(e->operands[0].type());
        if (float_operands) return FloatBinary(e->binary, e->type, a.f, b.f);
        if (e->operands[0].type() == ScalarType::kUInt64) return UInt64Binary(e->binary, a.i, b.i);
        return IntBinary(e->binary, e->type, a.i, b.i);
      }
    }
    throw std::logic_error("bad expression");
  }

  static Value FloatBinary(BinaryOp op, ScalarType type, double a, double b) {
    Value r;
    switch (op) {
      case BinaryOp::kAdd: r.f = a + b; break;
      case BinaryOp::kSub: r.f = a - b; break;
      case BinaryOp::kMul: r.f = a * b; break;
      case BinaryOp::kDiv: r.f = a / b; break;
      case BinaryOp::kMod: r.f = std::fmod(a, b); break;
      case BinaryOp::kMin: r.f = std::isnan(a) || a < b ? a : b; break;
      case BinaryOp::kMax: r.f = std::isnan(a) || a > b ? a : b; break;
      case BinaryOp::kPow: r.f = std::pow(a, b); break;
      case BinaryOp::kLT: r.i = a < b; return r;
      case BinaryOp::kLE: r.i = a <= b; return r;
      case BinaryOp::kGT: r.i = a > b; return r;
      case BinaryOp::kGE: r.i = a >= b; return r;
      case BinaryOp::kEQ: r.i = a == b; return r;
      case BinaryOp::kNE: r.i = a != b; return r;
      // Logical operators on floats give 0 or 1 in the operand type.
      case BinaryOp::kAnd: r.f = a != 0 && b != 0 ? 1.0 : 0.0; break;
      case BinaryOp::kOr: r.f = a != 0 || b != 0 ? 1.0 : 0.0; break;
    }
    r.f = RoundTo(type, r.f);
    return r;
  }

  static Value IntBinary(BinaryOp op, ScalarType type, int64_t a, int64_t b) {
    Value r;
    const auto wrap = [&](uint64_t v) { return WrapTo(type, static_cast<int64_t>(v)); };
    switch (op) {
      case BinaryOp::kAdd: r.i = wrap(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); break;
      case BinaryOp::kSub: r.i = wrap(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); break;
      case BinaryOp::kMul: r.i = wrap(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); break;
      // As compiled code: x / 0 = 0 and x % 0 = 0; MIN / -1 wraps (remainder 0).
      case BinaryOp::kDiv: r.i = b == 0 ? 0 : b == -1 ? wrap(0 - static_cast<uint64_t>(a)) : WrapTo(type, a / b); break;
      case BinaryOp::kMod: r.i = b == 0 || b == -1 ? 0 : a % b; break;
      case BinaryOp::kMin: r.i = a < b ? a : b; break;
      case BinaryOp::kMax: r.i = a > b ? a : b; break;
      case BinaryOp::kPow: r.i = kir::FloatToInt(type, std::pow(static_cast<double>(a), static_cast<double>(b))); break;
      case BinaryOp::kLT: r.i = a < b; break;
      case BinaryOp::kLE: r.i = a <= b; break;
      case BinaryOp::kGT: r.i = a > b; break;
      case BinaryOp::kGE: r.i = a >= b; break;
      case BinaryOp::kEQ: r.i = a == b; break;
      case BinaryOp::kNE: r.i = a != b; break;
      case BinaryOp::kAnd: r.i = a != 0 && b != 0; break;
      case BinaryOp::kOr: r.i = a != 0 || b != 0; break;
    }
    return r;
  }

  // uint64 operands, held as their bit patterns: the arithmetic that differs from int64's
  // (ordering, division, pow) is unsigned; x / 0 = x % 0 = 0 as for the other types.
  static Value UInt64Binary(BinaryOp op, int64_t a_bits, int64_t b_bits) {
    const auto a = static_cast<uint64_t>(a_bits), b = static_cast<uint64_t>(b_bits);
    Value r;
    switch (op) {
      case BinaryOp::kDiv: r.i = static_cast<int64_t>(b == 0 ? 0 : a / b); return r;
      case BinaryOp::kMod: r.i = static_cast<int64_t>(b == 0 ? 0 : a % b); return r;
      case BinaryOp::kMin: r.i = static_cast<int64_t>(a < b ? a : b); return r;
      case BinaryOp::kMax: r.i = static_cast<int64_t>(a > b ? a : b); return r;
      case BinaryOp::kPow:
        r.i = kir::FloatToInt(ScalarType::kUInt64, std::pow(static_cast<double>(a), static_cast<double>(b)));
        return r;
      case BinaryOp::kLT: r.i = a < b; return r;
      case BinaryOp::kLE: r.i = a <= b; return r;
      case BinaryOp::kGT: r.i = a > b; return r;
      case BinaryOp::kGE: r.i = a >= b; return r;
      default: return IntBinary(op, ScalarType::kUInt64, a_bits, b_bits);  // wraps alike
    }
  }

  void Exec(const kir::Stmt& s) {
    memo_.clear();
    switch (s->kind) {
      case StmtKind::kFor: {
        const int64_t begin = Eval(s->begin).i;
        const int64_t extent = Eval(s->extent).i;
        const bool independent = s->loop_kind == kir::LoopKind::kIndependent;
        if (independent) checks_.push_back({s.get()});
        for (int64_t v = begin; v < begin + extent; ++v) {
          vars_[s->loop_var->var_id] = v;
          if (independent) checks_.back().iteration = v;
          Exec(s->body[0]);
        }
        if (independent) {
          CheckIndependence(checks_.back());
          checks_.pop_back();
        }
        return;
      }
      case StmtKind::kStore: StoreValue(s->buffer, Eval(s->index).i, Eval(s->value)); return;
      case StmtKind::kBlock:
        for (const auto& child : s->body) Exec(child);
        return;
      case StmtKind::kIf:
        if (Eval(s->condition).i) {
          Exec(s->body[0]);
        } else if (s->otherwise) {
          Exec(s->otherwise);
        }
        return;
      case StmtKind::kAllocate: {
        std::vector<char> storage(static_cast<size_t>(s->buffer->size * kir::ScalarTypeBytes(s->buffer->type)));
        memory_[s->buffer.get()] = storage.data();
        Exec(s->body[0]);
        memory_.erase(s->buffer.get());
        return;
      }
      case StmtKind::kCall: CallRoutine(*s); return;
    }
  }

  void CallRoutine(const kir::StmtNode& s) {
    if (s.routine == kir::kGemmStepRoutine) {
      const kir::GemmStepArgs gemm = kir::GemmStepOf(s);
      const auto start = [&](const kir::Buffer& buffer) { return reinterpret_cast<float*>(memory_.at(buffer.get())); };
      RunGemmOnHost(GemmCallOf(gemm), start(gemm.a), start(gemm.b), start(gemm.c), api_, 0, gemm.batch);
      return;
    }
    std::vector<Value> scalars;
    std::vector<char*> pointers;
    for (const auto& arg : s.args) {
      if (arg.buffer) {
        pointers.push_back(Address(arg.buffer, Eval(arg.offset).i));
      } else {
        scalars.push_back(Eval(arg.scalar));
      }
    }
    const RoutineSignature* routine = FindRoutine(s.routine);
    if (routine == nullptr) throw std::invalid_argument("unknown routine '" + s.routine + "'");
    const std::string kinds = routine->args;
    const auto count = [&](char kind) { return static_cast<size_t>(std::count(kinds.begin(), kinds.end(), kind)); };
    if (pointers.size() != count('p') || scalars.size() != kinds.size() - count('p')) {
      throw std::invalid_argument(s.routine + " call has wrong arguments");
    }
    const auto f32 = [&](size_t i) { return reinterpret_cast<float*>(pointers[i]); };
    if (s.routine == kRoutineSgemm) {
      // (m, n, k, alpha, A, lda, transA, B, ldb, transB, beta, C, ldc)
      api_->sgemm(scalars[0].i, scalars[1].i, scalars[2].i, static_cast<float>(scalars[3].f), f32(0), scalars[4].i,
                  static_cast<int32_t>(scalars[5].i), f32(1), scalars[6].i, static_cast<int32_t>(scalars[7].i),
                  static_cast<float>(scalars[8].f), f32(2), scalars[9].i);
      return;
    }
    if (s.routine == kRoutineSconv || s.routine == kRoutineSconvT) {
      // (m, col0, cols, A, lda, x, channels, height, width, kernel_h, kernel_w, stride_h,
      //  stride_w, dilate_h, dilate_w, pad_h, pad_w, out_w, C, ldc)
      const auto l = [&](size_t i) { return scalars[i].i; };
      const auto fn = s.routine == kRoutineSconv ? api_->sconv : api_->sconv_t;
      fn(l(0), l(1), l(2), f32(0), l(3), f32(1), l(4), l(5), l(6), l(7), l(8), l(9), l(10), l(11), l(12), l(13), l(14),
         l(15), f32(2), l(16));
      return;
    }
    throw std::invalid_argument("unknown routine '" + s.routine + "'");
  }

  // What the iterations of a kIndependent loop being run accessed: per element of a global
  // buffer, the iteration that wrote it and the one that read it (kSeveral: more than one).
  struct Element {
    const kir::BufferNode* buffer;
    int64_t index;
    bool operator==(const Element& other) const { return buffer == other.buffer && index == other.index; }
  };
  struct ElementHash {
    size_t operator()(const Element& e) const {
      return std::hash<const void*>()(e.buffer) ^ (std::hash<int64_t>()(e.index) * 0x9e3779b97f4a7c15ULL);
    }
  };
  static constexpr int64_t kSeveral = std::numeric_limits<int64_t>::min();
  struct IndependenceCheck {
    const kir::StmtNode* loop;
    int64_t iteration = 0;
    std::unordered_map<Element, int64_t, ElementHash> writes, reads;
  };

  // No iteration reads what another wrote (writes by two were caught as they happened).
  static void CheckIndependence(const IndependenceCheck& check) {
    for (const auto& [element, writer] : check.writes) {
      const auto read = check.reads.find(element);
      if (read == check.reads.end() || read->second == writer) continue;
      throw std::logic_error("independent loop '" + check.loop->loop_var->name + "': iteration " +
                             std::to_string(writer) + " writes " + element.buffer->name + "[" +
                             std::to_string(element.index) + "], which " +
                             (read->second == kSeveral ? std::string("several iterations read")
                                                       : "iteration " + std::to_string(read->second) + " reads"));
    }
  }

  const KilnRuntimeApi* api_;
  std::vector<IndependenceCheck> checks_;
  std::map<const kir::BufferNode*, char*> memory_;
  std::map<int, int64_t> vars_;
  std::vector<std::pair<const kir::ExprNode*, Value>> memo_;
};

}  // namespace

void InterpretKernel(const kir::Kernel& kernel, const std::vector<void*>& buffers, int64_t begin, int64_t end,
                     const KilnRuntimeApi* api) {
  Interpreter(kernel, buffers, api).Run(kernel.body, begin, end);
}

}  // namespace kiln
