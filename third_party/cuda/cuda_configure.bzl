"""Finds the CUDA toolkit at /usr/local/cuda (or $CUDA_PATH) without downloading."""

def _cuda_configure_impl(ctx):
    cuda_path = ctx.os.environ.get("CUDA_PATH", "/usr/local/cuda")
    has_cuda = ctx.path(cuda_path + "/include/cuda.h").exists
    if has_cuda:
        ctx.symlink(cuda_path + "/include", "include")
        build = """
package(default_visibility = ["//visibility:public"])
cc_library(
    name = "cuda",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = [
        "-L{p}/lib64",
        "-Wl,-rpath,{p}/lib64",
        "-lcudart",
        "-lcublas",
        "-lnvrtc",
        "-lcuda",
        "-L{p}/lib64/stubs",
    ],
)
""".format(p = cuda_path)
    else:
        build = """
package(default_visibility = ["//visibility:public"])
cc_library(name = "cuda")
"""
    ctx.file("BUILD", build)
    ctx.file("defs.bzl", "HAS_CUDA = %s\n" % ("True" if has_cuda else "False"))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH"],
    local = True,
)
