#include "codegen/llvm/kir_to_llvm.h"

#include <llvm/ADT/APFloat.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Metadata.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/code_module.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"

namespace kiln::llvm_codegen {
namespace {

using kir::BinaryOp;
using kir::ExprKind;
using kir::LoopKind;
using kir::ScalarType;
using kir::StmtKind;
using kir::UnaryOp;

// The emitter reads the routine table as { i32 abi_version; ptr sgemm; ptr sconv; ptr sconv_t }.
static_assert(offsetof(KilnRuntimeApi, sgemm) == sizeof(void*));
static_assert(offsetof(KilnRuntimeApi, sconv) == 2 * sizeof(void*));
static_assert(offsetof(KilnRuntimeApi, sconv_t) == 3 * sizeof(void*));
static_assert(sizeof(KilnRuntimeApi) == (1 + std::size(kRoutines)) * sizeof(void*));

constexpr int64_t kMaxLocalBytes = int64_t{1} << 20;
// kUnroll loops with a constant trip count up to this are unrolled completely.
constexpr int64_t kFullUnrollLimit = 64;

bool IsUnsigned(ScalarType type) {
  return kir::IsUnsignedType(type) || type == ScalarType::kBool;
}

class KernelEmitter {
 public:
  KernelEmitter(const kir::Kernel& kernel, llvm::Function* function)
      : kernel_(kernel),
        context_(function->getContext()),
        module_(*function->getParent()),
        function_(function),
        builder_(context_) {}

  void Emit() {
    entry_ = llvm::BasicBlock::Create(context_, "entry", function_);
    builder_.SetInsertPoint(entry_);
    llvm::Value* buffers = function_->getArg(0);
    llvm::Value* begin = function_->getArg(1);
    llvm::Value* end = function_->getArg(2);
    api_ = function_->getArg(3);
    buffers->setName("buffers");
    begin->setName("begin");
    end->setName("end");
    api_->setName("api");
    for (size_t k = 0; k < kernel_.args.size(); ++k) {
      const auto& arg = kernel_.args[k];
      llvm::Value* slot = builder_.CreateConstInBoundsGEP1_64(builder_.getPtrTy(), buffers, k);
      base_[arg.get()] = builder_.CreateAlignedLoad(builder_.getPtrTy(), slot, llvm::Align(alignof(void*)), arg->name);
    }
    MakeAliasScopes();
    const kir::Stmt& body = kernel_.body;
    if (body->kind == StmtKind::kFor && body->loop_kind == LoopKind::kParallel) {
      // The caller's share [begin, end) replaces the parallel loop's own range.
      EmitLoop(*body, begin, end, nullptr);
    } else {
      llvm::BasicBlock* run = NewBlock("run");
      llvm::BasicBlock* done = NewBlock("done");
      builder_.CreateCondBr(builder_.CreateICmpSLT(begin, end), run, done);
      builder_.SetInsertPoint(run);
      EmitStmt(body);
      builder_.CreateBr(done);
      builder_.SetInsertPoint(done);
    }
    builder_.CreateRetVoid();
  }

 private:
  [[noreturn]] void Fail(const std::string& message) const { throw Error("kernel '" + kernel_.name + "': " + message); }

  llvm::BasicBlock* NewBlock(const char* name) { return llvm::BasicBlock::Create(context_, name, function_); }

  // Bools are i1 in registers and one byte (0/1) in memory. bfloat16 is a float in
  // registers (its low 16 bits zero: every operation rounds) and its upper 16 bits in
  // memory, converted by bit manipulation rather than LLVM's bfloat type, whose
  // arithmetic and conversions lower to library calls on x86 without AVX512-BF16.
  // Signedness is the operations' (udiv, icmp ult, uitofp), not the registers'.
  llvm::Type* RegisterType(ScalarType type) {
    switch (type) {
      case ScalarType::kBool: return builder_.getInt1Ty();
      case ScalarType::kInt8:
      case ScalarType::kUInt8: return builder_.getInt8Ty();
      case ScalarType::kInt16:
      case ScalarType::kUInt16: return builder_.getInt16Ty();
      case ScalarType::kInt32:
      case ScalarType::kUInt32: return builder_.getInt32Ty();
      case ScalarType::kInt64:
      case ScalarType::kUInt64: return builder_.getInt64Ty();
      case ScalarType::kFloat16: return builder_.getHalfTy();
      case ScalarType::kBFloat16:
      case ScalarType::kFloat32: return builder_.getFloatTy();
      case ScalarType::kFloat64: return builder_.getDoubleTy();
    }
    Fail("unknown scalar type");
  }
  llvm::Type* MemoryType(ScalarType type) {
    if (type == ScalarType::kBool) return builder_.getInt8Ty();
    if (type == ScalarType::kBFloat16) return builder_.getInt16Ty();
    return RegisterType(type);
  }

  // bfloat16 bits (i16) to the float they are the upper half of: exact.
  llvm::Value* BFloat16ToFloat(llvm::Value* bits) {
    llvm::Value* wide = builder_.CreateShl(builder_.CreateZExt(bits, builder_.getInt32Ty()), 16);
    return builder_.CreateBitCast(wide, builder_.getFloatTy());
  }

  // A float to bfloat16 bits (i16), as kiln::FloatToBFloat16: round to nearest even on the
  // dropped half; a NaN keeps its sign and upper payload and becomes quiet.
  llvm::Value* FloatToBFloat16(llvm::Value* value) {
    llvm::Value* bits = builder_.CreateBitCast(value, builder_.getInt32Ty());
    llvm::Value* upper = builder_.CreateLShr(bits, 16);
    llvm::Value* odd = builder_.CreateAnd(upper, 1);
    llvm::Value* rounded =
        builder_.CreateLShr(builder_.CreateAdd(bits, builder_.CreateAdd(odd, builder_.getInt32(0x7fff))), 16);
    llvm::Value* quiet = builder_.CreateOr(upper, 0x40);
    llvm::Value* is_nan = builder_.CreateFCmpUNO(value, value);
    return builder_.CreateTrunc(builder_.CreateSelect(is_nan, quiet, rounded), builder_.getInt16Ty());
  }

  // A float rounded to the nearest bfloat16, still a float: what every bfloat16 operation
  // computed in float32 ends with.
  llvm::Value* RoundToBFloat16(llvm::Value* value) { return BFloat16ToFloat(FloatToBFloat16(value)); }
  llvm::Align ElementAlign(ScalarType type) { return llvm::Align(kir::ScalarTypeBytes(type)); }

  // ---- statements ----

