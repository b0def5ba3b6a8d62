// kir: kiln's kernel IR. A kernel is a loop nest over flat buffers with static sizes:
// loops, loads, stores, scalar expressions, local accumulators, and calls to a few runtime
// routines (GEMM). Every operator lowers into it once; the LLVM emitter and the CUDA C
// emitter consume it. It is a leaf library: it depends on nothing else of kiln's.
//
// Semantics: the contract every emitter implements, with the kir interpreter
// (codegen/kir_interpreter.h) as its oracle.
// - Integers are held in int64 and wrap to their type's width after every operation
//   (unsigned types below 64 bits zero-extended, uint64 as its bit pattern: WrapTo).
//   Integer division and modulo by zero give 0; INT_MIN / -1 wraps (modulo gives 0).
// - Float to integer casts truncate toward zero, send NaN to 0 and saturate to the int64
//   range before wrapping to the target type (FloatToInt; uint64 saturates at its own
//   maximum). Integer to float converts through double. Bool is 0 or 1.
// - float16 and bfloat16 are stored in 16 bits and computed in float32, rounded to their
//   type after every operation; float32 is computed in float32 (the interpreter computes
//   in double and rounds: transcendental functions may differ in the last bits).
// - Min and max of floats: a NaN operand gives the other one (C's fmin/fmax).
// - A Select evaluates only the arm it picks: an arm may load at an index that is out of
//   range when the condition rules that arm out (a guarded load: padding, clipped
//   indices). Every other load and store is in range; the interpreter checks it.
// - Shared subexpressions (Expr::shared) are values: evaluating one once per statement
//   or once per use gives the same result.
// - Loop kinds state facts the emitters rely on and the interpreter checks: kParallel
//   iterations run in any order or at once; kIndependent iterations touch disjoint memory
//   (locals allocated in the body are each iteration's own); kReduction combines
//   iterations with an associative operator in any order; kVectorize and kUnroll are
//   hints.
// - Allocate'd local buffers start zero-filled.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::kir {

// The types added later come last, so that existing kernels keep their fingerprints.
// kBFloat16 is stored as 16 bits and computed in float32, rounded after every operation.
enum class ScalarType : uint8_t {
  kBool,
  kInt8,
  kUInt8,
  kInt32,
  kInt64,
  kFloat16,
  kFloat32,
  kFloat64,
  kInt16,
  kUInt16,
  kUInt32,
  kUInt64,
  kBFloat16
};
const char* ScalarTypeName(ScalarType type);
bool IsFloatType(ScalarType type);
// kUInt8 to kUInt64 (bool is neither).
bool IsUnsignedType(ScalarType type);
int ScalarTypeBytes(ScalarType type);

// kRound rounds halves away from zero; kTrunc rounds toward zero.
// Trigonometric and hyperbolic functions follow C's libm (radians; NaN outside the
// domain of the inverse functions).
enum class UnaryOp {
  kNeg,
  kAbs,
  kExp,
  kLog,
  kSqrt,
  kTanh,
  kErf,
  kFloor,
  kCeil,
  kRound,
  kTrunc,
  kNot,
  kSin,
  kCos,
  kTan,
  kAsin,
  kAcos,
  kAtan,
  kSinh,
  kCosh,
  kAsinh,
  kAcosh,
  kAtanh
};
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kMod, kMin, kMax, kPow, kLT, kLE, kGT, kGE, kEQ, kNE, kAnd, kOr };
const char* UnaryOpName(UnaryOp op);
const char* BinaryOpName(BinaryOp op);

// A buffer a kernel reads or writes: a kernel argument (global) or a local array
// (accumulators, small tiles) that lives for one Allocate statement.
struct BufferNode {
  int id = 0;  // global: the kernel argument index; local: unique within the kernel
  std::string name;
  ScalarType type = ScalarType::kFloat32;
  int64_t size = 0;  // elements
  bool is_local = false;
};
using Buffer = std::shared_ptr<const BufferNode>;

