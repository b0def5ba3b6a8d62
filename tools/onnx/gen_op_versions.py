#!/opt/kiln-py/bin/python
"""Writes symbol/onnx/onnx_op_versions.inc from the installed onnx package's operator
schemas: every default-domain operator with the opset versions that changed it (its
schemas' since_version), and the newest opset. The importer uses it to know which
version of an operator a model's opset means.

    /opt/kiln-py/bin/python tools/onnx/gen_op_versions.py
"""

import os

import onnx
import onnx.defs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    versions = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            versions.setdefault(schema.name, set()).add(schema.since_version)
    path = os.path.join(ROOT, "symbol", "onnx", "onnx_op_versions.inc")
    with open(path, "w") as f:
        f.write("// Written by tools/onnx/gen_op_versions.py from onnx %s: every default-domain operator\n"
                "// and the opset versions that changed it. Do not edit.\n" % onnx.__version__)
        f.write("inline constexpr int64_t kNewestOnnxOpset = %d;\n" % onnx.defs.onnx_opset_version())
        f.write("inline const std::map<std::string, std::vector<int64_t>, std::less<>> kOnnxOpVersions = {\n")
        for name in sorted(versions):
            f.write('    {"%s", {%s}},\n' % (name, ", ".join(str(v) for v in sorted(versions[name]))))
        f.write("};\n")
    print("wrote", path, len(versions), "operators")


if __name__ == "__main__":
    main()
