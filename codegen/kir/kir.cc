#include "codegen/kir/kir.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace kiln::kir {

const char* ScalarTypeName(ScalarType type) {
  switch (type) {
    case ScalarType::kBool: return "bool";
    case ScalarType::kInt8: return "i8";
    case ScalarType::kUInt8: return "u8";
    case ScalarType::kInt32: return "i32";
    case ScalarType::kInt64: return "i64";
    case ScalarType::kFloat16: return "f16";
    case ScalarType::kFloat32: return "f32";
    case ScalarType::kFloat64: return "f64";
    case ScalarType::kInt16: return "i16";
    case ScalarType::kUInt16: return "u16";
    case ScalarType::kUInt32: return "u32";
    case ScalarType::kUInt64: return "u64";
    case ScalarType::kBFloat16: return "bf16";
  }
  return "?";
}

bool IsFloatType(ScalarType type) {
  return type == ScalarType::kFloat16 || type == ScalarType::kFloat32 || type == ScalarType::kFloat64 ||
         type == ScalarType::kBFloat16;
}

bool IsUnsignedType(ScalarType type) {
  return type == ScalarType::kUInt8 || type == ScalarType::kUInt16 || type == ScalarType::kUInt32 ||
         type == ScalarType::kUInt64;
}

int ScalarTypeBytes(ScalarType type) {
  switch (type) {
    case ScalarType::kBool:
    case ScalarType::kInt8:
    case ScalarType::kUInt8: return 1;
    case ScalarType::kInt16:
    case ScalarType::kUInt16:
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16: return 2;
    case ScalarType::kInt32:
    case ScalarType::kUInt32:
    case ScalarType::kFloat32: return 4;
    case ScalarType::kInt64:
    case ScalarType::kUInt64:
    case ScalarType::kFloat64: return 8;
  }
  return 0;
}

const char* UnaryOpName(UnaryOp op) {
  switch (op) {
    case UnaryOp::kNeg: return "neg";
    case UnaryOp::kAbs: return "abs";
    case UnaryOp::kExp: return "exp";
    case UnaryOp::kLog: return "log";
    case UnaryOp::kSqrt: return "sqrt";
    case UnaryOp::kTanh: return "tanh";
    case UnaryOp::kErf: return "erf";
    case UnaryOp::kFloor: return "floor";
    case UnaryOp::kCeil: return "ceil";
    case UnaryOp::kRound: return "round";
    case UnaryOp::kTrunc: return "trunc";
    case UnaryOp::kNot: return "not";
    case UnaryOp::kSin: return "sin";
    case UnaryOp::kCos: return "cos";
    case UnaryOp::kTan: return "tan";
    case UnaryOp::kAsin: return "asin";
    case UnaryOp::kAcos: return "acos";
    case UnaryOp::kAtan: return "atan";
    case UnaryOp::kSinh: return "sinh";
    case UnaryOp::kCosh: return "cosh";
    case UnaryOp::kAsinh: return "asinh";
    case UnaryOp::kAcosh: return "acosh";
    case UnaryOp::kAtanh: return "atanh";
  }
  return "?";
}

const char* BinaryOpName(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd: return "+";
    case BinaryOp::kSub: return "-";
    case BinaryOp::kMul: return "*";
    case BinaryOp::kDiv: return "/";
    case BinaryOp::kMod: return "%";
    case BinaryOp::kMin: return "min";
    case BinaryOp::kMax: return "max";
    case BinaryOp::kPow: return "pow";
    case BinaryOp::kLT: return "<";
    case BinaryOp::kLE: return "<=";
    case BinaryOp::kGT: return ">";
    case BinaryOp::kGE: return ">=";
    case BinaryOp::kEQ: return "==";
    case BinaryOp::kNE: return "!=";
    case BinaryOp::kAnd: return "&&";
    case BinaryOp::kOr: return "||";
  }
  return "?";
}

namespace {

std::atomic<int> next_var_id{1};

Expr Make(ExprNode node) {
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

bool IsComparison(BinaryOp op) {
  return op == BinaryOp::kLT || op == BinaryOp::kLE || op == BinaryOp::kGT || op == BinaryOp::kGE ||
         op == BinaryOp::kEQ || op == BinaryOp::kNE;
}

void Require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument("kir: " + message);
}

}  // namespace

Expr::Expr(int64_t value) : Expr(IntImm(value)) {}
Expr::Expr(int value) : Expr(IntImm(value)) {}

ScalarType Expr::type() const {
  return node_->type;
}

Expr IntImm(int64_t value, ScalarType type) {
  ExprNode node;
  node.kind = ExprKind::kIntImm;
  node.type = type;
  node.int_value = value;
  return Make(std::move(node));
}

Expr FloatImm(double value, ScalarType type) {
  ExprNode node;
  node.kind = ExprKind::kFloatImm;
  node.type = type;
  node.float_value = value;
  return Make(std::move(node));
}