enum class ExprKind { kIntImm, kFloatImm, kVar, kLoad, kUnary, kBinary, kSelect, kCast };

struct ExprNode;
// An immutable expression tree node, shared. Index arithmetic is int64.
class Expr {
 public:
  Expr() = default;
  explicit Expr(std::shared_ptr<const ExprNode> node) : node_(std::move(node)) {}
  Expr(int64_t value);  // NOLINT: int64 immediates read naturally in index math
  Expr(int value);      // NOLINT
  const ExprNode* operator->() const { return node_.get(); }
  const ExprNode& operator*() const { return *node_; }
  bool defined() const { return node_ != nullptr; }
  ScalarType type() const;
  const ExprNode* get() const { return node_.get(); }
  // Whether more than one parent (or holder) refers to this node: fused scalar functions
  // share subexpressions (relu reads its operand twice), and evaluators compute a shared
  // node once per statement instead of once per use.
  bool shared() const { return node_.use_count() > 1; }

 private:
  std::shared_ptr<const ExprNode> node_;
};

struct ExprNode {
  ExprKind kind = ExprKind::kIntImm;
  ScalarType type = ScalarType::kInt64;
  int64_t int_value = 0;     // kIntImm
  double float_value = 0.0;  // kFloatImm
  std::string name;          // kVar
  int var_id = 0;            // kVar: unique within a kernel (canonical: numbered by first use)
  Buffer buffer;             // kLoad
  UnaryOp unary = UnaryOp::kNeg;
  BinaryOp binary = BinaryOp::kAdd;
  std::vector<Expr> operands;  // kLoad: {index}; kUnary: {a}; kBinary: {a, b}; kSelect: {c, t, f}; kCast: {a}
};

// --- building expressions ---
Expr IntImm(int64_t value, ScalarType type = ScalarType::kInt64);
Expr FloatImm(double value, ScalarType type = ScalarType::kFloat32);
// A constant of `type` (float or integer).
// Float to integer as kernels convert: truncated, NaN to 0, saturated to the int64 range
// (narrower types then wrap).
int64_t SaturateToInt64(double value);
// Float to integer type `type` as kernels convert: as SaturateToInt64 then WrapTo, but
// uint64 takes values from 2^63 up to its maximum too (saturating there), as its bit
// pattern in the int64.
int64_t FloatToInt(ScalarType type, double value);
// An integer narrowed to an integer or bool type: wraps modulo the width (bool: != 0).
// Integers are held in int64: unsigned types below 64 bits zero-extended, uint64 as its
// bit pattern.
int64_t WrapTo(ScalarType type, int64_t value);
// An integer of `type` held as WrapTo holds it, as a double (uint64 unsigned).
double IntToDouble(ScalarType type, int64_t value);
Expr Const(double value, ScalarType type);
// A fresh int64 variable (loop index or let binding).
Expr Var(const std::string& name);
Expr Load(const Buffer& buffer, Expr index);
Expr Unary(UnaryOp op, Expr a);
// Operands must have one type (Cast first); comparisons give kBool.
Expr Binary(BinaryOp op, Expr a, Expr b);
Expr Select(Expr condition, Expr if_true, Expr if_false);
Expr Cast(ScalarType type, Expr a);

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b);
Expr operator%(Expr a, Expr b);
Expr operator-(Expr a);
Expr Min(Expr a, Expr b);
Expr Max(Expr a, Expr b);
Expr Pow(Expr a, Expr b);
Expr Exp(Expr a);
Expr Log(Expr a);
Expr Sqrt(Expr a);
Expr Tanh(Expr a);
Expr Erf(Expr a);
Expr Abs(Expr a);
Expr Floor(Expr a);
Expr Ceil(Expr a);
Expr Round(Expr a);
Expr Trunc(Expr a);
Expr Lt(Expr a, Expr b);
Expr Le(Expr a, Expr b);
Expr Gt(Expr a, Expr b);
Expr Ge(Expr a, Expr b);
Expr Eq(Expr a, Expr b);
Expr Ne(Expr a, Expr b);
Expr And(Expr a, Expr b);
Expr Or(Expr a, Expr b);