  void EmitStmt(const kir::Stmt& s) {
    // Values computed for one statement's expressions are reused only within it.
    memo_.assign(1, {});
    switch (s->kind) {
      case StmtKind::kFor: {
        llvm::Value* begin = EmitExpr(s->begin);
        llvm::Value* end = builder_.CreateAdd(begin, EmitExpr(s->extent));
        if (s->loop_kind == LoopKind::kIndependent) {
          EmitVersionedLoop(*s, {}, begin, end);
          return;
        }
        if (s->loop_kind == LoopKind::kVectorize) {
          if (const auto overlaps = IndependenceConditions(*s)) {
            EmitVersionedLoop(*s, *overlaps, begin, end);
            return;
          }
        }
        EmitLoop(*s, begin, end, LoopHints(*s));
        return;
      }
      case StmtKind::kStore: {
        llvm::Value* address = Address(s->buffer, EmitExpr(s->index));
        llvm::Value* value = EmitExpr(s->value);
        if (s->buffer->type == ScalarType::kBool) value = builder_.CreateZExt(value, builder_.getInt8Ty());
        if (s->buffer->type == ScalarType::kBFloat16) value = FloatToBFloat16(value);
        Grouped(builder_.CreateAlignedStore(value, address, ElementAlign(s->buffer->type)), *s->buffer);
        return;
      }
      case StmtKind::kBlock:
        for (const auto& child : s->body) EmitStmt(child);
        return;
      case StmtKind::kIf: {
        llvm::Value* condition = EmitExpr(s->condition);
        llvm::BasicBlock* then_block = NewBlock("then");
        llvm::BasicBlock* else_block = s->otherwise ? NewBlock("else") : nullptr;
        llvm::BasicBlock* merge = NewBlock("endif");
        builder_.CreateCondBr(condition, then_block, else_block ? else_block : merge);
        builder_.SetInsertPoint(then_block);
        EmitStmt(s->body[0]);
        builder_.CreateBr(merge);
        if (else_block) {
          builder_.SetInsertPoint(else_block);
          EmitStmt(s->otherwise);
          builder_.CreateBr(merge);
        }
        builder_.SetInsertPoint(merge);
        return;
      }
      case StmtKind::kAllocate: EmitAllocate(*s); return;
      case StmtKind::kCall: EmitCall(*s); return;
    }
    Fail("unknown statement");
  }

  // A loop over [begin, end), rotated (test at the bottom) behind a guard, with `hints`
  // (a loop ID, or null) on the latch.
  void EmitLoop(const kir::StmtNode& loop, llvm::Value* begin, llvm::Value* end, llvm::MDNode* hints) {
    llvm::BasicBlock* preheader = builder_.GetInsertBlock();
    llvm::BasicBlock* body = NewBlock("loop");
    llvm::BasicBlock* exit = NewBlock("loop.end");
    builder_.CreateCondBr(builder_.CreateICmpSLT(begin, end), body, exit);
    builder_.SetInsertPoint(body);
    llvm::PHINode* index = builder_.CreatePHI(builder_.getInt64Ty(), 2, loop.loop_var->name);
    index->addIncoming(begin, preheader);
    const int var = loop.loop_var->var_id;
    const auto outer = vars_.find(var);
    llvm::Value* shadowed = outer == vars_.end() ? nullptr : outer->second;
    vars_[var] = index;
    EmitStmt(loop.body[0]);
    llvm::Value* next = builder_.CreateAdd(index, builder_.getInt64(1), "", /*HasNUW=*/false, /*HasNSW=*/true);
    llvm::BranchInst* latch = builder_.CreateCondBr(builder_.CreateICmpSLT(next, end), body, exit);
    index->addIncoming(next, builder_.GetInsertBlock());
    if (hints) latch->setMetadata(llvm::LLVMContext::MD_loop, hints);
    if (shadowed) {
      vars_[var] = shadowed;
    } else {
      vars_.erase(var);
    }
    builder_.SetInsertPoint(exit);
  }

  llvm::MDNode* LoopHints(const kir::StmtNode& loop) {
    if (loop.loop_kind == LoopKind::kVectorize) return LoopId({VectorizeHint(true)});
    if (loop.loop_kind == LoopKind::kUnroll) {
      const bool small = loop.extent->kind == ExprKind::kIntImm && loop.extent->int_value <= kFullUnrollLimit;
      return LoopId({llvm::MDNode::get(
          context_, {llvm::MDString::get(context_, small ? "llvm.loop.unroll.full" : "llvm.loop.unroll.enable")})});
    }
    return nullptr;
  }

  llvm::Metadata* VectorizeHint(bool enable) {
    return llvm::MDNode::get(context_, {llvm::MDString::get(context_, "llvm.loop.vectorize.enable"),
                                        llvm::ConstantAsMetadata::get(builder_.getInt1(enable))});
  }

  // A loop ID is a distinct node whose first operand is itself.
  llvm::MDNode* LoopId(std::vector<llvm::Metadata*> hints) {
    hints.insert(hints.begin(), nullptr);
    llvm::MDNode* id = llvm::MDNode::getDistinct(context_, hints);
    id->replaceOperandWith(0, id);
    return id;
  }

  // Tags a memory access with the access group of the parallel loop being emitted. Locals
  // are one stack slot for all iterations: left untagged, they vectorize once promoted to
  // registers (constant indices) and otherwise keep the loop in order.
  template <typename Instruction>
  Instruction* Grouped(Instruction* access, const kir::BufferNode& buffer) {
    if (access_group_ && !buffer.is_local) access->setMetadata(llvm::LLVMContext::MD_access_group, access_group_);
    if (const auto scope = alias_scopes_.find(&buffer); scope != alias_scopes_.end()) {
      access->setMetadata(llvm::LLVMContext::MD_alias_scope, scope->second.first);
      access->setMetadata(llvm::LLVMContext::MD_noalias, scope->second.second);
    }
    return access;
  }

  // Arguments the memory plan keeps apart from every written one (kir::Kernel::noalias)
  // get an alias scope each, as C's restrict: an access to one is in its scope and alias
  // no other such argument's, so LLVM needs no overlap checks between them.
  void MakeAliasScopes() {
    if (kernel_.noalias.size() != kernel_.args.size()) return;
    llvm::MDBuilder md(context_);
    llvm::MDNode* domain = md.createAnonymousAliasScopeDomain(kernel_.name);
    std::vector<std::pair<const kir::BufferNode*, llvm::MDNode*>> scopes;
    for (size_t k = 0; k < kernel_.args.size(); ++k) {
      if (kernel_.noalias[k]) scopes.emplace_back(kernel_.args[k].get(), md.createAnonymousAliasScope(domain));
    }
    if (scopes.size() < 2) return;
    for (const auto& [buffer, scope] : scopes) {
      std::vector<llvm::Metadata*> others;
      for (const auto& [other, other_scope] : scopes) {
        if (other != buffer) others.push_back(other_scope);
      }
      alias_scopes_[buffer] = {llvm::MDNode::get(context_, {scope}), llvm::MDNode::get(context_, others)};
    }
  }

  // ---- in-place elementwise loops ----
  //
  // LLVM guards a vectorized loop with runtime overlap checks, which fail when an output
  // is an input's storage (in-place execution), leaving the scalar loop. A kVectorize loop
  // whose body only stores at index (j + invariant), and reads each buffer it may share
  // with a store at that same index, has independent iterations whenever every such pair
  // of buffers is either the same storage or disjoint. The loop is then emitted twice:
  // marked parallel (no runtime checks) behind that test, and unvectorized otherwise.

  // Two global buffers that must not partially overlap (`may_coincide`) or not overlap at all.
  struct Overlap {
    const kir::BufferNode* store;
    const kir::BufferNode* other;
    bool may_coincide;
  };
  struct Access {
    const kir::BufferNode* buffer;
    const kir::Expr* index;
    bool is_store;
  };

