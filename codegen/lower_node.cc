#include "codegen/lower_node.h"

#include "codegen/lower/lower_util.h"
#include "runtime/error.h"

namespace kiln {

kir::Kernel LowerNode(const OpDef& op, const Attrs& attrs, const NodeSignature& signature,
                      const std::string& kernel_name, bool is_train, uint64_t seed, const EpilogueSpec* epilogue,
                      ConstantArgs* constants, LowerTarget target) {
  if (!op.has_lowering()) throw Error("operator " + op.name() + " has no lowering to kernel IR");
  kir::KernelBuilder builder(kernel_name);
  LowerContext ctx;
  ctx.builder = &builder;
  ctx.is_train = is_train;
  ctx.seed = seed;
  ctx.target = target;
  ctx.input_shapes = signature.input_shapes;
  ctx.input_types = signature.input_types;
  ctx.output_shapes = signature.output_shapes;
  ctx.output_types = signature.output_types;
  const auto input_names = op.InputNames(attrs);
  const auto output_names = op.OutputNames(attrs);
  const bool computed_input0 = epilogue && epilogue->prologue;
  if (computed_input0 && !op.accepts_prologue())
    throw Error("operator " + op.name() + " does not take fused prologues");
  if (epilogue && epilogue->fn && !op.accepts_epilogue()) {
    throw Error("operator " + op.name() + " does not take fused epilogues");
  }
  for (size_t i = 0; i < signature.input_shapes.size(); ++i) {
    const kir::ScalarType type = ToScalarType(signature.input_types[i]);
    const int64_t size = NumElements(signature.input_shapes[i]);
    if (i == 0 && computed_input0) {
      // Not an argument: a lowering that loads it directly fails kir's verification.
      ctx.inputs.push_back(
          std::make_shared<const kir::BufferNode>(kir::BufferNode{-1, "fused_" + input_names[0], type, size, false}));
      continue;
    }
    ctx.inputs.push_back(builder.AddArg(input_names.at(i), type, size));
  }
  if (epilogue) {
    std::vector<kir::Buffer> buffers;
    for (const auto& input : epilogue->inputs) buffers.push_back(builder.AddArg(input.name, input.type, input.size));
    if (epilogue->fn) {
      ctx.epilogue = [buffers, fn = epilogue->fn](const kir::Expr& value, const LowerContext::EpilogueIndex& index) {
        return fn(buffers, value, index);
      };
    }
    if (computed_input0) {
      ctx.prologue = [buffers, fn = epilogue->prologue](const kir::Expr& index) { return fn(buffers, index); };
    }
  }
  if (constants != nullptr && !signature.constant_inputs.empty()) {
    ctx.constant_inputs = signature.constant_inputs;
    ctx.replace_input = [&ctx, &builder, constants](size_t i, const std::string& suffix, Tensor value) {
      const kir::Buffer& old = ctx.inputs.at(i);
      if (old->id < 0 || ctx.ConstantInput(i) == nullptr) {
        throw Error("input " + std::to_string(i) + " is not a compile-time constant");
      }
      const kir::Buffer buffer =
          builder.ReplaceArg(old->id, old->name + suffix, ToScalarType(value.dtype()), value.size());
      (*constants)[old->id] = {suffix, std::move(value)};
      ctx.inputs[i] = buffer;
      return buffer;
    };
  }
  for (size_t i = 0; i < signature.output_shapes.size(); ++i) {
    ctx.outputs.push_back(builder.AddArg(output_names.at(i), ToScalarType(signature.output_types[i]),
                                         NumElements(signature.output_shapes[i])));
  }
  kir::Stmt body = op.lower()            ? op.lower()(attrs, ctx)
                   : op.scalar_compute() ? lower::LowerElementwise(op.scalar_compute(), attrs, ctx)
                                         : lower::LowerElementwiseMulti(op.scalar_compute_multi(), attrs, ctx);
  try {
    return builder.Finish(std::move(body));
  } catch (const std::exception& e) {
    throw Error("operator " + op.name() + ": invalid kernel IR: " + e.what());
  }
}

}  // namespace kiln