// --- statements ---
enum class StmtKind { kFor, kStore, kBlock, kIf, kAllocate, kCall };
// kParallel: iterations are split across the runtime's threads (only the outermost loop
// of a kernel); kVectorize and kUnroll are hints to the emitter. kIndependent is a
// kVectorize loop whose lowering guarantees that its iterations are independent: no
// iteration reads or writes an element of a global buffer that another writes (locals
// allocated in the body are each iteration's own, indexed by constants), so the emitter
// vectorizes it without proving that itself; the interpreter checks the claim.
// kReduction: each iteration only combines a value into one slot of a local accumulator
// with an associative, commutative operator: its body is the single store
// acc[k] = op(acc[k], v), k constant, op kAdd, kMul, kMin or kMax, v not reading acc[k]
// (ReductionOf; other slots, unchanged by the loop, it may read). Its iterations may run in any order and in parallel
// with the partial results combined (a GPU block's threads, warp shuffles); serial emitters run it as a plain loop.
// Floating-point sums then round differently.
enum class LoopKind { kSerial, kParallel, kVectorize, kUnroll, kIndependent, kReduction };

struct StmtNode;
using Stmt = std::shared_ptr<const StmtNode>;

// A kReduction loop's parts: acc[slot] = op(acc[slot], value).
struct Reduction {
  Buffer acc;
  int64_t slot = 0;
  BinaryOp op = BinaryOp::kAdd;
  Expr value;
};

// A runtime routine argument: a scalar, or a pointer into a buffer at an element offset.
struct CallArg {
  Expr scalar;    // set for scalars
  Buffer buffer;  // set for pointers
  Expr offset;    // element offset into `buffer`
};

struct StmtNode {
  StmtKind kind = StmtKind::kBlock;
  // kFor
  Expr loop_var;
  Expr begin;
  Expr extent;
  LoopKind loop_kind = LoopKind::kSerial;
  // kStore
  Buffer buffer;  // also kAllocate's local buffer
  Expr index;
  Expr value;
  // kIf
  Expr condition;
  // kFor / kAllocate: body; kIf: then, otherwise; kBlock: sequence
  std::vector<Stmt> body;
  Stmt otherwise;
  // kCall
  std::string routine;
  std::vector<CallArg> args;
};

Stmt For(Expr var, Expr begin, Expr extent, Stmt body, LoopKind kind = LoopKind::kSerial);
Stmt Store(const Buffer& buffer, Expr index, Expr value);
Stmt Block(std::vector<Stmt> statements);
Stmt If(Expr condition, Stmt then, Stmt otherwise = nullptr);
// Declares a local array for the duration of `body`.
Stmt Allocate(const Buffer& local, Stmt body);
Stmt Call(const std::string& routine, std::vector<CallArg> args);
CallArg ScalarArg(Expr value);
CallArg PointerArg(const Buffer& buffer, Expr offset = Expr(int64_t{0}));

// A kernel: arguments (inputs, outputs and scratch, in that order as the lowering
// declared them) and a body. Buffers are flat; lowering computes indices.
struct Kernel {
  std::string name;
  std::vector<Buffer> args;
  Stmt body;
  // Iterations of the outermost kParallel loop, 1 when there is none. The runtime calls
  // the kernel with sub-ranges [begin, end) of [0, parallel_extent).
  int64_t parallel_extent = 1;
  // Per argument, from the memory plan (the compile driver sets it): true where no other
  // argument of the call shares its storage while either is written, so an emitter may
  // mark it noalias (CUDA's __restrict__). Empty: nothing is known.
  std::vector<bool> noalias;
};