  // Walks visit each node of a DAG once.
  static bool Mentions(const kir::Expr& e, int var) {
    std::unordered_set<const kir::ExprNode*> seen;
    std::function<bool(const kir::Expr&)> visit = [&](const kir::Expr& x) {
      if (x->kind == ExprKind::kVar) return x->var_id == var;
      if (!seen.insert(x.get()).second) return false;
      for (const auto& operand : x->operands) {
        if (visit(operand)) return true;
      }
      return false;
    };
    return visit(e);
  }

  static bool SameExpr(const kir::Expr& a, const kir::Expr& b) {
    if (a.get() == b.get()) return true;
    if (a->kind != b->kind || a->type != b->type || a->int_value != b->int_value || a->var_id != b->var_id ||
        a->unary != b->unary || a->binary != b->binary || a->buffer != b->buffer ||
        a->operands.size() != b->operands.size()) {
      return false;
    }
    if (a->kind == ExprKind::kFloatImm && !(a->float_value == b->float_value)) return false;
    for (size_t i = 0; i < a->operands.size(); ++i) {
      if (!SameExpr(a->operands[i], b->operands[i])) return false;
    }
    return true;
  }

  // j, or j plus an expression of other loop variables and constants: distinct per iteration.
  bool IsUnitStride(const kir::Expr& e, int var) {
    if (e->kind == ExprKind::kVar) return e->var_id == var;
    if (e->kind != ExprKind::kBinary || e->binary != BinaryOp::kAdd) return false;
    const auto invariant = [&](const kir::Expr& x) { return !Mentions(x, var) && !HasLoad(x); };
    return (IsUnitStride(e->operands[0], var) && invariant(e->operands[1])) ||
           (invariant(e->operands[0]) && IsUnitStride(e->operands[1], var));
  }

  static void CollectLoads(const kir::Expr& e, std::vector<Access>& accesses,
                           std::unordered_set<const kir::ExprNode*>& seen) {
    if (!seen.insert(e.get()).second) return;
    if (e->kind == ExprKind::kLoad) accesses.push_back({e->buffer.get(), &e->operands[0], false});
    for (const auto& operand : e->operands) CollectLoads(operand, accesses, seen);
  }

  static bool CollectAccesses(const kir::Stmt& s, std::vector<Access>& accesses) {
    if (s->kind == StmtKind::kBlock) {
      for (const auto& child : s->body) {
        if (!CollectAccesses(child, accesses)) return false;
      }
      return true;
    }
    if (s->kind != StmtKind::kStore) return false;
    accesses.push_back({s->buffer.get(), &s->index, true});
    std::unordered_set<const kir::ExprNode*> seen;
    CollectLoads(s->index, accesses, seen);
    CollectLoads(s->value, accesses, seen);
    return true;
  }

  // The overlaps to rule out at run time for the loop's iterations to be independent, or
  // nothing when its form does not allow the argument.
  std::optional<std::vector<Overlap>> IndependenceConditions(const kir::StmtNode& loop) {
    std::vector<Access> accesses;
    if (!CollectAccesses(loop.body[0], accesses)) return std::nullopt;
    const int var = loop.loop_var->var_id;
    std::vector<Overlap> overlaps;
    for (const Access& store : accesses) {
      if (store.buffer->is_local) return std::nullopt;
      if (!store.is_store) continue;
      if (!IsUnitStride(*store.index, var)) return std::nullopt;
      for (const Access& other : accesses) {
        if (&other == &store) continue;
        if (other.buffer->is_local) return std::nullopt;
        const bool same_element = SameExpr(*store.index, *other.index) &&
                                  kir::ScalarTypeBytes(store.buffer->type) == kir::ScalarTypeBytes(other.buffer->type);
        if (store.buffer == other.buffer) {
          if (!same_element) return std::nullopt;
          continue;
        }
        overlaps.push_back({store.buffer, other.buffer, same_element});
      }
    }
    return overlaps;
  }

  llvm::Value* NoOverlap(const Overlap& overlap) {
    const auto bounds = [&](const kir::BufferNode* buffer) {
      llvm::Value* base = base_.at(buffer);
      const int64_t bytes = buffer->size * kir::ScalarTypeBytes(buffer->type);
      return std::pair{base, builder_.CreateConstInBoundsGEP1_64(builder_.getInt8Ty(), base, bytes)};
    };
    const auto [a, a_end] = bounds(overlap.store);
    const auto [b, b_end] = bounds(overlap.other);
    llvm::Value* disjoint = builder_.CreateOr(builder_.CreateICmpULE(a_end, b), builder_.CreateICmpULE(b_end, a));
    return overlap.may_coincide ? builder_.CreateOr(builder_.CreateICmpEQ(a, b), disjoint) : disjoint;
  }

  void EmitVersionedLoop(const kir::StmtNode& loop, const std::vector<Overlap>& overlaps, llvm::Value* begin,
                         llvm::Value* end) {
    llvm::MDNode* group = llvm::MDNode::getDistinct(context_, {});
    llvm::MDNode* parallel =
        LoopId({VectorizeHint(true),
                llvm::MDNode::get(context_, {llvm::MDString::get(context_, "llvm.loop.parallel_accesses"), group})});
    if (overlaps.empty()) {
      access_group_ = group;
      EmitLoop(loop, begin, end, parallel);
      access_group_ = nullptr;
      return;
    }
    llvm::Value* independent = builder_.getTrue();
    for (const Overlap& overlap : overlaps) independent = builder_.CreateAnd(independent, NoOverlap(overlap));
    llvm::BasicBlock* fast = NewBlock("independent");
    llvm::BasicBlock* slow = NewBlock("overlapping");
    llvm::BasicBlock* join = NewBlock("versions.end");
    builder_.CreateCondBr(independent, fast, slow);
    builder_.SetInsertPoint(fast);
    access_group_ = group;
    EmitLoop(loop, begin, end, parallel);
    access_group_ = nullptr;
    builder_.CreateBr(join);
    // Partially overlapping buffers never come from kiln's planner; run them in order.
    builder_.SetInsertPoint(slow);
    EmitLoop(loop, begin, end, LoopId({VectorizeHint(false)}));
    builder_.CreateBr(join);
    builder_.SetInsertPoint(join);
  }

  void EmitAllocate(const kir::StmtNode& s) {
    const kir::Buffer& local = s.buffer;
    const int64_t bytes = local->size * kir::ScalarTypeBytes(local->type);
    if (local->size < 0 || bytes > kMaxLocalBytes) {
      Fail("local buffer '" + local->name + "' of " + std::to_string(bytes) +
           " bytes does not fit the stack (at most " + std::to_string(kMaxLocalBytes) + "); use a scratch argument");
    }
    // Allocas in the entry block are static: one stack slot, however often this runs.
    llvm::IRBuilder<> at_entry(entry_, entry_->begin());
    llvm::AllocaInst* storage = at_entry.CreateAlloca(
        llvm::ArrayType::get(MemoryType(local->type), static_cast<uint64_t>(local->size)), nullptr, local->name);
    storage->setAlignment(ElementAlign(local->type));
    llvm::ConstantInt* size = builder_.getInt64(static_cast<uint64_t>(bytes));
    builder_.CreateLifetimeStart(storage, size);
    // Zero-filled as in the interpreter; the fill disappears when the body overwrites it.
    builder_.CreateMemSet(storage, builder_.getInt8(0), size, ElementAlign(local->type));
    const auto outer = base_.find(local.get());
    llvm::Value* shadowed = outer == base_.end() ? nullptr : outer->second;
    base_[local.get()] = storage;
    EmitStmt(s.body[0]);
    builder_.CreateLifetimeEnd(storage, size);
    if (shadowed) {
      base_[local.get()] = shadowed;
    } else {
      base_.erase(local.get());
    }
  }

