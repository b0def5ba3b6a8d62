"""A Catch2 test linked with kiln's shared test helpers and every operator."""

def kiln_test(name, srcs, deps = [], data = [], size = "small", **kwargs):
    native.cc_test(
        name = name,
        srcs = srcs,
        size = size,
        data = data,
        deps = deps + [
            "//tests:catch_main",
            "//tests:op_test_util",
            "//ops",
            "//graph:op_registry",
            "//runtime:tensor",
        ],
        **kwargs
    )