// Per argument, whether the body writes it (stores; a library step's C).
std::vector<bool> WrittenArgs(const Kernel& kernel);

// The parts of a kReduction loop; throws std::invalid_argument when its body is not the
// accumulator form.
Reduction ReductionOf(const StmtNode& loop);

// --- library steps ---
// A lowering may hand work to a library as a step of its own (cuBLAS's GEMM on the GPU,
// where a product inside a kernel has no fast form): the kernel's body is then a
// sequence whose top-level statements are either library steps or loop nests, and it
// runs as that sequence (SplitSteps): each loop nest a kernel of its own (a kParallel
// loop may begin each), each step a library call between them, all on the kernel's
// arguments.

// A float32 matrix product with every size known at compile time: for b < batch,
// C_b = alpha op(A_b) op(B_b) + beta C_b, row-major, op(A_b) (m, k), op(B_b) (k, n), C_b
// (m, n); X_b begins x_offset + b * stride_x elements into buffer x, rows ld_x apart,
// stored transposed when transpose_x. C_b must not overlap A_b or B_b.
struct GemmStepArgs {
  Buffer a, b, c;
  int64_t a_offset = 0, b_offset = 0, c_offset = 0;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  bool transpose_a = false, transpose_b = false;
  double alpha = 1.0, beta = 0.0;
};
// The routine name a library GEMM step's kCall statement carries.
inline constexpr const char* kGemmStepRoutine = "gemm_step";
Stmt GemmStep(const GemmStepArgs& gemm);
// Whether `s` is a library step (a kCall of a step routine), and its arguments.
bool IsLibraryStep(const Stmt& s);
GemmStepArgs GemmStepOf(const StmtNode& call);
// Whether the kernel's body holds library steps (at its top level, where Verify allows
// them).
bool HasLibrarySteps(const Kernel& kernel);

// One step of a kernel run as a sequence: a kernel of its own, or a library GEMM.
struct KernelStep {
  std::optional<Kernel> kernel;
  std::optional<GemmStepArgs> gemm;
};
// The kernel as the sequence it runs: itself alone when it has no library steps; else
// each top-level loop nest as a kernel named kernel.name + "_s<i>" (its own parallel
// extent, the kernel's arguments) and each library step, in order.
std::vector<KernelStep> SplitSteps(const Kernel& kernel);

// Builds buffers and variables with unique ids for one kernel. Finish renumbers the
// variables in the order they first appear (1, 2, ...), so that two kernels built alike
// are equal whatever was built before them (Fingerprint).
class KernelBuilder {
 public:
  explicit KernelBuilder(std::string name) { kernel_.name = std::move(name); }
  Buffer AddArg(const std::string& name, ScalarType type, int64_t size);
  // Gives argument `id` a new name, type and size (a lowering that reads a compile-time
  // constant in an input's place); the old Buffer must no longer be used.
  Buffer ReplaceArg(int id, const std::string& name, ScalarType type, int64_t size);
  Buffer AddLocal(const std::string& name, ScalarType type, int64_t size);
  Kernel Finish(Stmt body);

 private:
  Kernel kernel_;
  int next_local_id_ = 1000000;
};

// A hash of the kernel's arguments and body (not its name): equal for kernels that
// compute the same thing with the same buffers, the key of kernel caches.
uint64_t Fingerprint(const Kernel& kernel);

// Human-readable listing (for tests, `kiln inspect`, and debugging).
std::string Print(const Kernel& kernel);
std::string Print(const Expr& expr);

// Checks that every load and store uses the kernel's buffers and int64 indices, that
// operand types agree, and that a parallel loop, if any, is outermost (in a kernel with
// library steps: outermost in its top-level statement), and that library steps lie at
// the top level with constant arguments. Throws std::invalid_argument naming the problem.
void Verify(const Kernel& kernel);

}  // namespace kiln::kir