  // Routines are reached through the table: no undefined symbols of kiln's in the code.
  // Arguments are checked against the routine's declared signature (runtime/kernel_abi.h).
  void EmitCall(const kir::StmtNode& s) {
    const RoutineSignature* routine = FindRoutine(s.routine);
    if (routine == nullptr) Fail("unknown routine '" + s.routine + "'");
    const std::string kinds = routine->args;
    if (s.args.size() != kinds.size()) {
      Fail(s.routine + " takes " + std::to_string(kinds.size()) + " arguments, given " + std::to_string(s.args.size()));
    }
    std::vector<llvm::Type*> types;
    std::vector<llvm::Value*> args;
    for (size_t a = 0; a < kinds.size(); ++a) {
      const kir::CallArg& arg = s.args[a];
      const std::string what = s.routine + " argument " + std::to_string(a);
      if (kinds[a] == 'p') {
        if (!arg.buffer) Fail(what + " must be a pointer");
        if (arg.buffer->type != ScalarType::kFloat32) Fail(what + " ('" + arg.buffer->name + "') must be f32");
        types.push_back(builder_.getPtrTy());
        args.push_back(Address(arg.buffer, EmitExpr(arg.offset)));
        continue;
      }
      if (arg.buffer) Fail(what + " must be a scalar");
      const kir::Expr& e = arg.scalar;
      if (kinds[a] == 'f') {
        if (!kir::IsFloatType(e.type())) Fail(what + " must be a float");
        types.push_back(builder_.getFloatTy());
        args.push_back(builder_.CreateFPCast(EmitExpr(e), builder_.getFloatTy()));
      } else {
        if (kir::IsFloatType(e.type())) Fail(what + " must be an integer");
        llvm::Type* type = kinds[a] == 'i' ? builder_.getInt32Ty() : builder_.getInt64Ty();
        types.push_back(type);
        args.push_back(builder_.CreateIntCast(EmitExpr(e), type, !IsUnsigned(e.type())));
      }
    }
    auto* type = llvm::FunctionType::get(builder_.getVoidTy(), types, false);
    // The table is { i32 abi_version; ptr routines... }.
    std::vector<llvm::Type*> fields = {builder_.getInt32Ty()};
    fields.insert(fields.end(), std::size(kRoutines), builder_.getPtrTy());
    auto* table_type = llvm::StructType::get(context_, fields);
    llvm::Value* slot = builder_.CreateStructGEP(table_type, api_, static_cast<unsigned>(1 + routine->slot));
    llvm::Value* fn = builder_.CreateAlignedLoad(builder_.getPtrTy(), slot, llvm::Align(alignof(void*)), s.routine);
    builder_.CreateCall(type, fn, args)->setDoesNotThrow();
  }

  llvm::Value* Address(const kir::Buffer& buffer, llvm::Value* index) {
    const auto it = base_.find(buffer.get());
    if (it == base_.end()) Fail("buffer '" + buffer->name + "' is not in scope");
    return builder_.CreateInBoundsGEP(MemoryType(buffer->type), it->second, index);
  }

  // ---- expressions ----

  // Shared subexpressions (a fused chain's operands) are emitted once per statement; a
  // value emitted inside a select's arm is visible only within that arm.
  llvm::Value* EmitExpr(const kir::Expr& e) {
    if (!e.shared()) return EmitExprUncached(e);
    for (auto scope = memo_.rbegin(); scope != memo_.rend(); ++scope) {
      if (const auto it = scope->find(e.get()); it != scope->end()) return it->second;
    }
    llvm::Value* value = EmitExprUncached(e);
    memo_.back()[e.get()] = value;
    return value;
  }

  llvm::Value* EmitExprUncached(const kir::Expr& e) {
    switch (e->kind) {
      case ExprKind::kIntImm:
        if (kir::IsFloatType(e->type)) return FloatConstant(e->type, static_cast<double>(e->int_value));
        if (e->type == ScalarType::kBool) return builder_.getInt1(e->int_value != 0);
        return llvm::ConstantInt::get(RegisterType(e->type), static_cast<uint64_t>(e->int_value), /*isSigned=*/true);
      case ExprKind::kFloatImm:
        if (!kir::IsFloatType(e->type)) Fail("float immediate of type " + std::string(kir::ScalarTypeName(e->type)));
        return FloatConstant(e->type, e->float_value);
      case ExprKind::kVar: {
        const auto it = vars_.find(e->var_id);
        if (it == vars_.end()) Fail("variable '" + e->name + "' is used outside its loop");
        return it->second;
      }
      case ExprKind::kLoad: {
        llvm::Value* address = Address(e->buffer, EmitExpr(e->operands[0]));
        llvm::Value* value =
            Grouped(builder_.CreateAlignedLoad(MemoryType(e->buffer->type), address, ElementAlign(e->buffer->type)),
                    *e->buffer);
        if (e->buffer->type == ScalarType::kBool) value = builder_.CreateICmpNE(value, builder_.getInt8(0));
        if (e->buffer->type == ScalarType::kBFloat16) value = BFloat16ToFloat(value);
        return value;
      }
      case ExprKind::kUnary: return EmitUnary(e);
      case ExprKind::kBinary: return EmitBinary(e);
      case ExprKind::kSelect: return EmitSelect(e);
      case ExprKind::kCast: {
        const kir::Expr& operand = e->operands[0];
        if (IsRawImmediate(operand)) return EmitCast(e->type, ScalarType::kInt64, AsInt64(operand, nullptr));
        return EmitCast(e->type, operand.type(), EmitExpr(operand));
      }
    }
    Fail("unknown expression");
  }

  // Float constants round as the interpreter does: through float for f16 and bf16.
  llvm::Constant* FloatConstant(ScalarType type, double value) {
    if (type == ScalarType::kFloat64) return llvm::ConstantFP::get(builder_.getDoubleTy(), value);
    if (type == ScalarType::kBFloat16) {
      const float rounded = kiln::BFloat16ToFloat(kiln::FloatToBFloat16(static_cast<float>(value)));
      return llvm::ConstantFP::get(builder_.getFloatTy(), rounded);
    }
    llvm::APFloat rounded(static_cast<float>(value));
    if (type == ScalarType::kFloat16) {
      bool lost = false;
      rounded.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven, &lost);
    }
    return llvm::ConstantFP::get(context_, rounded);
  }

  bool HasLoad(const kir::Expr& e) {
    const auto it = has_load_.find(e.get());
    if (it != has_load_.end()) return it->second;
    bool result = e->kind == ExprKind::kLoad;
    for (const auto& operand : e->operands) result = HasLoad(operand) || result;
    has_load_[e.get()] = result;
    return result;
  }