int64_t SaturateToInt64(double value) {
  if (std::isnan(value)) return 0;
  if (value >= 9223372036854775807.0) return INT64_MAX;
  if (value <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(value);
}

int64_t FloatToInt(ScalarType type, double value) {
  if (type == ScalarType::kUInt64 && value >= 9223372036854775808.0) {
    if (value >= 18446744073709551616.0) return -1;  // UINT64_MAX's bits
    return static_cast<int64_t>(static_cast<uint64_t>(value));
  }
  return WrapTo(type, SaturateToInt64(value));
}

int64_t WrapTo(ScalarType type, int64_t value) {
  switch (type) {
    case ScalarType::kBool: return value != 0;
    case ScalarType::kInt8: return static_cast<int8_t>(value);
    case ScalarType::kUInt8: return static_cast<uint8_t>(value);
    case ScalarType::kInt16: return static_cast<int16_t>(value);
    case ScalarType::kUInt16: return static_cast<uint16_t>(value);
    case ScalarType::kInt32: return static_cast<int32_t>(value);
    case ScalarType::kUInt32: return static_cast<uint32_t>(value);
    default: return value;
  }
}

double IntToDouble(ScalarType type, int64_t value) {
  return type == ScalarType::kUInt64 ? static_cast<double>(static_cast<uint64_t>(value)) : static_cast<double>(value);
}

Expr Const(double value, ScalarType type) {
  if (IsFloatType(type)) return FloatImm(value, type);
  if (type == ScalarType::kBool) return IntImm(value != 0, type);
  // uint64 constants from 2^63 up are held as their bit pattern.
  if (type == ScalarType::kUInt64 && value >= 9223372036854775808.0) return IntImm(FloatToInt(type, value), type);
  return IntImm(SaturateToInt64(value), type);
}

Expr Var(const std::string& name) {
  ExprNode node;
  node.kind = ExprKind::kVar;
  node.type = ScalarType::kInt64;
  node.name = name;
  node.var_id = next_var_id++;
  return Make(std::move(node));
}

Expr Load(const Buffer& buffer, Expr index) {
  Require(buffer != nullptr, "load from a null buffer");
  Require(index.type() == ScalarType::kInt64, "index into '" + buffer->name + "' must be i64");
  ExprNode node;
  node.kind = ExprKind::kLoad;
  node.type = buffer->type;
  node.buffer = buffer;
  node.operands = {std::move(index)};
  return Make(std::move(node));
}

Expr Unary(UnaryOp op, Expr a) {
  ExprNode node;
  node.kind = ExprKind::kUnary;
  node.type = op == UnaryOp::kNot ? ScalarType::kBool : a.type();
  node.unary = op;
  node.operands = {std::move(a)};
  return Make(std::move(node));
}

Expr Binary(BinaryOp op, Expr a, Expr b) {
  Require(a.type() == b.type(), std::string("operands of '") + BinaryOpName(op) + "' have types " +
                                    ScalarTypeName(a.type()) + " and " + ScalarTypeName(b.type()));
  ExprNode node;
  node.kind = ExprKind::kBinary;
  node.type = IsComparison(op) ? ScalarType::kBool : a.type();
  node.binary = op;
  node.operands = {std::move(a), std::move(b)};
  return Make(std::move(node));
}

Expr Select(Expr condition, Expr if_true, Expr if_false) {
  Require(condition.type() == ScalarType::kBool, "select condition must be bool");
  Require(if_true.type() == if_false.type(), "select arms differ in type");
  ExprNode node;
  node.kind = ExprKind::kSelect;
  node.type = if_true.type();
  node.operands = {std::move(condition), std::move(if_true), std::move(if_false)};
  return Make(std::move(node));
}

Expr Cast(ScalarType type, Expr a) {
  if (a.type() == type) return a;
  ExprNode node;
  node.kind = ExprKind::kCast;
  node.type = type;
  node.operands = {std::move(a)};
  return Make(std::move(node));
}

Expr operator+(Expr a, Expr b) {
  return Binary(BinaryOp::kAdd, std::move(a), std::move(b));
}
Expr operator-(Expr a, Expr b) {
  return Binary(BinaryOp::kSub, std::move(a), std::move(b));
}
Expr operator*(Expr a, Expr b) {
  return Binary(BinaryOp::kMul, std::move(a), std::move(b));
}
Expr operator/(Expr a, Expr b) {
  return Binary(BinaryOp::kDiv, std::move(a), std::move(b));
}
Expr operator%(Expr a, Expr b) {
  return Binary(BinaryOp::kMod, std::move(a), std::move(b));
}
Expr operator-(Expr a) {
  return Unary(UnaryOp::kNeg, std::move(a));
}
Expr Min(Expr a, Expr b) {
  return Binary(BinaryOp::kMin, std::move(a), std::move(b));
}
Expr Max(Expr a, Expr b) {
  return Binary(BinaryOp::kMax, std::move(a), std::move(b));
}
Expr Pow(Expr a, Expr b) {
  return Binary(BinaryOp::kPow, std::move(a), std::move(b));
}
Expr Exp(Expr a) {
  return Unary(UnaryOp::kExp, std::move(a));
}
Expr Log(Expr a) {
  return Unary(UnaryOp::kLog, std::move(a));
}
Expr Sqrt(Expr a) {
  return Unary(UnaryOp::kSqrt, std::move(a));
}
Expr Tanh(Expr a) {
  return Unary(UnaryOp::kTanh, std::move(a));
}
Expr Erf(Expr a) {
  return Unary(UnaryOp::kErf, std::move(a));
}
Expr Abs(Expr a) {
  return Unary(UnaryOp::kAbs, std::move(a));
}
Expr Floor(Expr a) {
  return Unary(UnaryOp::kFloor, std::move(a));
}
Expr Ceil(Expr a) {
  return Unary(UnaryOp::kCeil, std::move(a));
}
Expr Round(Expr a) {
  return Unary(UnaryOp::kRound, std::move(a));
}
Expr Trunc(Expr a) {
  return Unary(UnaryOp::kTrunc, std::move(a));
}
Expr Lt(Expr a, Expr b) {
  return Binary(BinaryOp::kLT, std::move(a), std::move(b));
}
Expr Le(Expr a, Expr b) {
  return Binary(BinaryOp::kLE, std::move(a), std::move(b));
}
Expr Gt(Expr a, Expr b) {
  return Binary(BinaryOp::kGT, std::move(a), std::move(b));
}
Expr Ge(Expr a, Expr b) {
  return Binary(BinaryOp::kGE, std::move(a), std::move(b));
}
Expr Eq(Expr a, Expr b) {
  return Binary(BinaryOp::kEQ, std::move(a), std::move(b));
}
Expr Ne(Expr a, Expr b) {
  return Binary(BinaryOp::kNE, std::move(a), std::move(b));
}
Expr And(Expr a, Expr b) {
  return Binary(BinaryOp::kAnd, std::move(a), std::move(b));
}
Expr Or(Expr a, Expr b) {
  return Binary(BinaryOp::kOr, std::move(a), std::move(b));
}

Stmt For(Expr var, Expr begin, Expr extent, Stmt body, LoopKind kind) {
  Require(var->kind == ExprKind::kVar, "loop variable must be a Var");
  Require(begin.type() == ScalarType::kInt64 && extent.type() == ScalarType::kInt64, "loop bounds must be i64");
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kFor;
  node->loop_var = std::move(var);
  node->begin = std::move(begin);
  node->extent = std::move(extent);
  node->loop_kind = kind;
  node->body = {std::move(body)};
  return node;
}

Stmt Store(const Buffer& buffer, Expr index, Expr value) {
  Require(buffer != nullptr, "store to a null buffer");
  Require(index.type() == ScalarType::kInt64, "index into '" + buffer->name + "' must be i64");
  Require(value.type() == buffer->type, "store of " + std::string(ScalarTypeName(value.type())) + " into " +
                                            ScalarTypeName(buffer->type) + " buffer '" + buffer->name + "'");
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kStore;
  node->buffer = buffer;
  node->index = std::move(index);
  node->value = std::move(value);
  return node;
}

Stmt Block(std::vector<Stmt> statements) {
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kBlock;
  for (auto& s : statements) {
    if (s) node->body.push_back(std::move(s));
  }
  return node;
}

Stmt If(Expr condition, Stmt then, Stmt otherwise) {
  Require(condition.type() == ScalarType::kBool, "if condition must be bool");
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kIf;
  node->condition = std::move(condition);
  node->body = {std::move(then)};
  node->otherwise = std::move(otherwise);
  return node;
}

Stmt Allocate(const Buffer& local, Stmt body) {
  Require(local && local->is_local, "allocate needs a local buffer");
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kAllocate;
  node->buffer = local;
  node->body = {std::move(body)};
  return node;
}

Stmt Call(const std::string& routine, std::vector<CallArg> args) {
  auto node = std::make_shared<StmtNode>();
  node->kind = StmtKind::kCall;
  node->routine = routine;
  node->args = std::move(args);
  return node;
}

CallArg ScalarArg(Expr value) {
  CallArg arg;
  arg.scalar = std::move(value);
  return arg;
}

CallArg PointerArg(const Buffer& buffer, Expr offset) {
  CallArg arg;
  arg.buffer = buffer;
  arg.offset = std::move(offset);
  return arg;
}

Stmt GemmStep(const GemmStepArgs& g) {
  const auto value = [](int64_t v) { return ScalarArg(IntImm(v)); };
  const auto real = [](double v) { return ScalarArg(FloatImm(v, ScalarType::kFloat64)); };
  return Call(kGemmStepRoutine,
              {PointerArg(g.a, IntImm(g.a_offset)), PointerArg(g.b, IntImm(g.b_offset)),
               PointerArg(g.c, IntImm(g.c_offset)), value(g.m), value(g.n), value(g.k), value(g.batch), value(g.lda),
               value(g.ldb), value(g.ldc), value(g.stride_a), value(g.stride_b), value(g.stride_c),
               value(g.transpose_a ? 1 : 0), value(g.transpose_b ? 1 : 0), real(g.alpha), real(g.beta)});
}

bool IsLibraryStep(const Stmt& s) {
  return s != nullptr && s->kind == StmtKind::kCall && s->routine == kGemmStepRoutine;
}

namespace {

constexpr size_t kGemmStepArgs = 17;

// The last element an operand of `rows` x `cols` (as stored) reaches, plus one; 0 when
// empty. Overflow-safe: sizes are static but come from any graph.
int64_t OperandReach(int64_t offset, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld,
                     const std::string& what) {
  Require(offset >= 0 && stride >= 0 && rows >= 0 && cols >= 0 && ld >= 0,
          what + ": negative offset, stride, size or leading dimension");
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  Require(ld >= cols,
          what + ": leading dimension " + std::to_string(ld) + " below its " + std::to_string(cols) + " columns");
  __int128 last = offset;
  last += static_cast<__int128>(batch - 1) * stride + static_cast<__int128>(rows - 1) * ld + cols;
  Require(last <= INT64_MAX, what + ": its extent overflows");
  return static_cast<int64_t>(last);
}

void CheckGemmStep(const GemmStepArgs& g) {
  Require(g.m >= 0 && g.n >= 0 && g.k >= 0 && g.batch >= 1,
          "gemm step: sizes m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
              " batch=" + std::to_string(g.batch) + " (expected m, n, k >= 0 and batch >= 1)");
  const struct {
    const Buffer& buffer;
    int64_t offset, stride, rows, cols, ld;
    const char* name;
  } operands[] = {
      {g.a, g.a_offset, g.stride_a, g.transpose_a ? g.k : g.m, g.transpose_a ? g.m : g.k, g.lda, "A"},
      {g.b, g.b_offset, g.stride_b, g.transpose_b ? g.n : g.k, g.transpose_b ? g.k : g.n, g.ldb, "B"},
      {g.c, g.c_offset, g.stride_c, g.m, g.n, g.ldc, "C"},
  };
  for (const auto& x : operands) {
    const std::string what = std::string("gemm step operand ") + x.name;
    Require(x.buffer != nullptr && !x.buffer->is_local && x.buffer->type == ScalarType::kFloat32,
            what + " must be a float32 kernel argument");
    const int64_t reach = OperandReach(x.offset, g.batch, x.stride, x.rows, x.cols, x.ld, what);
    Require(reach <= x.buffer->size, what + " reaches element " + std::to_string(reach) + " of '" + x.buffer->name +
                                         "', which holds " + std::to_string(x.buffer->size));
  }
}

// The top-level statements of a body: nested blocks flattened.
void TopLevel(const Stmt& s, std::vector<Stmt>& out) {
  if (s != nullptr && s->kind == StmtKind::kBlock) {
    for (const auto& child : s->body) TopLevel(child, out);
  } else if (s != nullptr) {
    out.push_back(s);
  }
}

std::vector<Stmt> TopLevel(const Stmt& body) {
  std::vector<Stmt> statements;
  TopLevel(body, statements);
  return statements;
}

}  // namespace

namespace {

// Whether `e` may read slot `slot` of `buffer` (a load at a non-constant index may).
bool ReadsSlot(const Expr& e, const BufferNode* buffer, int64_t slot) {
  if (e->kind == ExprKind::kLoad && e->buffer.get() == buffer &&
      (e->operands[0]->kind != ExprKind::kIntImm || e->operands[0]->int_value == slot)) {
    return true;
  }
  return std::any_of(e->operands.begin(), e->operands.end(), [&](const Expr& o) { return ReadsSlot(o, buffer, slot); });
}

}  // namespace

Reduction ReductionOf(const StmtNode& loop) {
  const auto fail = [](const std::string& why) { Require(false, "a reduction loop's body " + why); };
  Require(loop.kind == StmtKind::kFor && loop.loop_kind == LoopKind::kReduction, "not a reduction loop");
  const Stmt& store = loop.body[0];
  if (store->kind != StmtKind::kStore) fail("must be one store acc[k] = op(acc[k], v)");
  if (!store->buffer->is_local) fail("must store to a local accumulator");
  if (store->index->kind != ExprKind::kIntImm) fail("must store to a constant slot");
  const Expr& value = store->value;
  if (value->kind != ExprKind::kBinary || (value->binary != BinaryOp::kAdd && value->binary != BinaryOp::kMul &&
                                           value->binary != BinaryOp::kMin && value->binary != BinaryOp::kMax)) {
    fail("must combine with add, mul, min or max");
  }
  const auto is_slot = [&](const Expr& e) {
    return e->kind == ExprKind::kLoad && e->buffer.get() == store->buffer.get() &&
           e->operands[0]->kind == ExprKind::kIntImm && e->operands[0]->int_value == store->index->int_value;
  };
  const int current = is_slot(value->operands[0]) ? 0 : is_slot(value->operands[1]) ? 1 : -1;
  if (current < 0) fail("must combine the accumulator's own slot");
  const Expr& combined = value->operands[1 - current];
  if (ReadsSlot(combined, store->buffer.get(), store->index->int_value)) {
    fail("must combine a value that does not read the accumulator's slot");
  }
  return {store->buffer, store->index->int_value, value->binary, combined};
}

GemmStepArgs GemmStepOf(const StmtNode& call) {
  Require(call.kind == StmtKind::kCall && call.routine == kGemmStepRoutine, "not a gemm step");
  Require(call.args.size() == kGemmStepArgs,
          "gemm step: " + std::to_string(call.args.size()) + " arguments, expected " + std::to_string(kGemmStepArgs));
  for (size_t i = 0; i < 3; ++i) {
    Require(call.args[i].buffer != nullptr && call.args[i].offset.defined() &&
                call.args[i].offset->kind == ExprKind::kIntImm,
            "gemm step argument " + std::to_string(i) + " must be a buffer at a constant offset");
  }
  const auto integer = [&](size_t i) {
    const Expr& e = call.args[i].scalar;
    Require(e.defined() && e->kind == ExprKind::kIntImm,
            "gemm step argument " + std::to_string(i) + " must be an integer constant");
    return e->int_value;
  };
  const auto real = [&](size_t i) {
    const Expr& e = call.args[i].scalar;
    Require(e.defined() && e->kind == ExprKind::kFloatImm,
            "gemm step argument " + std::to_string(i) + " must be a float constant");
    return e->float_value;
  };
  GemmStepArgs g;
  g.a = call.args[0].buffer;
  g.b = call.args[1].buffer;
  g.c = call.args[2].buffer;
  g.a_offset = call.args[0].offset->int_value;
  g.b_offset = call.args[1].offset->int_value;
  g.c_offset = call.args[2].offset->int_value;
  g.m = integer(3);
  g.n = integer(4);
  g.k = integer(5);
  g.batch = integer(6);
  g.lda = integer(7);
  g.ldb = integer(8);
  g.ldc = integer(9);
  g.stride_a = integer(10);
  g.stride_b = integer(11);
  g.stride_c = integer(12);
  g.transpose_a = integer(13) != 0;
  g.transpose_b = integer(14) != 0;
  g.alpha = real(15);
  g.beta = real(16);
  CheckGemmStep(g);
  return g;
}

bool HasLibrarySteps(const Kernel& kernel) {
  const std::vector<Stmt> top = TopLevel(kernel.body);
  return std::any_of(top.begin(), top.end(), IsLibraryStep);
}

std::vector<KernelStep> SplitSteps(const Kernel& kernel) {
  if (!HasLibrarySteps(kernel)) return {KernelStep{kernel, std::nullopt}};
  std::vector<KernelStep> steps;
  for (const Stmt& s : TopLevel(kernel.body)) {
    if (IsLibraryStep(s)) {
      steps.push_back({std::nullopt, GemmStepOf(*s)});
      continue;
    }
    Kernel part;
    part.name = kernel.name + "_s" + std::to_string(steps.size());
    part.args = kernel.args;
    part.body = s;
    if (s->kind == StmtKind::kFor && s->loop_kind == LoopKind::kParallel && s->extent->kind == ExprKind::kIntImm) {
      part.parallel_extent = s->extent->int_value;
    }
    steps.push_back({std::move(part), std::nullopt});
  }
  return steps;
}

Buffer KernelBuilder::AddArg(const std::string& name, ScalarType type, int64_t size) {
  auto buffer = std::make_shared<BufferNode>();
  buffer->id = static_cast<int>(kernel_.args.size());
  buffer->name = name;
  buffer->type = type;
  buffer->size = size;
  kernel_.args.push_back(buffer);
  return buffer;
}

Buffer KernelBuilder::ReplaceArg(int id, const std::string& name, ScalarType type, int64_t size) {
  if (id < 0 || static_cast<size_t>(id) >= kernel_.args.size()) {
    throw std::invalid_argument("ReplaceArg: kernel '" + kernel_.name + "' has no argument " + std::to_string(id));
  }
  auto buffer = std::make_shared<BufferNode>(BufferNode{id, name, type, size, false});
  kernel_.args[static_cast<size_t>(id)] = buffer;
  return buffer;
}

Buffer KernelBuilder::AddLocal(const std::string& name, ScalarType type, int64_t size) {
  auto buffer = std::make_shared<BufferNode>();
  buffer->id = next_local_id_++;
  buffer->name = name;
  buffer->type = type;
  buffer->size = size;
  buffer->is_local = true;
  return buffer;
}

namespace {

// Rebuilds a body with variables numbered by first appearance. Shared subexpressions
// stay shared (memoized by node), so the rewrite is linear in the DAG's size.
class VarCanonicalizer {
 public:
  Stmt Rewrite(const Stmt& s) {
    if (!s) return s;
    auto node = std::make_shared<StmtNode>(*s);
    node->loop_var = Rewrite(s->loop_var);
    node->begin = Rewrite(s->begin);
    node->extent = Rewrite(s->extent);
    node->index = Rewrite(s->index);
    node->value = Rewrite(s->value);
    node->condition = Rewrite(s->condition);
    for (auto& child : node->body) child = Rewrite(child);
    node->otherwise = Rewrite(s->otherwise);
    for (auto& arg : node->args) {
      arg.scalar = Rewrite(arg.scalar);
      arg.offset = Rewrite(arg.offset);
    }
    return node;
  }

  Expr Rewrite(const Expr& e) {
    if (!e.defined() || e->kind == ExprKind::kIntImm || e->kind == ExprKind::kFloatImm) return e;
    if (const auto it = done_.find(e.get()); it != done_.end()) return it->second;
    ExprNode node = *e;
    if (e->kind == ExprKind::kVar) {
      const auto [it, inserted] = ids_.emplace(e->var_id, static_cast<int>(ids_.size()) + 1);
      node.var_id = it->second;
    }
    for (auto& operand : node.operands) operand = Rewrite(operand);
    Expr rewritten = Make(std::move(node));
    done_.emplace(e.get(), rewritten);
    return rewritten;
  }

 private:
  std::map<int, int> ids_;
  std::unordered_map<const ExprNode*, Expr> done_;
};

}  // namespace

Kernel KernelBuilder::Finish(Stmt body) {
  kernel_.body = VarCanonicalizer().Rewrite(body);
  kernel_.parallel_extent = 1;
  if (kernel_.body && kernel_.body->kind == StmtKind::kFor && kernel_.body->loop_kind == LoopKind::kParallel &&
      kernel_.body->extent->kind == ExprKind::kIntImm) {
    kernel_.parallel_extent = kernel_.body->extent->int_value;
  }
  Verify(kernel_);
  return kernel_;
}

namespace {

bool IsLeaf(const Expr& e) {
  return e->kind == ExprKind::kIntImm || e->kind == ExprKind::kFloatImm || e->kind == ExprKind::kVar;
}

class Printer {
 public:
  // Subexpressions used more than once by a statement print once, as `let tN = ...`
  // lines before it, so that a fused kernel's listing stays linear in its size.
  void BindShared(const std::vector<Expr>& roots, const std::string& pad) {
    names_.clear();
    std::unordered_map<const ExprNode*, int> uses;
    std::vector<Expr> order;  // post-order
    std::function<void(const Expr&)> count = [&](const Expr& e) {
      if (!e.defined() || IsLeaf(e)) return;
      if (uses[e.get()]++ > 0) return;
      for (const auto& operand : e->operands) count(operand);
      order.push_back(e);
    };
    for (const auto& root : roots) count(root);
    for (const auto& e : order) {
      if (uses[e.get()] < 2) continue;
      const std::string text = Expression(e);
      const std::string name = "t" + std::to_string(names_.size() + 1);
      out_ << pad << "let " << name << " = " << text << "\n";
      names_[e.get()] = name;
    }
  }

  std::string Expression(const Expr& e) {
    if (const auto it = names_.find(e.get()); it != names_.end()) return it->second;
    switch (e->kind) {
      case ExprKind::kIntImm:
        return std::to_string(e->int_value) +
               (e->type == ScalarType::kInt64 ? "" : std::string(":") + ScalarTypeName(e->type));
      case ExprKind::kFloatImm: {
        std::ostringstream out;
        out.precision(9);
        out << e->float_value;
        if (e->type == ScalarType::kBFloat16) {
          out << "bf16";
        } else {
          out << "f" << ScalarTypeBytes(e->type) * 8;
        }
        return out.str();
      }
      case ExprKind::kVar: return e->name;
      case ExprKind::kLoad: return e->buffer->name + "[" + Expression(e->operands[0]) + "]";
      case ExprKind::kUnary: return std::string(UnaryOpName(e->unary)) + "(" + Expression(e->operands[0]) + ")";
      case ExprKind::kBinary: {
        const std::string name = BinaryOpName(e->binary);
        if (e->binary == BinaryOp::kMin || e->binary == BinaryOp::kMax || e->binary == BinaryOp::kPow) {
          return name + "(" + Expression(e->operands[0]) + ", " + Expression(e->operands[1]) + ")";
        }
        return "(" + Expression(e->operands[0]) + " " + name + " " + Expression(e->operands[1]) + ")";
      }
      case ExprKind::kSelect:
        return "select(" + Expression(e->operands[0]) + ", " + Expression(e->operands[1]) + ", " +
               Expression(e->operands[2]) + ")";
      case ExprKind::kCast: return std::string(ScalarTypeName(e->type)) + "(" + Expression(e->operands[0]) + ")";
    }
    return "?";
  }

  void Statement(const Stmt& s, int depth) {
    const std::string pad(static_cast<size_t>(depth) * 2, ' ');
    switch (s->kind) {
      case StmtKind::kFor: {
        static const char* kKinds[] = {"for",          "parallel for",    "vectorized for",
                                       "unrolled for", "independent for", "reduction for"};
        out_ << pad << kKinds[static_cast<int>(s->loop_kind)] << " " << s->loop_var->name << " in ["
             << Expression(s->begin) << ", +" << Expression(s->extent) << "):\n";
        Statement(s->body[0], depth + 1);
        break;
      }
      case StmtKind::kStore:
        BindShared({s->index, s->value}, pad);
        out_ << pad << s->buffer->name << "[" << Expression(s->index) << "] = " << Expression(s->value) << "\n";
        names_.clear();
        break;
      case StmtKind::kBlock:
        for (const auto& child : s->body) Statement(child, depth);
        break;
      case StmtKind::kIf:
        BindShared({s->condition}, pad);
        out_ << pad << "if " << Expression(s->condition) << ":\n";
        names_.clear();
        Statement(s->body[0], depth + 1);
        if (s->otherwise) {
          out_ << pad << "else:\n";
          Statement(s->otherwise, depth + 1);
        }
        break;
      case StmtKind::kAllocate:
        out_ << pad << "local " << s->buffer->name << ": " << ScalarTypeName(s->buffer->type) << "[" << s->buffer->size
             << "]\n";
        Statement(s->body[0], depth);
        break;
      case StmtKind::kCall: {
        out_ << pad << "call " << s->routine << "(";
        for (size_t i = 0; i < s->args.size(); ++i) {
          const auto& arg = s->args[i];
          out_ << (i ? ", " : "")
               << (arg.buffer ? "&" + arg.buffer->name + "[" + Expression(arg.offset) + "]" : Expression(arg.scalar));
        }
        out_ << ")\n";
        break;
      }
    }
  }

  std::unordered_map<const ExprNode*, std::string> names_;
  std::ostringstream out_;
};

class Verifier {
 public:
  explicit Verifier(const Kernel& kernel) {
    for (const auto& arg : kernel.args) args_.insert(arg.get());
  }

  // A kernel with library steps runs each top-level statement as a kernel of its own
  // (SplitSteps): each may begin with a parallel loop.
  void Body(const Stmt& body, bool has_steps) {
    if (!has_steps) {
      Statement(body, true);
      return;
    }
    for (const Stmt& s : TopLevel(body)) {
      top_level_ = true;
      Statement(s, true);
    }
  }

  void Statement(const Stmt& s, bool outermost) {
    Require(s != nullptr, "null statement");
    const bool top_level = top_level_;
    top_level_ = false;
    switch (s->kind) {
      case StmtKind::kFor:
        Require(outermost || s->loop_kind != LoopKind::kParallel, "a parallel loop must be the outermost statement");
        if (s->loop_kind == LoopKind::kReduction) ReductionOf(*s);
        Expression(s->begin);
        Expression(s->extent);
        Statement(s->body[0], false);
        break;
      case StmtKind::kStore:
        CheckBuffer(s->buffer);
        Expression(s->index);
        Expression(s->value);
        break;
      case StmtKind::kBlock:
        for (const auto& child : s->body) Statement(child, false);
        break;
      case StmtKind::kIf:
        Expression(s->condition);
        Statement(s->body[0], false);
        if (s->otherwise) Statement(s->otherwise, false);
        break;
      case StmtKind::kAllocate:
        locals_.insert(s->buffer.get());
        checked_.clear();
        Statement(s->body[0], false);
        locals_.erase(s->buffer.get());
        checked_.clear();
        break;
      case StmtKind::kCall:
        if (s->routine == kGemmStepRoutine) {
          Require(top_level, "a library step (" + s->routine + ") must be a top-level statement of its kernel");
          GemmStepOf(*s);
        }
        for (const auto& arg : s->args) {
          if (arg.buffer) {
            CheckBuffer(arg.buffer);
            Expression(arg.offset);
          } else {
            Require(arg.scalar.defined(), "call to " + s->routine + " has an empty argument");
            Expression(arg.scalar);
          }
        }
        break;
    }
  }

 private:
  void CheckBuffer(const Buffer& buffer) {
    Require(args_.count(buffer.get()) || locals_.count(buffer.get()),
            "buffer '" + buffer->name + "' is neither an argument nor an allocated local");
  }
  // Each node once per scope of locals: fused expressions are DAGs.
  void Expression(const Expr& e) {
    Require(e.defined(), "undefined expression");
    if (!checked_.insert(e.get()).second) return;
    if (e->kind == ExprKind::kLoad) CheckBuffer(e->buffer);
    for (const auto& operand : e->operands) Expression(operand);
  }

  std::set<const BufferNode*> args_;
  std::set<const BufferNode*> locals_;
  std::unordered_set<const ExprNode*> checked_;
  bool top_level_ = false;  // the statement being checked is one of the kernel's steps
};

}  // namespace

std::string Print(const Kernel& kernel) {
  Printer printer;
  printer.out_ << "kernel " << kernel.name << "(";
  for (size_t i = 0; i < kernel.args.size(); ++i) {
    printer.out_ << (i ? ", " : "") << kernel.args[i]->name << ": " << ScalarTypeName(kernel.args[i]->type) << "["
                 << kernel.args[i]->size << "]";
  }
  printer.out_ << "):\n";
  if (kernel.body) printer.Statement(kernel.body, 1);
  return printer.out_.str();
}

std::string Print(const Expr& expr) {
  return Printer().Expression(expr);
}

namespace {

// FNV-1a style mixing; nodes hash once (the body is a DAG).
class Hasher {
 public:
  explicit Hasher(const Kernel& kernel) {
    for (size_t i = 0; i < kernel.args.size(); ++i) buffer_index_[kernel.args[i].get()] = static_cast<int64_t>(i);
  }
  uint64_t Mix(uint64_t h, uint64_t v) const { return (h ^ v) * 0x100000001b3ULL + (h >> 29); }
  uint64_t Text(uint64_t h, const std::string& text) const {
    for (const char c : text) h = Mix(h, static_cast<unsigned char>(c));
    return Mix(h, text.size());
  }
  uint64_t Buffer(uint64_t h, const kir::Buffer& b) {
    if (!b) return Mix(h, 0);
    if (!buffer_index_.count(b.get())) buffer_index_[b.get()] = static_cast<int64_t>(1000000 + buffer_index_.size());
    h = Mix(h, static_cast<uint64_t>(buffer_index_[b.get()]));
    h = Mix(h, static_cast<uint64_t>(b->type));
    return Mix(h, static_cast<uint64_t>(b->size));
  }
  uint64_t Expression(const Expr& e) {
    if (!e.defined()) return 7;
    if (const auto it = memo_.find(e.get()); it != memo_.end()) return it->second;
    uint64_t h = 0xcbf29ce484222325ULL;
    h = Mix(h, static_cast<uint64_t>(e->kind));
    h = Mix(h, static_cast<uint64_t>(e->type));
    h = Mix(h, static_cast<uint64_t>(e->int_value));
    uint64_t bits = 0;
    std::memcpy(&bits, &e->float_value, sizeof bits);
    h = Mix(h, bits);
    h = Mix(h, static_cast<uint64_t>(e->var_id));
    h = Mix(h, static_cast<uint64_t>(e->unary));
    h = Mix(h, static_cast<uint64_t>(e->binary));
    if (e->kind == ExprKind::kLoad) h = Buffer(h, e->buffer);
    for (const auto& operand : e->operands) h = Mix(h, Expression(operand));
    memo_[e.get()] = h;
    return h;
  }
  uint64_t Statement(const Stmt& s) {
    if (!s) return 11;
    uint64_t h = Mix(0x84222325ULL, static_cast<uint64_t>(s->kind));
    h = Mix(h, static_cast<uint64_t>(s->loop_kind));
    for (const Expr* e : {&s->loop_var, &s->begin, &s->extent, &s->index, &s->value, &s->condition}) {
      h = Mix(h, Expression(*e));
    }
    h = Buffer(h, s->buffer);
    for (const auto& child : s->body) h = Mix(h, Statement(child));
    h = Mix(h, Statement(s->otherwise));
    h = Text(h, s->routine);
    for (const auto& arg : s->args) {
      h = Mix(h, Expression(arg.scalar));
      h = Buffer(h, arg.buffer);
      h = Mix(h, Expression(arg.offset));
    }
    return h;
  }

 private:
  std::unordered_map<const BufferNode*, int64_t> buffer_index_;
  std::unordered_map<const ExprNode*, uint64_t> memo_;
};

}  // namespace

std::vector<bool> WrittenArgs(const Kernel& kernel) {
  std::vector<bool> written(kernel.args.size(), false);
  const auto mark = [&](const Buffer& buffer) {
    if (buffer != nullptr && !buffer->is_local && buffer->id >= 0 && static_cast<size_t>(buffer->id) < written.size()) {
      written[static_cast<size_t>(buffer->id)] = true;
    }
  };
  std::function<void(const Stmt&)> walk = [&](const Stmt& s) {
    if (s == nullptr) return;
    if (s->kind == StmtKind::kStore) mark(s->buffer);
    if (IsLibraryStep(s)) mark(s->args[2].buffer);  // C
    for (const auto& child : s->body) walk(child);
    walk(s->otherwise);
  };
  walk(kernel.body);
  return written;
}

uint64_t Fingerprint(const Kernel& kernel) {
  Hasher hasher(kernel);
  uint64_t h = 0;
  for (const auto& arg : kernel.args) h = hasher.Buffer(h, arg);
  for (const bool noalias : kernel.noalias) h = hasher.Mix(h, noalias ? 2 : 1);
  return hasher.Mix(h, hasher.Statement(kernel.body));
}

void Verify(const Kernel& kernel) {
  Require(kernel.body != nullptr, "kernel '" + kernel.name + "' has no body");
  Verifier(kernel).Body(kernel.body, HasLibrarySteps(kernel));
}

}  // namespace kiln::kir
