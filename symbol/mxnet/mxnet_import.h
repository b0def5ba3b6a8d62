// MXNet model files: a symbol JSON (`model-symbol.json`, as Module.save_checkpoint,
// HybridBlock.export and mx.sym.Symbol.save write it) and its parameters (`model-0000.params`,
// MXNet's NDArray list with arg:/aux: prefixes) become a kiln graph. kiln's operator
// names and attributes are MXNet's, so nodes map one to one.
//
// The JSON of every MXNet 1.x: node attributes under "attrs", or the older "attr" and
// "param"; inputs as [node, output, version] or [node, output]; "arg_nodes" and
// "node_row_ptr" are read for checking, "heads" give the outputs. Hidden keys (names
// starting with "__"): a variable's __shape__ and __dtype__ become its declared shape
// and dtype; the others (__init__, __lr_mult__, ...) are training annotations and are
// not kept.
//
// Operators kiln does not have, the `_contrib_*` and fused `_sg_*` subgraph operators
// of quantization and oneDNN included, are reported in one kiln::Error that lists every
// one of them (operator, node), never imported approximately.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "graph/graph.h"
#include "runtime/param_file.h"

namespace kiln {

struct MxnetImportOptions {
  // Shapes of inputs, by name; they override a variable's __shape__.
  std::map<std::string, Shape> input_shapes;
};

// `params_path` may be empty (parameters bound later). Parameters are matched to the
// graph's variables by name without the arg:/aux: prefix; an array no variable takes is
// an error naming it.
Graph ImportMxnet(const std::string& symbol_path, const std::string& params_path = "",
                  const MxnetImportOptions& options = {});
Graph ImportMxnetJson(std::string_view json_text, const ParamList* params, const MxnetImportOptions& options = {},
                      const std::string& source = "<symbol json>");

// True when `text` looks like an MXNet symbol JSON (an object with "nodes" and "heads").
bool LooksLikeMxnetSymbol(std::string_view text);

}  // namespace kiln