  // Only the chosen arm runs when an arm loads: lowerings guard out-of-range reads
  // (padding) with a select. Other selects evaluate both arms.
  llvm::Value* EmitSelect(const kir::Expr& e) {
    llvm::Value* condition = EmitExpr(e->operands[0]);
    if (!HasLoad(e->operands[1]) && !HasLoad(e->operands[2])) {
      llvm::Value* if_true = EmitExpr(e->operands[1]);
      return builder_.CreateSelect(condition, if_true, EmitExpr(e->operands[2]));
    }
    llvm::BasicBlock* true_block = NewBlock("select.true");
    llvm::BasicBlock* false_block = NewBlock("select.false");
    llvm::BasicBlock* merge = NewBlock("select.end");
    builder_.CreateCondBr(condition, true_block, false_block);
    builder_.SetInsertPoint(true_block);
    memo_.emplace_back();
    llvm::Value* if_true = EmitExpr(e->operands[1]);
    memo_.back().clear();
    llvm::BasicBlock* true_end = builder_.GetInsertBlock();
    builder_.CreateBr(merge);
    builder_.SetInsertPoint(false_block);
    llvm::Value* if_false = EmitExpr(e->operands[2]);
    memo_.pop_back();
    llvm::BasicBlock* false_end = builder_.GetInsertBlock();
    builder_.CreateBr(merge);
    builder_.SetInsertPoint(merge);
    llvm::PHINode* phi = builder_.CreatePHI(if_true->getType(), 2);
    phi->addIncoming(if_true, true_end);
    phi->addIncoming(if_false, false_end);
    return phi;
  }

  llvm::Value* Intrinsic(llvm::Intrinsic::ID id, llvm::Value* a) { return builder_.CreateUnaryIntrinsic(id, a); }

  // A libm function of one argument, declared pure so that it can be hoisted and merged.
  llvm::Value* LibmCall(const char* float_name, const char* double_name, llvm::Value* a) {
    llvm::Type* type = a->getType();
    const char* name = type->isFloatTy() ? float_name : double_name;
    llvm::FunctionCallee callee = module_.getOrInsertFunction(name, llvm::FunctionType::get(type, {type}, false));
    if (auto* declaration = llvm::dyn_cast<llvm::Function>(callee.getCallee())) {
      declaration->setDoesNotThrow();
      declaration->setDoesNotAccessMemory();
      declaration->setWillReturn();
    }
    llvm::CallInst* call = builder_.CreateCall(callee, {a});
    call->setDoesNotThrow();
    call->setDoesNotAccessMemory();
    return call;
  }

  // exp of float lanes as plain arithmetic, the same operations in vector lanes and in
  // scalar code (glibc's vector exp and its scalar expf may differ in the last bit, so an
  // element's value would depend on whether it fell in a vector lane or a loop's
  // remainder, and a fused kernel would not give an unfused one's bits): 2^n e^r with
  // n = round(x log2(e)), r = x - n ln2 in two parts (Cody and Waite), e^r by its Taylor
  // series to degree 7 (|r| <= ln2 / 2: truncation below 6e-9 relative), 2^n as two
  // factors built from exponent bits. About 2 float ulps; +inf above 88.73, 0 below
  // -103.98 (denormal results rounded once), NaN stays NaN.
  llvm::Value* FloatExp(llvm::Value* x) {
    llvm::Type* type = x->getType();
    llvm::Type* int_type = type->getWithNewType(builder_.getInt32Ty());
    const auto c = [&](double v) { return llvm::ConstantFP::get(type, v); };
    const auto i = [&](int64_t v) { return llvm::ConstantInt::get(int_type, static_cast<uint64_t>(v), true); };
    llvm::Value* clamped = builder_.CreateBinaryIntrinsic(
        llvm::Intrinsic::minnum, builder_.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, x, c(-104.0)), c(89.0));
    llvm::Value* n = Intrinsic(llvm::Intrinsic::round, builder_.CreateFMul(clamped, c(1.4426950408889634)));
    llvm::Value* r = builder_.CreateFSub(clamped, builder_.CreateFMul(n, c(0.693145751953125)));
    r = builder_.CreateFSub(r, builder_.CreateFMul(n, c(1.428606765330187045e-06)));
    llvm::Value* p = c(1.0 / 5040.0);
    for (const double k : {1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0}) {
      p = builder_.CreateFAdd(builder_.CreateFMul(p, r), c(k));
    }
    llvm::Value* whole = builder_.CreateFPToSI(n, int_type);  // in [-150, 129]
    llvm::Value* half = builder_.CreateAShr(whole, i(1));
    const auto power_of_two = [&](llvm::Value* e) {
      return builder_.CreateBitCast(builder_.CreateShl(builder_.CreateAdd(e, i(127)), i(23)), type);
    };
    llvm::Value* result =
        builder_.CreateFMul(builder_.CreateFMul(p, power_of_two(half)), power_of_two(builder_.CreateSub(whole, half)));
    return builder_.CreateSelect(builder_.CreateFCmpUNO(x, x), x, result);
  }

  // tanh of float lanes without a library call, so that loops of it vectorize (LLVM maps
  // tanh, unlike exp, to no vector function): an odd Taylor polynomial where |x| < 0.4
  // (its truncation error is below 1e-7 relative there), else 1 - 2 / (exp(2|x|) + 1)
  // with x's sign (at most a few float ulps off; exact at 0, +-inf, and NaN stays NaN).
  llvm::Value* FloatTanh(llvm::Value* x) {
    const auto c = [&](double v) { return llvm::ConstantFP::get(x->getType(), v); };
    llvm::Value* ax = Intrinsic(llvm::Intrinsic::fabs, x);
    llvm::Value* x2 = builder_.CreateFMul(x, x);
    llvm::Value* series = c(-1382.0 / 155925.0);
    for (const double k : {62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0}) {
      series = builder_.CreateFAdd(builder_.CreateFMul(series, x2), c(k));
    }
    llvm::Value* small = builder_.CreateFMul(x, series);
    llvm::Value* e = FloatExp(builder_.CreateFMul(ax, c(2.0)));
    llvm::Value* large = builder_.CreateFSub(c(1.0), builder_.CreateFDiv(c(2.0), builder_.CreateFAdd(e, c(1.0))));
    large = builder_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, large, x);
    return builder_.CreateSelect(builder_.CreateFCmpOLT(ax, c(0.4)), small, large);
  }

  // erf of float lanes as plain arithmetic, so that loops of it vectorize (glibc has no
  // vector erf; a scalar erff call made GELU's fused kernel half the transformer block's
  // time): x P(x^2) / Q(x^2) with P and Q of degree 5, a
  // rational fit of erf(x) / x on [0, 3.92] (relative error below 2e-8 in exact
  // arithmetic, about 5 float ulps once rounded); +-1 beyond 3.92, where erf rounds to
  // +-1 in float. NaN stays NaN.
  llvm::Value* FloatErf(llvm::Value* x) {
    const auto c = [&](double v) { return llvm::ConstantFP::get(x->getType(), v); };
    static constexpr double kP[] = {1.1283791464967456,   0.19034330316213657,    0.05274048956997872,
                                    0.003762967778500368, 0.00028483373152020657, 2.0506965234403067e-06};
    static constexpr double kQ[] = {1.0,
                                    0.502020110001001,
                                    0.11408311989497426,
                                    0.014963868417700121,
                                    0.0011619149131287866,
                                    3.8095492322170546e-05};
    llvm::Value* t = builder_.CreateFMul(x, x);
    const auto horner = [&](const double* k) {
      llvm::Value* value = c(k[5]);
      for (int j = 4; j >= 0; --j) value = builder_.CreateFAdd(builder_.CreateFMul(value, t), c(k[j]));
      return value;
    };
    llvm::Value* inside = builder_.CreateFMul(x, builder_.CreateFDiv(horner(kP), horner(kQ)));
    llvm::Value* saturated = builder_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, c(1.0), x);
    // Unordered: a NaN x takes `inside`, which is NaN.
    llvm::Value* small = builder_.CreateFCmpULE(Intrinsic(llvm::Intrinsic::fabs, x), c(3.92));
    return builder_.CreateSelect(small, inside, saturated);
  }

  // f32 and f64 math; f16 comes here widened to float, bf16 as the float it is.
  llvm::Value* FloatUnary(UnaryOp op, llvm::Value* a) {
    const bool is_float = a->getType()->getScalarType()->isFloatTy();
    switch (op) {
      case UnaryOp::kNeg: return builder_.CreateFNeg(a);
      case UnaryOp::kAbs: return Intrinsic(llvm::Intrinsic::fabs, a);
      case UnaryOp::kExp: return is_float ? FloatExp(a) : Intrinsic(llvm::Intrinsic::exp, a);
      case UnaryOp::kLog: return Intrinsic(llvm::Intrinsic::log, a);
      case UnaryOp::kSqrt: return Intrinsic(llvm::Intrinsic::sqrt, a);
      case UnaryOp::kTanh: return a->getType()->isFloatTy() ? FloatTanh(a) : LibmCall("tanhf", "tanh", a);
      case UnaryOp::kErf: return is_float ? FloatErf(a) : LibmCall("erff", "erf", a);
      case UnaryOp::kFloor: return Intrinsic(llvm::Intrinsic::floor, a);
      case UnaryOp::kCeil: return Intrinsic(llvm::Intrinsic::ceil, a);
      case UnaryOp::kRound: return Intrinsic(llvm::Intrinsic::round, a);
      case UnaryOp::kTrunc: return Intrinsic(llvm::Intrinsic::trunc, a);
      case UnaryOp::kNot: break;
      case UnaryOp::kSin: return Intrinsic(llvm::Intrinsic::sin, a);
      case UnaryOp::kCos: return Intrinsic(llvm::Intrinsic::cos, a);
      case UnaryOp::kTan: return LibmCall("tanf", "tan", a);
      case UnaryOp::kAsin: return LibmCall("asinf", "asin", a);
      case UnaryOp::kAcos: return LibmCall("acosf", "acos", a);
      case UnaryOp::kAtan: return LibmCall("atanf", "atan", a);
      case UnaryOp::kSinh: return LibmCall("sinhf", "sinh", a);
      case UnaryOp::kCosh: return LibmCall("coshf", "cosh", a);
      case UnaryOp::kAsinh: return LibmCall("asinhf", "asinh", a);
      case UnaryOp::kAcosh: return LibmCall("acoshf", "acosh", a);
      case UnaryOp::kAtanh: return LibmCall("atanhf", "atanh", a);
    }
    Fail("unexpected float unary operator");
  }

  llvm::Value* EmitUnary(const kir::Expr& e) {
    const ScalarType operand_type = e->operands[0].type();
    llvm::Value* a = EmitExpr(e->operands[0]);
    if (e->unary == UnaryOp::kNot) {
      if (kir::IsFloatType(operand_type)) return builder_.CreateFCmpOEQ(a, llvm::ConstantFP::getZero(a->getType()));
      return builder_.CreateICmpEQ(a, llvm::ConstantInt::get(a->getType(), 0));
    }
    if (e->type == ScalarType::kFloat16) {
      if (e->unary == UnaryOp::kNeg) return builder_.CreateFNeg(a);  // exact in half
      return builder_.CreateFPTrunc(FloatUnary(e->unary, builder_.CreateFPExt(a, builder_.getFloatTy())),
                                    builder_.getHalfTy());
    }
    if (e->type == ScalarType::kBFloat16) {
      if (e->unary == UnaryOp::kNeg) return builder_.CreateFNeg(a);  // exact
      return RoundToBFloat16(FloatUnary(e->unary, a));
    }
    if (kir::IsFloatType(e->type)) return FloatUnary(e->unary, a);
    // Integers: negation wraps (the negation of a bool is itself: nonzero stays
    // nonzero); abs wraps at the minimum; the rest are the identity.
    switch (e->unary) {
      case UnaryOp::kNeg: return e->type == ScalarType::kBool ? a : builder_.CreateNeg(a);
      case UnaryOp::kAbs:
        if (IsUnsigned(e->type)) return a;
        return builder_.CreateBinaryIntrinsic(llvm::Intrinsic::abs, a, builder_.getFalse());
      default: return a;
    }
  }

  llvm::Value* EmitBinary(const kir::Expr& e) {
    const ScalarType type = e->operands[0].type();
    llvm::Value* a = EmitExpr(e->operands[0]);
    llvm::Value* b = EmitExpr(e->operands[1]);
    if (e->binary == BinaryOp::kAnd || e->binary == BinaryOp::kOr) {
      llvm::Value* x = IsTrue(type, a);
      llvm::Value* y = IsTrue(type, b);
      llvm::Value* truth = e->binary == BinaryOp::kAnd ? builder_.CreateAnd(x, y) : builder_.CreateOr(x, y);
      // kir types && and || like their operands: 0 or 1 of that type.
      if (kir::IsFloatType(e->type)) return builder_.CreateUIToFP(truth, RegisterType(e->type));
      return builder_.CreateZExt(truth, RegisterType(e->type));
    }
    if (kir::IsFloatType(type)) return FloatBinary(e->binary, type, a, b);
    if (type == ScalarType::kBool || IsRawImmediate(e->operands[0]) || IsRawImmediate(e->operands[1])) {
      // The interpreter computes in int64 and then wraps (bools: tests x != 0).
      llvm::Value* wide =
          IntBinary(e->binary, ScalarType::kInt64, AsInt64(e->operands[0], a), AsInt64(e->operands[1], b));
      if (wide->getType()->isIntegerTy(1)) return wide;  // a comparison
      if (type == ScalarType::kBool) return builder_.CreateICmpNE(wide, builder_.getInt64(0));
      return builder_.CreateTrunc(wide, a->getType());
    }
    return IntBinary(e->binary, type, a, b);
  }

  // An integer immediate whose value its type cannot hold (kir::Const does not wrap, and
  // bools may hold any value): the interpreter computes with the value itself.
  static bool IsRawImmediate(const kir::Expr& e) {
    if (e->kind != ExprKind::kIntImm) return false;
    const int64_t v = e->int_value;
    switch (e->type) {
      case ScalarType::kBool: return v != 0 && v != 1;
      case ScalarType::kInt8: return v < INT8_MIN || v > INT8_MAX;
      case ScalarType::kUInt8: return v < 0 || v > UINT8_MAX;
      case ScalarType::kInt16: return v < INT16_MIN || v > INT16_MAX;
      case ScalarType::kUInt16: return v < 0 || v > UINT16_MAX;
      case ScalarType::kInt32: return v < INT32_MIN || v > INT32_MAX;
      case ScalarType::kUInt32: return v < 0 || v > UINT32_MAX;
      default: return false;  // int64 and uint64 (held as its bits) hold any value
    }
  }

  // `e` (emitted as `value`) widened to int64 as the interpreter holds it.
  llvm::Value* AsInt64(const kir::Expr& e, llvm::Value* value) {
    if (IsRawImmediate(e)) return builder_.getInt64(static_cast<uint64_t>(e->int_value));
    return builder_.CreateIntCast(value, builder_.getInt64Ty(), !IsUnsigned(e.type()));
  }

  llvm::Value* IsTrue(ScalarType type, llvm::Value* a) {
    if (kir::IsFloatType(type)) return builder_.CreateFCmpUNE(a, llvm::ConstantFP::getZero(a->getType()));
    return builder_.CreateICmpNE(a, llvm::ConstantInt::get(a->getType(), 0));
  }

  llvm::Value* FloatBinary(BinaryOp op, ScalarType type, llvm::Value* a, llvm::Value* b) {
    switch (op) {
      case BinaryOp::kLT: return builder_.CreateFCmpOLT(a, b);
      case BinaryOp::kLE: return builder_.CreateFCmpOLE(a, b);
      case BinaryOp::kGT: return builder_.CreateFCmpOGT(a, b);
      case BinaryOp::kGE: return builder_.CreateFCmpOGE(a, b);
      case BinaryOp::kEQ: return builder_.CreateFCmpOEQ(a, b);
      case BinaryOp::kNE: return builder_.CreateFCmpUNE(a, b);
      // isnan(a) || a < b ? a : b: a NaN on the left wins, one on the right loses.
      case BinaryOp::kMin:
      case BinaryOp::kMax: {
        llvm::Value* wins = op == BinaryOp::kMin ? builder_.CreateFCmpOLT(a, b) : builder_.CreateFCmpOGT(a, b);
        return builder_.CreateSelect(builder_.CreateOr(builder_.CreateFCmpUNO(a, a), wins), a, b);
      }
      default: break;
    }
    if (type == ScalarType::kFloat16) {
      llvm::Type* f32 = builder_.getFloatTy();
      llvm::Value* wide = FloatArithmetic(op, builder_.CreateFPExt(a, f32), builder_.CreateFPExt(b, f32));
      return builder_.CreateFPTrunc(wide, builder_.getHalfTy());
    }
    if (type == ScalarType::kBFloat16) return RoundToBFloat16(FloatArithmetic(op, a, b));
    return FloatArithmetic(op, a, b);
  }

  llvm::Value* FloatArithmetic(BinaryOp op, llvm::Value* a, llvm::Value* b) {
    switch (op) {
      case BinaryOp::kAdd: return builder_.CreateFAdd(a, b);
      case BinaryOp::kSub: return builder_.CreateFSub(a, b);
      case BinaryOp::kMul: return builder_.CreateFMul(a, b);
      case BinaryOp::kDiv: return builder_.CreateFDiv(a, b);
      case BinaryOp::kMod: return builder_.CreateFRem(a, b);  // fmod
      case BinaryOp::kPow: return builder_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a, b);
      default: break;
    }
    Fail("unexpected float binary operator");
  }

  llvm::Value* IntCompare(BinaryOp op, bool is_unsigned, llvm::Value* a, llvm::Value* b) {
    using P = llvm::CmpInst::Predicate;
    switch (op) {
      case BinaryOp::kLT: return builder_.CreateICmp(is_unsigned ? P::ICMP_ULT : P::ICMP_SLT, a, b);
      case BinaryOp::kLE: return builder_.CreateICmp(is_unsigned ? P::ICMP_ULE : P::ICMP_SLE, a, b);
      case BinaryOp::kGT: return builder_.CreateICmp(is_unsigned ? P::ICMP_UGT : P::ICMP_SGT, a, b);
      case BinaryOp::kGE: return builder_.CreateICmp(is_unsigned ? P::ICMP_UGE : P::ICMP_SGE, a, b);
      case BinaryOp::kEQ: return builder_.CreateICmpEQ(a, b);
      case BinaryOp::kNE: return builder_.CreateICmpNE(a, b);
      default: break;
    }
    Fail("unexpected comparison");
  }

  llvm::Value* IntBinary(BinaryOp op, ScalarType type, llvm::Value* a, llvm::Value* b) {
    const bool is_unsigned = IsUnsigned(type);
    llvm::Type* t = a->getType();
    switch (op) {
      case BinaryOp::kAdd: return builder_.CreateAdd(a, b);
      case BinaryOp::kSub: return builder_.CreateSub(a, b);
      case BinaryOp::kMul: return builder_.CreateMul(a, b);
      case BinaryOp::kMin:
        return builder_.CreateBinaryIntrinsic(is_unsigned ? llvm::Intrinsic::umin : llvm::Intrinsic::smin, a, b);
      case BinaryOp::kMax:
        return builder_.CreateBinaryIntrinsic(is_unsigned ? llvm::Intrinsic::umax : llvm::Intrinsic::smax, a, b);
      case BinaryOp::kDiv:
      case BinaryOp::kMod: {
        // Division by zero gives 0, and MIN / -1 wraps (to MIN, remainder 0), instead of
        // the trap or undefined behaviour of the machine instruction.
        llvm::Value* zero = llvm::ConstantInt::get(t, 0);
        llvm::Value* one = llvm::ConstantInt::get(t, 1);
        llvm::Value* by_zero = builder_.CreateICmpEQ(b, zero);
        if (is_unsigned) {
          llvm::Value* safe = builder_.CreateSelect(by_zero, one, b);
          llvm::Value* r = op == BinaryOp::kDiv ? builder_.CreateUDiv(a, safe) : builder_.CreateURem(a, safe);
          return builder_.CreateSelect(by_zero, zero, r);
        }
        llvm::Value* by_minus_one = builder_.CreateICmpEQ(b, llvm::ConstantInt::getSigned(t, -1));
        llvm::Value* safe = builder_.CreateSelect(builder_.CreateOr(by_zero, by_minus_one), one, b);
        if (op == BinaryOp::kMod) {
          return builder_.CreateSelect(builder_.CreateOr(by_zero, by_minus_one), zero, builder_.CreateSRem(a, safe));
        }
        llvm::Value* quotient =
            builder_.CreateSelect(by_minus_one, builder_.CreateNeg(a), builder_.CreateSDiv(a, safe));
        return builder_.CreateSelect(by_zero, zero, quotient);
      }
      case BinaryOp::kPow: {
        // As the interpreter: pow in double, truncated back.
        llvm::Type* f64 = builder_.getDoubleTy();
        llvm::Value* x = is_unsigned ? builder_.CreateUIToFP(a, f64) : builder_.CreateSIToFP(a, f64);
        llvm::Value* y = is_unsigned ? builder_.CreateUIToFP(b, f64) : builder_.CreateSIToFP(b, f64);
        // libm's scalar pow, never a vector library's (libmvec's is up to 4 ulp off, and
        // large integer powers would round differently from the reference's).
        llvm::FunctionCallee scalar_pow =
            module_.getOrInsertFunction("pow", llvm::FunctionType::get(f64, {f64, f64}, false));
        llvm::CallInst* p = builder_.CreateCall(scalar_pow, {x, y});
        p->addFnAttr(llvm::Attribute::NoBuiltin);
        p->setDoesNotThrow();
        p->setDoesNotAccessMemory();
        return FloatToInteger(type, p);
      }
      default: return IntCompare(op, is_unsigned, a, b);
    }
  }

  // Truncates toward zero, NaN to 0, saturating at the int64 range.
  llvm::Value* FloatToInt64(llvm::Value* a) {
    return builder_.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {builder_.getInt64Ty(), a->getType()}, {a});
  }

  // A float or double to integer type `to` as kir::FloatToInt: saturated to the int64 range
  // and wrapped to the width; uint64 also takes [2^63, 2^64) (saturating above).
  llvm::Value* FloatToInteger(ScalarType to, llvm::Value* a) {
    llvm::Value* as_signed = FloatToInt64(a);
    if (to != ScalarType::kUInt64) return builder_.CreateTrunc(as_signed, RegisterType(to));
    llvm::Value* as_unsigned =
        builder_.CreateIntrinsic(llvm::Intrinsic::fptoui_sat, {builder_.getInt64Ty(), a->getType()}, {a});
    llvm::Value* high = builder_.CreateFCmpOGE(a, llvm::ConstantFP::get(a->getType(), 9223372036854775808.0));
    return builder_.CreateSelect(high, as_unsigned, as_signed);
  }

  llvm::Value* EmitCast(ScalarType to, ScalarType from, llvm::Value* a) {
    if (to == from) return a;
    llvm::Type* f32 = builder_.getFloatTy();
    llvm::Type* f64 = builder_.getDoubleTy();
    if (to == ScalarType::kBool) return IsTrue(from, a);
    if (kir::IsFloatType(to)) {
      // The value as a float (or a double for f64), then rounded to `to` once more: f64
      // to f16 or bf16 rounds through float, as the interpreter does.
      llvm::Value* x = nullptr;
      if (kir::IsFloatType(from)) {
        if (from == ScalarType::kFloat16) a = builder_.CreateFPExt(a, f32);  // exact; bf16 is a float already
        if (to == ScalarType::kFloat64) return builder_.CreateFPCast(a, f64);
        x = builder_.CreateFPCast(a, f32);
      } else {
        // Integers convert through double where float would round twice (64-bit
        // integers then round twice like the interpreter); narrower integers convert to
        // float directly, which rounds identically.
        const bool wide = from == ScalarType::kInt64 || from == ScalarType::kUInt64;
        llvm::Type* via = to == ScalarType::kFloat64 || wide ? f64 : f32;
        x = IsUnsigned(from) ? builder_.CreateUIToFP(a, via) : builder_.CreateSIToFP(a, via);
        if (to == ScalarType::kFloat64) return x;
        x = builder_.CreateFPCast(x, f32);
      }
      if (to == ScalarType::kFloat16) return builder_.CreateFPTrunc(x, builder_.getHalfTy());
      if (to == ScalarType::kBFloat16) return RoundToBFloat16(x);
      return x;
    }
    if (kir::IsFloatType(from)) {
      if (from == ScalarType::kFloat16) a = builder_.CreateFPExt(a, f32);
      return FloatToInteger(to, a);  // saturate to int64, then wrap
    }
    return builder_.CreateIntCast(a, RegisterType(to), !IsUnsigned(from));
  }

  const kir::Kernel& kernel_;
  llvm::LLVMContext& context_;
  llvm::Module& module_;
  llvm::Function* function_;
  llvm::IRBuilder<> builder_;
  llvm::BasicBlock* entry_ = nullptr;
  llvm::Value* api_ = nullptr;
  llvm::MDNode* access_group_ = nullptr;  // set while emitting a loop marked parallel
  // Per restricted argument: its scope list and the list of the others' scopes.
  std::unordered_map<const kir::BufferNode*, std::pair<llvm::MDNode*, llvm::MDNode*>> alias_scopes_;
  std::unordered_map<const kir::BufferNode*, llvm::Value*> base_;
  std::unordered_map<int, llvm::Value*> vars_;
  std::vector<std::unordered_map<const kir::ExprNode*, llvm::Value*>> memo_{1};
  std::unordered_map<const kir::ExprNode*, bool> has_load_;
};

// The kernel's ABI record (runtime/kernel_abi.h): its argument count, parallel extent
// and the bytes of every argument, as an exported constant.
void EmitAbiRecord(const kir::Kernel& kernel, const std::string& symbol, llvm::Module& module) {
  std::vector<uint64_t> record = {kernel.args.size(), static_cast<uint64_t>(kernel.parallel_extent)};
  for (const auto& arg : kernel.args) {
    record.push_back(static_cast<uint64_t>(arg->size) * kir::ScalarTypeBytes(arg->type));
  }
  llvm::LLVMContext& context = module.getContext();
  llvm::Constant* values = llvm::ConstantDataArray::get(context, record);
  // The module owns the global (LLVM's ownership model).
  auto* global = new llvm::GlobalVariable(module, values->getType(), /*isConstant=*/true,
                                          llvm::GlobalValue::ExternalLinkage, values, symbol + kAbiRecordSuffix);
  global->setAlignment(llvm::Align(8));
}

}  // namespace

std::unique_ptr<llvm::Module> BuildModule(const std::vector<kir::Kernel>& kernels, const llvm::TargetMachine& machine,
                                          llvm::LLVMContext& context) {
  auto module = std::make_unique<llvm::Module>("kiln", context);
  module->setTargetTriple(machine.getTargetTriple().str());
  module->setDataLayout(machine.createDataLayout());
  module->setPICLevel(llvm::PICLevel::BigPIC);

  llvm::Type* ptr = llvm::PointerType::getUnqual(context);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  auto* kernel_type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr, i64, i64, ptr}, false);
  std::set<std::string> symbols;
  for (const auto& kernel : kernels) {
    try {
      kir::Verify(kernel);
    } catch (const std::invalid_argument& e) {
      throw Error("kernel '" + kernel.name + "' is not valid kernel IR: " + e.what());
    }
    const std::string symbol = KernelSymbolName(kernel.name);
    if (!symbols.insert(symbol).second) throw Error("two kernels are named '" + kernel.name + "'");
    llvm::Function* function =
        llvm::Function::Create(kernel_type, llvm::GlobalValue::ExternalLinkage, symbol, module.get());
    function->setDoesNotThrow();
    function->addFnAttr("target-cpu", machine.getTargetCPU());
    if (!machine.getTargetFeatureString().empty()) {
      function->addFnAttr("target-features", machine.getTargetFeatureString());
    }
    for (const unsigned arg : {0u, 3u}) {
      function->addParamAttr(arg, llvm::Attribute::NoCapture);
      function->addParamAttr(arg, llvm::Attribute::ReadOnly);
    }
    KernelEmitter(kernel, function).Emit();
    EmitAbiRecord(kernel, symbol, *module);
  }

  std::string problems;
  llvm::raw_string_ostream out(problems);
  if (llvm::verifyModule(*module, &out)) throw Error("the LLVM emitter made invalid IR (a kiln bug): " + problems);
  return module;
}

}  // namespace kiln::llvm_codegen
