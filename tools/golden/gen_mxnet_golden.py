#!/usr/bin/env python3
"""Generates kiln's golden operator cases from real MXNet 1.9.1.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1, numpy < 1.24):

    /opt/mxvenv/bin/python tools/golden/gen_mxnet_golden.py [--out tests/golden/data] [--only OP,OP]

For every case below it builds mx.sym.<op>(...), binds it with seeded random inputs,
runs a forward pass and writes what MXNet did to tests/golden/data/<op>.json: the
attributes as MXNet spells them, the input names in the operator's own order, input and
output shapes, dtypes and values, and MXNet's shape inference from the first input's
shape alone. Error cases record inputs MXNet rejects. tests/golden/golden_test.cc checks
kiln against these files. The output is deterministic: same MXNet, same files.
"""

import argparse
import contextlib
import io
import json
import os
import re
import sys
import warnings
import zlib

# MXNet's own CPU kernels (not oneDNN), one thread, synchronous engine: reproducible values.
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

# The node name given to every operator; MXNet names auto-created inputs "op_<input>".
NODE = "op"

# Default tolerances by output dtype: kiln's reference accumulates in double and rounds
# once, MXNet computes in the tensor's dtype.
TOLERANCES = {
    "float16": (0.0, 0.0),
    "float32": (1e-5, 1e-6),
    "float64": (1e-10, 1e-12),
}
# Products and convolutions sum many float32 terms: rounding grows with the term count.
GEMM_TOL = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)}


# ---------------------------------------------------------------------------------------
# Input value generators: f(rng, shape, dtype) -> numpy array.


def uniform(low=-1.0, high=1.0):
    def gen(rng, shape, dtype):
        if np.issubdtype(np.dtype(dtype), np.integer):
            return rng.randint(int(np.ceil(low)), int(np.floor(high)) + 1, size=shape).astype(dtype)
        return rng.uniform(low, high, size=shape).astype(dtype)

    return gen


def nonzero(low=0.5, high=2.0):
    """Values of either sign with magnitude in [low, high] (divisors)."""

    def gen(rng, shape, dtype):
        mag = rng.uniform(low, high, size=shape)
        sign = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)
        values = mag * sign
        if np.issubdtype(np.dtype(dtype), np.integer):
            values = np.round(values)
        return values.astype(dtype)

    return gen


def integers(low, high):
    """Integers in [low, high] stored in the input's dtype (indices, labels, ties)."""

    def gen(rng, shape, dtype):
        return rng.randint(low, high + 1, size=shape).astype(dtype)

    return gen


def constant(values):
    def gen(rng, shape, dtype):
        return np.asarray(values, dtype=dtype).reshape(shape)

    return gen


# ---------------------------------------------------------------------------------------
# Case declarations.

CASES = {}  # kiln op name (also MXNet's Python function) -> case specs, in declaration order


def case(op, desc, attrs=None, shapes=None, dtype="float32", dtypes=None, values=None, gen=None,
         is_train=False, tol=None, variadic=None, random=None, updates=False, undefined=(), infer_from=None):
    """One forward case.

    shapes: input name -> shape; the others are inferred by MXNet. dtype: every input's
    dtype unless dtypes overrides by name. values: input name -> generator; gen: the
    generator for the others (uniform(-1, 1)). tol: (rtol, atol) or a dtype->tol dict.
    variadic: number of inputs of a variadic operator (named arg0, arg1, ... as MXNet
    lists them). random: how to check a random output (see check_random). updates: also
    record the auxiliary states after the training step (BatchNorm's moving statistics).
    undefined: outputs whose values MXNet leaves undefined (recorded without values).
    infer_from: the inputs whose shapes shape inference is given (the first input's
    alone unless given: a label of a form other than the one inferred).
    """
    CASES.setdefault(op, []).append(dict(
        kind="forward", desc=desc, attrs=attrs or {}, shapes=shapes or {}, dtype=dtype, dtypes=dtypes or {},
        values=values or {}, gen=gen or uniform(), is_train=is_train, tol=tol, variadic=variadic,
        random=random, updates=updates, undefined=undefined, infer_from=infer_from))


def error(op, desc, attrs=None, shapes=None, dtype="float32", variadic=None):
    """A case MXNet rejects: at symbol creation (attributes), in infer_shape, or else when
    it runs the operator. shapes: the inputs given (the others unknown)."""
    CASES.setdefault(op, []).append(dict(
        kind="error", desc=desc, attrs=attrs or {}, shapes=shapes or {}, dtype=dtype, variadic=variadic))


def declare_elementwise():
    same_ops = {
        "elemwise_add": uniform(), "elemwise_sub": uniform(), "elemwise_mul": uniform(),
        "elemwise_div": nonzero(),
    }
    for op, rhs in same_ops.items():
        case(op, "2-d", shapes={"lhs": (2, 3), "rhs": (2, 3)}, values={"rhs": rhs})
        case(op, "size-1 dims", shapes={"lhs": (1, 4, 1), "rhs": (1, 4, 1)}, values={"rhs": rhs})
        case(op, "1-d of one element", shapes={"lhs": (1,), "rhs": (1,)}, values={"rhs": rhs})
        case(op, "float64", shapes={"lhs": (3, 2), "rhs": (3, 2)}, dtype="float64", values={"rhs": rhs})
        case(op, "int32" + (": division truncates toward zero" if op == "elemwise_div" else ""),
             shapes={"lhs": (2, 4), "rhs": (2, 4)}, dtype="int32", gen=uniform(-9, 9), values={"rhs": nonzero(1, 4)})
        error(op, "different shapes", shapes={"lhs": (2, 3), "rhs": (3, 2)})

    bcast = {
        "broadcast_add": {}, "broadcast_sub": {}, "broadcast_mul": {},
        "broadcast_div": {"rhs": nonzero()},
        "broadcast_maximum": {}, "broadcast_minimum": {},
        "broadcast_power": {"lhs": uniform(0.5, 2.0), "rhs": uniform(-2.0, 2.0)},
        "broadcast_equal": "ties", "broadcast_not_equal": "ties", "broadcast_greater": "ties",
        "broadcast_lesser": "ties",
    }
    shape_pairs = [
        ("same shapes", (2, 3), (2, 3)),
        ("rhs (1, 3)", (2, 3), (1, 3)),
        ("lhs (2, 1, 4) rhs (3, 1)", (2, 1, 4), (3, 1)),
        ("lhs (1,) rhs (2, 2)", (1,), (2, 2)),
        ("lhs (4, 1) rhs (1, 5)", (4, 1), (1, 5)),
    ]
    for op, vals in bcast.items():
        ties = vals == "ties"
        values = {} if ties else vals
        gen = integers(0, 2) if ties else uniform()
        for desc, lhs, rhs in shape_pairs:
            case(op, desc, shapes={"lhs": lhs, "rhs": rhs}, values=values, gen=gen)
        case(op, "float64 rhs (2, 1)", shapes={"lhs": (2, 3), "rhs": (2, 1)}, dtype="float64", values=values,
             gen=gen)
        if op != "broadcast_power":
            int_values = {"rhs": nonzero(1, 4)} if op == "broadcast_div" else {}
            case(op, "int32 rhs (1, 4)", shapes={"lhs": (3, 4), "rhs": (1, 4)}, dtype="int32", values=int_values,
                 gen=integers(-3, 3) if not ties else integers(0, 2))
        error(op, "incompatible shapes", shapes={"lhs": (2, 3), "rhs": (4, 3)})

    scalar_ops = {
        "_plus_scalar": [2.0, -0.5], "_minus_scalar": [2.0, -0.5], "_rminus_scalar": [2.0, -0.5],
        "_mul_scalar": [3.0, -0.25], "_div_scalar": [4.0, -0.3], "_rdiv_scalar": [2.0, -0.3],
        "_maximum_scalar": [0.2, -0.5], "_minimum_scalar": [0.2, -0.5],
        "_power_scalar": [2.0, 0.5, 3.0], "_rpower_scalar": [2.0, 0.5],
    }
    for op, scalars in scalar_ops.items():
        data_gen = {"_rdiv_scalar": nonzero(), "_power_scalar": uniform(0.2, 2.0)}.get(op, uniform(-2, 2))
        for s in scalars:
            case(op, "scalar %g" % s, attrs={"scalar": s}, shapes={"data": (2, 3)}, gen=data_gen)
        case(op, "default scalar (1)", shapes={"data": (1, 4)}, gen=data_gen)
        case(op, "float64", attrs={"scalar": scalars[-1]}, shapes={"data": (3, 1, 2)}, dtype="float64",
             gen=data_gen)
        if op in ("_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_maximum_scalar",
                  "_minimum_scalar"):
            case(op, "int32, integer scalar", attrs={"scalar": 3}, shapes={"data": (2, 3)}, dtype="int32",
                 gen=uniform(-5, 5))
        error(op, "scalar not a number", attrs={"scalar": "abc"}, shapes={"data": (2, 3)})

    case("add_n", "one input", variadic=1, shapes={"arg0": (2, 3)})
    case("add_n", "two inputs", variadic=2, shapes={"arg0": (2, 3)})
    case("add_n", "four inputs, size-1 dims", variadic=4, shapes={"arg0": (1, 3, 1)})
    case("add_n", "float64", variadic=3, shapes={"arg0": (2, 2)}, dtype="float64")
    case("add_n", "int32", variadic=3, shapes={"arg0": (2, 2)}, dtype="int32", gen=uniform(-5, 5))
    error("add_n", "different shapes", variadic=2, shapes={"arg0": (2, 3), "arg1": (3, 2)})


NAN, INF = float("nan"), float("inf")
# Signs, zero divisors, NaN and infinities for mod (MXNet: the divisor's sign, x mod 0 = 0).
MOD_LHS = [-7, -7, 7, 7, -6, 0, 5.5, -5.5, 5.5, -5.5, 1, -1, NAN, 1, INF, -1, -6, 3]
MOD_RHS = [3, -3, 3, -3, 3, 3, 2, 2, -2, -2, 0, 0, 1, NAN, 2, INF, -3, -0.0]
MOD_INT_LHS = [-7, -7, 7, 7, -6, 0, 5, -128, -128, 127, -1, 100]
MOD_INT_RHS = [3, -3, 3, -3, 3, 3, 0, -1, 3, -128, 127, 7]
# Comparisons and logic on zeros of both signs, NaN and non-integers.
LOGIC_LHS = [0, 1, -2, 0, NAN, NAN, 0.5, -0.0]
LOGIC_RHS = [0, 0, 3, 5, 0, NAN, -1, 1]


def declare_compare_logic_mod():
    """>=, <=, logical and/or/xor and mod: broadcast, same-shape and scalar forms."""
    compare = ("greater_equal", "lesser_equal", "logical_and", "logical_or", "logical_xor")
    for name in compare + ("mod",):
        mod = name == "mod"
        values = {"lhs": uniform(-4, 4), "rhs": nonzero()} if mod else {}
        gen = uniform() if mod else integers(-1, 1)
        int_gen = integers(-9, 9) if mod else integers(-1, 1)
        specials = {"lhs": constant(MOD_LHS), "rhs": constant(MOD_RHS)} if mod else \
            {"lhs": constant(LOGIC_LHS), "rhs": constant(LOGIC_RHS)}
        special_shape = (3, 6) if mod else (2, 4)
        int_specials = {"lhs": constant(MOD_INT_LHS), "rhs": constant(MOD_INT_RHS)}

        op = "broadcast_" + name
        for desc, lhs, rhs in [("same shapes", (2, 3), (2, 3)), ("rhs (1, 3)", (2, 3), (1, 3)),
                               ("lhs (2, 1, 4) rhs (3, 1)", (2, 1, 4), (3, 1)), ("lhs (1,) rhs (2, 2)", (1,), (2, 2)),
                               ("lhs (4, 1) rhs (1, 5)", (4, 1), (1, 5))]:
            case(op, desc, shapes={"lhs": lhs, "rhs": rhs}, values=values, gen=gen)
        for dtype in ("float32", "float64", "float16"):
            case(op, "signed zeros, nan and inf, " + dtype, shapes={"lhs": special_shape, "rhs": special_shape},
                 dtype=dtype, values=specials)
        case(op, "float64 rhs (2, 1)", shapes={"lhs": (2, 3), "rhs": (2, 1)}, dtype="float64", values=values, gen=gen)
        case(op, "int32 rhs (1, 4)", shapes={"lhs": (3, 4), "rhs": (1, 4)}, dtype="int32", gen=int_gen)
        if mod:
            for dtype in ("int32", "int8", "int64"):
                case(op, "signs and zero divisors, " + dtype, shapes={"lhs": (3, 4), "rhs": (3, 4)}, dtype=dtype,
                     values=int_specials)
            case(op, "uint8", shapes={"lhs": (3, 4), "rhs": (1, 4)}, dtype="uint8", gen=integers(0, 255),
                 values={"rhs": integers(0, 9)})
        error(op, "incompatible shapes", shapes={"lhs": (2, 3), "rhs": (4, 3)})

        op = "_" + name
        case(op, "2-d", shapes={"lhs": (2, 3), "rhs": (2, 3)}, values=values, gen=gen)
        case(op, "size-1 dims", shapes={"lhs": (1, 4, 1), "rhs": (1, 4, 1)}, values=values, gen=gen)
        case(op, "signed zeros, nan and inf", shapes={"lhs": special_shape, "rhs": special_shape}, values=specials)
        case(op, "float64", shapes={"lhs": (3, 2), "rhs": (3, 2)}, dtype="float64", values=values, gen=gen)
        case(op, "int32", shapes={"lhs": (2, 4), "rhs": (2, 4)}, dtype="int32", gen=int_gen)
        if mod:
            case(op, "int32 signs and zero divisors", shapes={"lhs": (3, 4), "rhs": (3, 4)}, dtype="int32",
                 values=int_specials)
        error(op, "different shapes", shapes={"lhs": (2, 3), "rhs": (3, 2)})

    mod_data = constant([-7, 7, -6, 5.5, -5.5, 0, NAN, INF, -0.0, 0.25])
    for op, scalars in (("_mod_scalar", [3.0, -3.0, 2.5, -2.5, 0.0]), ("_rmod_scalar", [3.0, -3.0, 2.5, 0.0])):
        for s in scalars:
            case(op, "scalar %g" % s, attrs={"scalar": s}, shapes={"data": (2, 3)}, gen=uniform(-5, 5))
            case(op, "scalar %g, signs, zeros, nan and inf" % s, attrs={"scalar": s}, shapes={"data": (2, 5)},
                 gen=mod_data)
        case(op, "default scalar (1)", shapes={"data": (1, 4)}, gen=uniform(-3, 3))
        case(op, "float64", attrs={"scalar": -2.5}, shapes={"data": (3, 1, 2)}, dtype="float64", gen=uniform(-5, 5))
        case(op, "float16", attrs={"scalar": 0.75}, shapes={"data": (2, 5)}, dtype="float16", gen=mod_data)
        for s in (3, -3, 0, 2.5):
            case(op, "int32, scalar %g" % s, attrs={"scalar": s}, shapes={"data": (2, 5)}, dtype="int32",
                 gen=constant([-7, 7, -6, 5, 0, -1, 1, 9, -9, 3]))
        error(op, "scalar not a number", attrs={"scalar": "abc"}, shapes={"data": (2, 3)})

    for name in compare:
        op = "_%s_scalar" % name
        for s in (0.0, 1.0, -0.5, NAN):
            case(op, "scalar %g" % s, attrs={"scalar": s}, shapes={"data": (2, 4)}, gen=constant(LOGIC_LHS))
        case(op, "default scalar (1)", shapes={"data": (2, 3)}, gen=integers(-1, 2))
        case(op, "float64", attrs={"scalar": 0.5}, shapes={"data": (3, 2)}, dtype="float64", gen=uniform())
        # MXNet converts the scalar to the data's dtype: float32 0.1 <= 0.1 holds. (kiln's
        # float16 kernels use the scalar in float32: the float16 variants of this case in
        # compiled_ops_test agree with the reference, not with MXNet.)
        case(op, "float32 scalar 0.1 as float32", attrs={"scalar": 0.1}, shapes={"data": (4,)},
             gen=constant([0.1, 0.2, 0.05, 0.0]))
        case(op, "int32, scalar 0.5 truncates to 0", attrs={"scalar": 0.5}, shapes={"data": (2, 3)}, dtype="int32",
             gen=integers(-2, 2))
        error(op, "scalar not a number", attrs={"scalar": "abc"}, shapes={"data": (2, 3)})


def declare_rounding():
    halves = constant([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5, -0.0, NAN, INF, -INF, 2.7, -2.7, 0.49999997,
                       -0.49999997])
    for op in ("floor", "ceil", "round", "rint", "fix", "trunc", "sign", "logical_not"):
        gen = integers(-2, 2) if op == "logical_not" else uniform(-3, 3)
        case(op, "2-d", shapes={"data": (2, 3)}, gen=gen)
        case(op, "size-1 dims", shapes={"data": (1, 4, 1)}, gen=gen)
        case(op, "float64", shapes={"data": (3, 2)}, dtype="float64", gen=uniform(-3, 3))
        for dtype in ("float32", "float64", "float16"):
            case(op, "halves, signed zeros, nan and inf, " + dtype, shapes={"data": (4, 4)}, dtype=dtype, gen=halves)
        for dtype in ("int32", "int8", "int64", "uint8"):
            low = 0 if dtype == "uint8" else -9
            case(op, dtype, shapes={"data": (2, 4)}, dtype=dtype, gen=integers(low, 9))


def declare_unary():
    ranges = {
        "relu": uniform(-2, 2), "sigmoid": uniform(-4, 4), "tanh": uniform(-3, 3), "exp": uniform(-3, 3),
        "log": uniform(0.05, 5), "sqrt": uniform(0.0, 5), "rsqrt": uniform(0.1, 5), "square": uniform(-3, 3),
        "abs": uniform(-3, 3), "negative": uniform(-3, 3), "reciprocal": nonzero(0.2, 4),
        "softsign": uniform(-4, 4), "erf": uniform(-2.5, 2.5),
        "sin": uniform(-4, 4), "cos": uniform(-4, 4), "tan": uniform(-1.4, 1.4), "arcsin": uniform(-0.99, 0.99),
        "arccos": uniform(-0.99, 0.99), "arctan": uniform(-5, 5), "sinh": uniform(-3, 3), "cosh": uniform(-3, 3),
        "arcsinh": uniform(-5, 5), "arccosh": uniform(1.01, 5), "arctanh": uniform(-0.95, 0.95),
    }
    for op, gen in ranges.items():
        case(op, "2-d", shapes={"data": (2, 3)}, gen=gen)
        case(op, "size-1 dims", shapes={"data": (1, 4, 1)}, gen=gen)
        case(op, "float64", shapes={"data": (3, 2)}, dtype="float64", gen=gen)
        if op in ("relu", "abs", "negative", "square"):
            case(op, "int32", shapes={"data": (2, 4)}, dtype="int32", gen=uniform(-9, 9))

    for act in ("relu", "sigmoid", "tanh", "softrelu", "softsign"):
        case("Activation", act, attrs={"act_type": act}, shapes={"data": (2, 3, 4)}, gen=uniform(-4, 4))
        case("Activation", act + " float64 (1, 5)", attrs={"act_type": act}, shapes={"data": (1, 5)},
             dtype="float64", gen=uniform(-4, 4))
    error("Activation", "unknown act_type", attrs={"act_type": "swish"}, shapes={"data": (2, 3)})
    error("Activation", "act_type missing", shapes={"data": (2, 3)})

    leaky = [
        ("leaky default slope", {}),
        ("leaky slope 0.1", {"act_type": "leaky", "slope": 0.1}),
        ("elu", {"act_type": "elu"}),
        ("elu slope 0.5", {"act_type": "elu", "slope": 0.5}),
        ("gelu", {"act_type": "gelu"}),
        ("selu", {"act_type": "selu"}),
    ]
    for desc, attrs in leaky:
        case("LeakyReLU", desc, attrs=attrs, shapes={"data": (2, 3, 4)}, gen=uniform(-3, 3))
    case("LeakyReLU", "leaky float64", attrs={"act_type": "leaky", "slope": 0.3}, shapes={"data": (3, 2)},
         dtype="float64", gen=uniform(-3, 3))
    case("LeakyReLU", "prelu 4-d, gamma (C,)", attrs={"act_type": "prelu"}, shapes={"data": (2, 3, 2, 2)},
         gen=uniform(-3, 3))
    case("LeakyReLU", "prelu 2-d", attrs={"act_type": "prelu"}, shapes={"data": (4, 2)}, gen=uniform(-3, 3))
    # rrelu's second output, the mask, is not written at inference.
    case("LeakyReLU", "rrelu at inference: slope (lower + upper) / 2", attrs={"act_type": "rrelu"},
         shapes={"data": (2, 5)}, gen=uniform(-3, 3), undefined=("mask",))
    case("LeakyReLU", "rrelu bounds 0.1, 0.3 at inference",
         attrs={"act_type": "rrelu", "lower_bound": 0.1, "upper_bound": 0.3}, shapes={"data": (3, 2)},
         gen=uniform(-3, 3), undefined=("mask",))
    error("LeakyReLU", "unknown act_type", attrs={"act_type": "swish"}, shapes={"data": (2, 3)})

    case("clip", "[-0.5, 0.5]", attrs={"a_min": -0.5, "a_max": 0.5}, shapes={"data": (2, 3)}, gen=uniform(-1, 1))
    case("clip", "[0, 1] size-1 dims", attrs={"a_min": 0, "a_max": 1}, shapes={"data": (1, 5, 1)},
         gen=uniform(-2, 2))
    case("clip", "float64", attrs={"a_min": -1.5, "a_max": 0.25}, shapes={"data": (3, 3)}, dtype="float64",
         gen=uniform(-2, 2))
    case("clip", "int32", attrs={"a_min": -2, "a_max": 3}, shapes={"data": (2, 5)}, dtype="int32",
         gen=uniform(-6, 6))
    error("clip", "a_max missing", attrs={"a_min": 0}, shapes={"data": (2, 3)})

    casts = [
        ("float32 to float64", "float32", "float64", uniform(-3, 3)),
        ("float32 to int32 truncates", "float32", "int32", uniform(-9, 9)),
        ("float32 to uint8", "float32", "uint8", uniform(0, 200)),
        ("float32 to int64", "float32", "int64", uniform(-100, 100)),
        ("float32 to float16 rounds", "float32", "float16", uniform(-3, 3)),
        ("int32 to float32", "int32", "float32", uniform(-50, 50)),
        ("float64 to float32", "float64", "float32", uniform(-3, 3)),
        ("float32 to float32", "float32", "float32", uniform(-3, 3)),
        ("float32 to bool", "float32", "bool", constant([0, 0.5, -2, 0, 3, -0.1, 0, 1])),
    ]
    for desc, src, dst, gen in casts:
        case("Cast", desc, attrs={"dtype": dst}, shapes={"data": (2, 4)}, dtype=src, gen=gen)
    error("Cast", "unknown dtype", attrs={"dtype": "float128"}, shapes={"data": (2, 3)})
    error("Cast", "dtype missing", shapes={"data": (2, 3)})

    for op in ("BlockGrad", "identity", "zeros_like", "ones_like"):
        case(op, "2-d", shapes={"data": (2, 3)})
        case(op, "size-1 dims", shapes={"data": (1, 3, 1)})
        case(op, "float64", shapes={"data": (2, 2)}, dtype="float64")
        case(op, "int32", shapes={"data": (3,)}, dtype="int32", gen=uniform(-9, 9))


def declare_reductions():
    axis_cases = [
        ("all axes (default)", {}),
        ("axis 1", {"axis": 1}),
        ("axis (0, 2)", {"axis": (0, 2)}),
        ("axis -1", {"axis": -1}),
        ("axis 1 keepdims", {"axis": 1, "keepdims": True}),
        ("all axes keepdims", {"keepdims": True}),
        ("exclude axis 1", {"axis": 1, "exclude": True}),
        ("exclude axis (0, 2) keepdims", {"axis": (0, 2), "exclude": True, "keepdims": True}),
        ("axis () reduces every axis in MXNet 1.x", {"axis": ()}),
        ("exclude every axis reduces none", {"axis": (0, 1, 2), "exclude": True}),
        ("axis (-1, 0) keepdims", {"axis": (-1, 0), "keepdims": True}),
    ]
    for op in ("sum", "mean", "max", "min", "prod"):
        gen = uniform(0.5, 1.5) if op == "prod" else uniform()
        for desc, attrs in axis_cases:
            case(op, desc, attrs=attrs, shapes={"data": (2, 3, 4)}, gen=gen, tol=GEMM_TOL)
        case(op, "size-1 dim, axis 0", attrs={"axis": 0}, shapes={"data": (1, 4)}, gen=gen)
        case(op, "float64 axis 0", attrs={"axis": 0}, shapes={"data": (3, 2)}, dtype="float64", gen=gen)
        if op in ("sum", "max", "min", "prod"):
            case(op, "int32 axis 1", attrs={"axis": 1}, shapes={"data": (2, 3)}, dtype="int32",
                 gen=uniform(-4, 4))
        error(op, "axis 3 out of range for 3-d", attrs={"axis": 3}, shapes={"data": (2, 3, 4)})

    for op in ("argmax", "argmin"):
        case(op, "axis 1", attrs={"axis": 1}, shapes={"data": (2, 3, 4)})
        case(op, "axis -1", attrs={"axis": -1}, shapes={"data": (3, 5)})
        case(op, "axis 0 keepdims", attrs={"axis": 0, "keepdims": True}, shapes={"data": (4, 3)})
        case(op, "no axis: flat index", shapes={"data": (3, 4)})
        case(op, "1-d gives (1,)", attrs={"axis": 0}, shapes={"data": (5,)})
        case(op, "ties pick the first", attrs={"axis": 1}, shapes={"data": (4, 6)}, gen=integers(0, 2))
        case(op, "float64", attrs={"axis": 1}, shapes={"data": (2, 3)}, dtype="float64")
        case(op, "int32", attrs={"axis": 0}, shapes={"data": (3, 2)}, dtype="int32", gen=uniform(-50, 50))
        error(op, "axis 2 out of range for 2-d", attrs={"axis": 2}, shapes={"data": (2, 3)})


def declare_matrix():
    dots = [
        ("(2, 3) x (3, 4)", {}, (2, 3), (3, 4)),
        ("transpose_a", {"transpose_a": True}, (3, 2), (3, 4)),
        ("transpose_b", {"transpose_b": True}, (2, 3), (4, 3)),
        ("transpose_a and transpose_b", {"transpose_a": True, "transpose_b": True}, (3, 2), (4, 3)),
        ("1-d . 1-d", {}, (5,), (5,)),
        ("1-d x 2-d", {}, (3,), (3, 2)),
        ("3-d x 2-d", {}, (2, 3, 4), (4, 2)),
        ("size-1 dims (1, 3) x (3, 1)", {}, (1, 3), (3, 1)),
        ("2-d x 1-d", {}, (2, 3), (3,)),
        ("3-d x 3-d", {}, (2, 3, 4), (4, 2, 1)),
    ]
    for desc, attrs, lhs, rhs in dots:
        case("dot", desc, attrs=attrs, shapes={"lhs": lhs, "rhs": rhs}, tol=GEMM_TOL)
    case("dot", "float64", shapes={"lhs": (2, 3), "rhs": (3, 2)}, dtype="float64", tol=GEMM_TOL)
    error("dot", "inner dimensions differ", shapes={"lhs": (2, 3), "rhs": (4, 2)})
    error("dot", "transpose_b inner dimensions differ", attrs={"transpose_b": True},
          shapes={"lhs": (2, 3), "rhs": (3, 4)})

    bdots = [
        ("(2, 3, 4) x (2, 4, 5)", {}, (2, 3, 4), (2, 4, 5)),
        ("transpose_a", {"transpose_a": True}, (2, 4, 3), (2, 4, 2)),
        ("transpose_b", {"transpose_b": True}, (3, 2, 4), (3, 5, 4)),
        ("both transposed, batch 1", {"transpose_a": True, "transpose_b": True}, (1, 3, 2), (1, 4, 3)),
    ]
    for desc, attrs, lhs, rhs in bdots:
        case("batch_dot", desc, attrs=attrs, shapes={"lhs": lhs, "rhs": rhs}, tol=GEMM_TOL)
    case("batch_dot", "float64", shapes={"lhs": (2, 2, 3), "rhs": (2, 3, 2)}, dtype="float64", tol=GEMM_TOL)
    error("batch_dot", "batch sizes differ", shapes={"lhs": (2, 3, 4), "rhs": (3, 4, 5)})
    error("batch_dot", "2-d inputs", shapes={"lhs": (3, 4), "rhs": (4, 5)})

    fcs = [
        ("(2, 3) num_hidden 4", {"num_hidden": 4}, (2, 3)),
        ("no_bias", {"num_hidden": 3, "no_bias": True}, (2, 5)),
        ("flatten 4-d", {"num_hidden": 4}, (2, 3, 2, 2)),
        ("flatten False 3-d", {"num_hidden": 4, "flatten": False}, (2, 3, 2)),
        ("batch 1 num_hidden 1", {"num_hidden": 1}, (1, 6)),
        ("flatten False 4-d", {"num_hidden": 3, "flatten": False, "no_bias": True}, (2, 1, 2, 3)),
    ]
    for desc, attrs, data in fcs:
        case("FullyConnected", desc, attrs=attrs, shapes={"data": data}, tol=GEMM_TOL)
    case("FullyConnected", "float64", attrs={"num_hidden": 2}, shapes={"data": (3, 4)}, dtype="float64",
         tol=GEMM_TOL)
    error("FullyConnected", "num_hidden missing", shapes={"data": (2, 3)})
    error("FullyConnected", "weight of the wrong shape", attrs={"num_hidden": 4},
          shapes={"data": (2, 3), "weight": (4, 5)})
    error("FullyConnected", "bias of the wrong shape", attrs={"num_hidden": 4},
          shapes={"data": (2, 3), "bias": (3,)})


def declare_nn():
    convs = [
        ("3x3", {"kernel": (3, 3), "num_filter": 3}, (1, 2, 5, 5)),
        ("stride 2 pad 1", {"kernel": (3, 3), "num_filter": 2, "stride": (2, 2), "pad": (1, 1)}, (1, 2, 6, 6)),
        ("dilate 2", {"kernel": (3, 3), "num_filter": 2, "dilate": (2, 2)}, (1, 1, 7, 7)),
        ("num_group 2", {"kernel": (3, 3), "num_filter": 4, "num_group": 2, "pad": (1, 1)}, (1, 4, 4, 4)),
        ("depthwise", {"kernel": (3, 3), "num_filter": 3, "num_group": 3, "pad": (1, 1)}, (2, 3, 4, 4)),
        ("depthwise multiplier 2", {"kernel": (3, 3), "num_filter": 4, "num_group": 2}, (1, 2, 4, 4)),
        ("1x1 no_bias", {"kernel": (1, 1), "num_filter": 3, "no_bias": True}, (2, 4, 3, 3)),
        ("kernel (2, 3) stride (1, 2) pad (0, 1)",
         {"kernel": (2, 3), "num_filter": 2, "stride": (1, 2), "pad": (0, 1)}, (1, 3, 4, 5)),
        ("1-d (NCW)", {"kernel": (3,), "num_filter": 2, "pad": (1,)}, (2, 2, 6)),
        ("dilate 2 stride 2 pad 2", {"kernel": (3, 3), "num_filter": 2, "dilate": (2, 2), "stride": (2, 2),
                                     "pad": (2, 2)}, (1, 2, 6, 5)),
        ("MXNet runtime attributes (layout, workspace, cudnn_tune, cudnn_off)",
         {"kernel": (3, 3), "num_filter": 2, "layout": "NCHW", "workspace": 512, "cudnn_tune": "off",
          "cudnn_off": True}, (1, 1, 4, 4)),
    ]
    for desc, attrs, data in convs:
        case("Convolution", desc, attrs=attrs, shapes={"data": data}, tol=GEMM_TOL)
    case("Convolution", "float64 stride 2", attrs={"kernel": (2, 2), "num_filter": 2, "stride": (2, 2)},
         shapes={"data": (1, 2, 4, 4)}, dtype="float64", tol=GEMM_TOL)
    error("Convolution", "kernel larger than the input",
          attrs={"kernel": (5, 5), "num_filter": 2}, shapes={"data": (1, 2, 3, 3)})
    error("Convolution", "channels not divisible by num_group",
          attrs={"kernel": (3, 3), "num_filter": 4, "num_group": 2}, shapes={"data": (1, 3, 5, 5)})
    error("Convolution", "num_filter not divisible by num_group",
          attrs={"kernel": (3, 3), "num_filter": 3, "num_group": 2}, shapes={"data": (1, 4, 5, 5)})
    error("Convolution", "kernel missing", attrs={"num_filter": 2}, shapes={"data": (1, 2, 5, 5)})
    error("Convolution", "weight of the wrong shape", attrs={"kernel": (3, 3), "num_filter": 2},
          shapes={"data": (1, 2, 5, 5), "weight": (2, 3, 3, 3)})

    pools = [
        ("max 2x2 stride 2", {"kernel": (2, 2), "stride": (2, 2), "pool_type": "max"}, (1, 2, 4, 4)),
        ("avg 3x3 pad 1 (count_include_pad default)", {"kernel": (3, 3), "pad": (1, 1), "pool_type": "avg"},
         (1, 2, 4, 4)),
        ("avg 3x3 pad 1 count_include_pad False",
         {"kernel": (3, 3), "pad": (1, 1), "pool_type": "avg", "count_include_pad": False}, (1, 2, 4, 4)),
        ("sum 2x2 stride 1", {"kernel": (2, 2), "pool_type": "sum"}, (2, 1, 3, 3)),
        ("global max", {"kernel": (1, 1), "global_pool": True, "pool_type": "max"}, (2, 3, 3, 2)),
        ("global avg without kernel", {"global_pool": True, "pool_type": "avg"}, (1, 2, 3, 3)),
        ("max full convention", {"kernel": (2, 2), "stride": (2, 2), "pooling_convention": "full"}, (1, 1, 5, 5)),
        ("max valid convention", {"kernel": (2, 2), "stride": (2, 2), "pooling_convention": "valid"},
         (1, 1, 5, 5)),
        ("avg full convention pad 1",
         {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pool_type": "avg", "pooling_convention": "full"},
         (1, 1, 6, 6)),
        ("avg full convention pad 1 count_include_pad False",
         {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pool_type": "avg", "pooling_convention": "full",
          "count_include_pad": False}, (1, 1, 6, 6)),
        ("max kernel (1, 3) stride (1, 2) pad (0, 1)",
         {"kernel": (1, 3), "stride": (1, 2), "pad": (0, 1)}, (1, 2, 3, 5)),
        ("lp p_value 2", {"kernel": (2, 2), "pool_type": "lp", "p_value": 2}, (1, 2, 3, 3)),
        ("MXNet runtime attributes (layout, cudnn_off)",
         {"kernel": (2, 2), "pool_type": "avg", "layout": "NCHW", "cudnn_off": True}, (1, 1, 3, 3)),
        ("1-d max (NCW)", {"kernel": (2,), "stride": (2,)}, (1, 2, 6)),
        ("1-d avg pad 1 (NCW)", {"kernel": (3,), "pad": (1,), "pool_type": "avg"}, (2, 1, 5)),
    ]
    for desc, attrs, data in pools:
        case("Pooling", desc, attrs=attrs, shapes={"data": data})
    case("Pooling", "avg float64", attrs={"kernel": (2, 2), "pool_type": "avg"}, shapes={"data": (1, 1, 3, 3)},
         dtype="float64")
    error("Pooling", "kernel larger than the padded input", attrs={"kernel": (5, 5)}, shapes={"data": (1, 1, 3, 3)})
    error("Pooling", "unknown pool_type", attrs={"kernel": (2, 2), "pool_type": "median"},
          shapes={"data": (1, 1, 3, 3)})

    stats = {"moving_mean": uniform(-0.5, 0.5), "moving_var": uniform(0.5, 2.0), "gamma": uniform(0.5, 1.5)}
    bn = [
        ("inference fix_gamma False", {"fix_gamma": False}, (2, 3, 2, 2), False),
        ("inference fix_gamma default (True)", {}, (2, 3, 2, 2), False),
        ("inference eps 0.1, 2-d", {"fix_gamma": False, "eps": 0.1}, (4, 3), False),
        ("inference axis -1", {"fix_gamma": False, "axis": -1}, (2, 2, 3), False),
        ("training fix_gamma False momentum 0.9", {"fix_gamma": False}, (2, 3, 2, 2), True),
        ("training fix_gamma True momentum 0.5 eps 1e-4",
         {"momentum": 0.5, "eps": 1e-4}, (3, 2, 2, 1), True),
        ("training use_global_stats", {"fix_gamma": False, "use_global_stats": True}, (2, 3, 2, 2), True),
        ("training 2-d axis 1", {"fix_gamma": False, "momentum": 0.8}, (5, 3), True),
        ("training axis 3", {"fix_gamma": False, "axis": 3}, (2, 2, 2, 3), True),
        ("inference output_mean_var: moving mean and inverse std",
         {"fix_gamma": False, "output_mean_var": True}, (2, 3, 2), False),
        ("training output_mean_var: batch mean and inverse std",
         {"fix_gamma": False, "output_mean_var": True}, (2, 3, 2), True),
    ]
    for desc, attrs, data, train in bn:
        case("BatchNorm", desc, attrs=attrs, shapes={"data": data}, values=stats, is_train=train, updates=train,
             tol=GEMM_TOL)
    case("BatchNorm", "inference float64", attrs={"fix_gamma": False}, shapes={"data": (2, 2, 2)},
         dtype="float64", values=stats)
    error("BatchNorm", "axis out of range", attrs={"axis": 4}, shapes={"data": (2, 3, 2, 2)})

    case("Dropout", "inference is identity", attrs={"p": 0.5}, shapes={"data": (2, 3)})
    case("Dropout", "inference p 0.2 axes (1,)", attrs={"p": 0.2, "axes": (1,)}, shapes={"data": (2, 3, 2)})
    case("Dropout", "training p 0.5", attrs={"p": 0.5}, shapes={"data": (10, 50)}, is_train=True,
         gen=nonzero(0.5, 2.0), random={"kind": "dropout", "p": 0.5})
    case("Dropout", "training p 0.25 float64", attrs={"p": 0.25}, shapes={"data": (20, 20)}, dtype="float64",
         is_train=True, gen=nonzero(0.5, 2.0), random={"kind": "dropout", "p": 0.25})
    case("Dropout", "mode always at inference drops", attrs={"p": 0.5, "mode": "always"},
         shapes={"data": (10, 50)}, gen=nonzero(0.5, 2.0), random={"kind": "dropout", "p": 0.5})
    error("Dropout", "unknown mode", attrs={"mode": "sometimes"}, shapes={"data": (2, 3)})

    for op in ("softmax", "log_softmax"):
        case(op, "default axis -1", shapes={"data": (2, 5)}, gen=uniform(-3, 3))
        case(op, "axis 0", attrs={"axis": 0}, shapes={"data": (3, 4)}, gen=uniform(-3, 3))
        case(op, "axis 1 of 3-d", attrs={"axis": 1}, shapes={"data": (2, 3, 4)}, gen=uniform(-3, 3))
        case(op, "temperature 2", attrs={"temperature": 2.0}, shapes={"data": (2, 4)}, gen=uniform(-3, 3))
        case(op, "size-1 axis", shapes={"data": (3, 1)}, gen=uniform(-3, 3))
        case(op, "float64 temperature 0.5", attrs={"temperature": 0.5}, shapes={"data": (2, 3)},
             dtype="float64", gen=uniform(-3, 3))
        case(op, "large logits", shapes={"data": (2, 4)}, gen=uniform(-1000, 1000))
        error(op, "axis out of range", attrs={"axis": 2}, shapes={"data": (2, 3)})
    case("softmax", "use_length", attrs={"use_length": True}, shapes={"data": (2, 4)},
         dtypes={"length": "int32"}, values={"length": constant([2, 3])}, gen=uniform(-3, 3))
    case("softmax", "use_length axis 1 of 3-d", attrs={"use_length": True, "axis": 1}, shapes={"data": (2, 3, 2)},
         dtypes={"length": "int32"}, values={"length": integers(1, 3)}, gen=uniform(-3, 3))

    labels = {"label": integers(0, 4)}
    case("SoftmaxOutput", "(2, 5)", shapes={"data": (2, 5)}, values=labels, gen=uniform(-3, 3))
    case("SoftmaxOutput", "grad_scale, ignore_label, normalization do not change the forward",
         attrs={"grad_scale": 2.0, "ignore_label": 1, "use_ignore": True, "normalization": "valid"},
         shapes={"data": (3, 5)}, values=labels, gen=uniform(-3, 3))
    case("SoftmaxOutput", "multi_output (2, 3, 4)", attrs={"multi_output": True}, shapes={"data": (2, 3, 4)},
         values={"label": integers(0, 2)}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "preserve_shape (2, 3, 4)", attrs={"preserve_shape": True},
         shapes={"data": (2, 3, 4)}, values={"label": integers(0, 3)}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "4-d flattens to (N, rest)", shapes={"data": (2, 2, 2, 2)},
         values={"label": integers(0, 7)}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "float64", shapes={"data": (2, 3)}, dtype="float64", values={"label": integers(0, 2)})
    error("SoftmaxOutput", "label of the wrong shape", shapes={"data": (2, 5), "label": (3,)})
    # The gradient's normalizations (declared after the others, whose seeds stay).
    # multi_output: null divides by the spatial size, batch by it times N, valid by the
    # count of labels other than ignore_label (use_ignore or not).
    for norm in ("null", "batch", "valid"):
        case("SoftmaxOutput", "multi_output normalization %s, grad_scale 2" % norm,
             attrs={"multi_output": True, "normalization": norm, "grad_scale": 2.0}, shapes={"data": (2, 3, 4)},
             values={"label": integers(0, 2)}, gen=uniform(-3, 3))
        case("SoftmaxOutput", "multi_output use_ignore normalization %s" % norm,
             attrs={"multi_output": True, "normalization": norm, "use_ignore": True, "ignore_label": 1},
             shapes={"data": (2, 3, 4)}, values={"label": constant([[0, 1, 2, 1], [1, 2, 0, 0]])}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "multi_output valid counts ignore_label without use_ignore",
         attrs={"multi_output": True, "normalization": "valid", "ignore_label": 2}, shapes={"data": (2, 3, 4)},
         values={"label": constant([[0, 2, 2, 1], [1, 2, 0, 0]])}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "multi_output 4-d (N, C, H, W)", attrs={"multi_output": True},
         shapes={"data": (2, 3, 2, 2)}, values={"label": integers(0, 2)}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "multi_output 4-d, label (N, H, W), normalization batch",
         attrs={"multi_output": True, "normalization": "batch"}, shapes={"data": (2, 3, 2, 2), "label": (2, 2, 2)},
         values={"label": integers(0, 2)}, gen=uniform(-3, 3), infer_from=("data", "label"))
    case("SoftmaxOutput", "multi_output 4-d, label (N, 1, H, W), use_ignore valid",
         attrs={"multi_output": True, "normalization": "valid", "use_ignore": True, "ignore_label": 0},
         shapes={"data": (2, 3, 2, 2), "label": (2, 1, 2, 2)}, values={"label": integers(0, 2)}, gen=uniform(-3, 3),
         infer_from=("data", "label"))
    # Without multi_output, 4-d data is (N, C*H*W) rows reading the first N labels; batch
    # and valid count all of the (N, C, H) labels.
    case("SoftmaxOutput", "4-d normalization batch", attrs={"normalization": "batch"}, shapes={"data": (2, 2, 2, 2)},
         values={"label": integers(0, 7)}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "4-d use_ignore normalization valid",
         attrs={"normalization": "valid", "use_ignore": True, "ignore_label": 3}, shapes={"data": (2, 2, 2, 2)},
         values={"label": constant([[[3, 5], [3, 0]], [[1, 3], [6, 2]]])}, gen=uniform(-3, 3))
    case("SoftmaxOutput", "preserve_shape normalization batch, grad_scale 0.5",
         attrs={"preserve_shape": True, "normalization": "batch", "grad_scale": 0.5}, shapes={"data": (2, 3, 4)},
         values={"label": integers(0, 3)}, gen=uniform(-3, 3))
    # A label of data's shape holds probabilities: no normalization.
    case("SoftmaxOutput", "probability label, normalization batch ignored",
         attrs={"normalization": "batch", "grad_scale": 2.0}, shapes={"data": (3, 4), "label": (3, 4)},
         values={"label": uniform(0, 1)}, gen=uniform(-3, 3), infer_from=("data", "label"))

    for op in ("LinearRegressionOutput", "LogisticRegressionOutput", "MAERegressionOutput"):
        case(op, "(2, 3)", shapes={"data": (2, 3)}, gen=uniform(-3, 3))
        case(op, "grad_scale (4, 1)", attrs={"grad_scale": 0.5}, shapes={"data": (4, 1)}, gen=uniform(-3, 3))
        case(op, "float64", shapes={"data": (3,)}, dtype="float64", gen=uniform(-3, 3))
        error(op, "label of the wrong shape", shapes={"data": (2, 3), "label": (3, 2)})

    case("softmax_cross_entropy", "(3, 4)", shapes={"data": (3, 4), "label": (3,)}, values={"label": integers(0, 3)},
         gen=uniform(-3, 3))
    case("softmax_cross_entropy", "batch 1", shapes={"data": (1, 5), "label": (1,)}, values={"label": integers(0, 4)},
         gen=uniform(-3, 3))
    case("softmax_cross_entropy", "float64", shapes={"data": (2, 3), "label": (2,)}, dtype="float64",
         values={"label": integers(0, 2)}, gen=uniform(-3, 3))
    error("softmax_cross_entropy", "label of the wrong length", shapes={"data": (3, 4), "label": (2,)})


def declare_index():
    case("Embedding", "(2, 3) indices, 5 x 4", attrs={"input_dim": 5, "output_dim": 4},
         shapes={"data": (2, 3)}, values={"data": integers(0, 4)})
    case("Embedding", "1-d indices", attrs={"input_dim": 3, "output_dim": 2}, shapes={"data": (4,)},
         values={"data": integers(0, 2)})
    case("Embedding", "int32 indices", attrs={"input_dim": 6, "output_dim": 3}, shapes={"data": (2, 2)},
         dtypes={"data": "int32"}, values={"data": integers(0, 5)})
    case("Embedding", "float64 weight (dtype attribute)", attrs={"input_dim": 4, "output_dim": 2,
                                                                  "dtype": "float64"},
         shapes={"data": (3,)}, dtype="float64", values={"data": integers(0, 3)})
    case("Embedding", "out-of-range indices are clipped", attrs={"input_dim": 5, "output_dim": 2},
         shapes={"data": (4,)}, values={"data": constant([-1, 5, 2, 7])})
    error("Embedding", "input_dim missing", attrs={"output_dim": 4}, shapes={"data": (2, 3)})
    error("Embedding", "weight of the wrong shape", attrs={"input_dim": 5, "output_dim": 4},
          shapes={"data": (2, 3), "weight": (4, 4)})

    case("one_hot", "depth 4", attrs={"depth": 4}, shapes={"indices": (3,)}, values={"indices": integers(0, 3)})
    case("one_hot", "2-d on 5 off -1", attrs={"depth": 3, "on_value": 5.0, "off_value": -1.0},
         shapes={"indices": (2, 2)}, values={"indices": integers(0, 2)})
    case("one_hot", "dtype int32", attrs={"depth": 5, "dtype": "int32"}, shapes={"indices": (2, 3)},
         values={"indices": integers(0, 4)})
    case("one_hot", "out-of-range indices give all off_value", attrs={"depth": 3},
         shapes={"indices": (4,)}, values={"indices": constant([0, -1, 3, 2])})
    error("one_hot", "depth missing", shapes={"indices": (3,)})

    case("pick", "axis -1 (default)", shapes={"data": (3, 4)}, values={"index": integers(0, 3)})
    case("pick", "axis 0 keepdims", attrs={"axis": 0, "keepdims": True}, shapes={"data": (3, 4)},
         values={"index": integers(0, 2)})
    case("pick", "mode wrap", attrs={"axis": 1, "mode": "wrap"}, shapes={"data": (2, 3)},
         values={"index": constant([-1, 4])})
    case("pick", "mode clip", attrs={"axis": 1}, shapes={"data": (2, 3)}, values={"index": constant([-1, 4])})

    # take's indices arrive as float32 unless dtypes says otherwise; MXNet truncates them.
    takes = [
        ("axis 0 (default), 2-d indices", {}, (3, 4), (2, 3), integers(0, 2)),
        ("axis 1 of 3-d", {"axis": 1}, (2, 5, 3), (4,), integers(0, 4)),
        ("axis -1", {"axis": -1}, (2, 3, 4), (2, 2), integers(0, 3)),
        ("axis 2 of 4-d (NCHW gather)", {"axis": 2}, (2, 3, 4, 5), (2, 3), integers(0, 3)),
        ("size-1 dims", {"axis": 1}, (1, 3, 1), (1, 1), integers(0, 2)),
        ("1-d a", {}, (5,), (3,), integers(0, 4)),
        ("clip: negative and out-of-range indices", {}, (5, 2), (6,), constant([-3, 7, 4, 0, -1, 5])),
        ("clip along axis 1", {"axis": 1, "mode": "clip"}, (2, 4), (2, 2), constant([-2, 9, 3, 1])),
        ("wrap: negative and out-of-range indices", {"mode": "wrap"}, (5, 2), (6,),
         constant([-1, -6, 7, 12, 3, -11])),
        ("wrap along axis -1", {"axis": -1, "mode": "wrap"}, (2, 3), (2, 3), constant([-4, 5, 3, -3, 8, -7])),
        ("float indices truncate toward zero", {}, (4, 3), (5,), constant([2.7, -0.5, 1.9, -1.5, 9.5])),
        ("wrap with float indices", {"mode": "wrap"}, (4, 3), (5,), constant([2.7, -0.5, 5.9, -1.5, -6.2])),
    ]
    for desc, attrs, a, idx, gen in takes:
        case("take", desc, attrs=attrs, shapes={"a": a, "indices": idx}, values={"indices": gen})
    case("take", "int32 indices", attrs={"axis": 1}, shapes={"a": (3, 4), "indices": (3,)},
         dtypes={"indices": "int32"}, values={"indices": constant([3, -1, 6])})
    case("take", "int64 indices wrap", attrs={"mode": "wrap"}, shapes={"a": (3, 2), "indices": (4,)},
         dtypes={"indices": "int64"}, values={"indices": constant([-4, 5, 2, 9])})
    case("take", "float64 a", attrs={"axis": 0}, shapes={"a": (3, 2), "indices": (2, 2)}, dtype="float64",
         values={"indices": integers(0, 2)})
    case("take", "int32 a and indices", attrs={"axis": 1}, shapes={"a": (2, 3), "indices": (4,)}, dtype="int32",
         gen=uniform(-9, 9), values={"indices": integers(-1, 3)})
    case("take", "float16 a, uint8 indices", shapes={"a": (4, 2), "indices": (3,)}, dtype="float16",
         dtypes={"indices": "uint8"}, values={"indices": constant([3, 0, 200])})
    error("take", "axis 2 out of range for 2-d", attrs={"axis": 2}, shapes={"a": (2, 3), "indices": (2,)})
    error("take", "axis -3 out of range for 2-d", attrs={"axis": -3}, shapes={"a": (2, 3), "indices": (2,)})
    error("take", "unknown mode", attrs={"mode": "nearest"}, shapes={"a": (2, 3), "indices": (2,)})

    # gather_nd's indices (M, Y...) must lie in [-n, n) per axis (MXNet raises otherwise);
    # negative ones count from the end, float ones truncate after that (-0.5 reads n - 1).
    case("gather_nd", "M 2 of 2-d data: elements", shapes={"data": (3, 4), "indices": (2, 5)},
         values={"indices": constant([0, 2, -1, 1, -3, 3, -4, 0, 2, -1])})
    case("gather_nd", "M 1: rows, 2-d Y", shapes={"data": (4, 3), "indices": (1, 2, 2)},
         values={"indices": integers(-4, 3)})
    case("gather_nd", "M 2 of 3-d data: rows of the last axis", shapes={"data": (2, 3, 4), "indices": (2, 3)},
         values={"indices": constant([1, 0, -1, 2, -3, 1])})
    case("gather_nd", "M equal to the rank: scalars", shapes={"data": (2, 2, 3), "indices": (3, 4)},
         values={"indices": integers(-2, 1)})
    case("gather_nd", "int32 indices", shapes={"data": (3, 2), "indices": (1, 4)}, dtypes={"indices": "int32"},
         values={"indices": constant([2, -1, 0, -3])})
    case("gather_nd", "int32 data, int64 indices", shapes={"data": (2, 3), "indices": (2, 2)}, dtype="int32",
         dtypes={"indices": "int64"}, gen=uniform(-9, 9), values={"indices": constant([1, -2, 2, 0])})
    case("gather_nd", "float64 data", shapes={"data": (2, 2, 2), "indices": (1, 3)}, dtype="float64",
         values={"indices": constant([1, 0, -1])})
    case("gather_nd", "float16 data, uint8 indices", shapes={"data": (4, 2), "indices": (1, 3)}, dtype="float16",
         dtypes={"indices": "uint8"}, values={"indices": constant([3, 0, 2])})
    case("gather_nd", "float indices: negatives move by n, then truncate", shapes={"data": (3, 4), "indices": (2, 2)},
         values={"indices": constant([-0.5, 1.7, -2.5, 0.2])})
    error("gather_nd", "1-d indices", shapes={"data": (3, 4), "indices": (2,)})
    error("gather_nd", "M beyond data's rank", shapes={"data": (3, 4), "indices": (3, 2)})


def declare_shape():
    reshapes = [
        ("(3, 2) from (2, 3)", {"shape": (3, 2)}, (2, 3)),
        ("0 copies, -1 infers", {"shape": (0, -1)}, (2, 3, 4)),
        ("-2 copies the rest", {"shape": (-2,)}, (2, 3, 4)),
        ("-3 merges two", {"shape": (-3, 4)}, (2, 3, 4)),
        ("-4 splits", {"shape": (-4, 1, 2, -2)}, (2, 3, 4)),
        ("-4 with -1", {"shape": (0, -4, -1, 2, 0)}, (2, 6, 3)),
        ("reverse", {"shape": (-1, 0), "reverse": True}, (5, 2, 4)),
        ("to 1-d", {"shape": (-1,)}, (1, 3, 1)),
    ]
    for desc, attrs, data in reshapes:
        case("Reshape", desc, attrs=attrs, shapes={"data": data})
    case("Reshape", "int32", attrs={"shape": (2, -1)}, shapes={"data": (4,)}, dtype="int32", gen=uniform(-9, 9))
    error("Reshape", "element count differs", attrs={"shape": (4, 2)}, shapes={"data": (2, 3)})
    error("Reshape", "two -1", attrs={"shape": (-1, -1)}, shapes={"data": (2, 3)})

    case("Flatten", "3-d", shapes={"data": (2, 3, 4)})
    case("Flatten", "1-d becomes (N, 1)", shapes={"data": (3,)})
    case("Flatten", "size-1 dims", shapes={"data": (1, 1, 2, 2)})
    case("Flatten", "float64", shapes={"data": (2, 2, 1)}, dtype="float64")

    case("transpose", "default reverses", shapes={"data": (2, 3, 4)})
    case("transpose", "axes (0, 2, 1)", attrs={"axes": (0, 2, 1)}, shapes={"data": (2, 3, 4)})
    case("transpose", "2-d axes (1, 0)", attrs={"axes": (1, 0)}, shapes={"data": (3, 2)})
    case("transpose", "4-d axes (0, 2, 3, 1)", attrs={"axes": (0, 2, 3, 1)}, shapes={"data": (1, 2, 2, 3)})
    case("transpose", "int32", shapes={"data": (2, 3)}, dtype="int32", gen=uniform(-9, 9))
    error("transpose", "axes of the wrong length", attrs={"axes": (1, 0)}, shapes={"data": (2, 3, 4)})

    case("expand_dims", "axis 0", attrs={"axis": 0}, shapes={"data": (2, 3)})
    case("expand_dims", "axis 1", attrs={"axis": 1}, shapes={"data": (2, 3)})
    case("expand_dims", "axis 2 (at the end)", attrs={"axis": 2}, shapes={"data": (2, 3)})
    case("expand_dims", "axis -1", attrs={"axis": -1}, shapes={"data": (2, 3)})
    case("expand_dims", "axis -3", attrs={"axis": -3}, shapes={"data": (2, 3)})
    error("expand_dims", "axis 4 out of range for 2-d", attrs={"axis": 4}, shapes={"data": (2, 3)})
    error("expand_dims", "axis missing", shapes={"data": (2, 3)})

    case("squeeze", "all size-1 axes", shapes={"data": (1, 3, 1, 2)})
    case("squeeze", "axis 2", attrs={"axis": 2}, shapes={"data": (1, 3, 1, 2)})
    case("squeeze", "axis (0, 2)", attrs={"axis": (0, 2)}, shapes={"data": (1, 3, 1, 2)})
    case("squeeze", "axis -2", attrs={"axis": -2}, shapes={"data": (3, 1, 2)})
    case("squeeze", "all ones keeps (1,)", shapes={"data": (1, 1)})
    error("squeeze", "axis of size 3", attrs={"axis": 1}, shapes={"data": (1, 3, 1, 2)})

    case("Concat", "dim 1 (default)", variadic=2, shapes={"arg0": (2, 3), "arg1": (2, 2)})
    case("Concat", "dim 0, three inputs", attrs={"dim": 0}, variadic=3,
         shapes={"arg0": (1, 3), "arg1": (2, 3), "arg2": (1, 3)})
    case("Concat", "dim -1", attrs={"dim": -1}, variadic=2, shapes={"arg0": (2, 1, 2), "arg1": (2, 1, 3)})
    case("Concat", "one input", variadic=1, shapes={"arg0": (2, 3)})
    case("Concat", "int32", attrs={"dim": 0}, variadic=2, shapes={"arg0": (1, 2), "arg1": (2, 2)}, dtype="int32",
         gen=uniform(-9, 9))
    error("Concat", "other dims differ", variadic=2, shapes={"arg0": (2, 3), "arg1": (3, 3)})
    error("Concat", "dim out of range", attrs={"dim": 2}, variadic=2, shapes={"arg0": (2, 3), "arg1": (2, 3)})

    case("split", "2 outputs axis 1 (default)", attrs={"num_outputs": 2}, shapes={"data": (2, 4)})
    case("split", "3 outputs axis 0", attrs={"num_outputs": 3, "axis": 0}, shapes={"data": (3, 2)})
    case("split", "squeeze_axis", attrs={"num_outputs": 3, "axis": 1, "squeeze_axis": True},
         shapes={"data": (2, 3, 2)})
    case("split", "axis -1", attrs={"num_outputs": 2, "axis": -1}, shapes={"data": (2, 2, 4)})
    case("split", "one output", attrs={"num_outputs": 1}, shapes={"data": (2, 3)})
    error("split", "not divisible", attrs={"num_outputs": 2}, shapes={"data": (2, 3)})
    error("split", "num_outputs missing", shapes={"data": (2, 4)})

    slices = [
        ("begin (0, 1) end (2, 3)", {"begin": (0, 1), "end": (2, 3)}, (3, 4)),
        ("None and negatives", {"begin": (None, -2), "end": (None, None)}, (3, 4)),
        ("fewer axes than data", {"begin": (1,), "end": (3,)}, (4, 2, 2)),
        ("step 2", {"begin": (0, 0), "end": (3, 4), "step": (2, 2)}, (3, 4)),
        ("negative step reverses", {"begin": (None, None), "end": (None, None), "step": (1, -1)}, (2, 3)),
        ("negative step with bounds", {"begin": (2,), "end": (0,), "step": (-1,)}, (4, 2)),
    ]
    for desc, attrs, data in slices:
        case("slice", desc, attrs=attrs, shapes={"data": data})
    case("slice", "int32", attrs={"begin": (1,), "end": (2,)}, shapes={"data": (3, 2)}, dtype="int32",
         gen=uniform(-9, 9))
    error("slice", "begin and end of different lengths", attrs={"begin": (0, 0), "end": (1,)},
          shapes={"data": (2, 3)})
    error("slice", "more axes than data", attrs={"begin": (0, 0, 0), "end": (1, 1, 1)}, shapes={"data": (2, 3)})
    error("slice", "step 0", attrs={"begin": (0,), "end": (2,), "step": (0,)}, shapes={"data": (2, 3)})

    slice_axes = [
        ("axis 1 [0, 2)", {"axis": 1, "begin": 0, "end": 2}, (2, 3)),
        ("end None", {"axis": 0, "begin": 1, "end": None}, (3, 2)),
        ("negative begin and end", {"axis": 1, "begin": -3, "end": -1}, (2, 4)),
        ("axis -1", {"axis": -1, "begin": 1, "end": 3}, (2, 2, 4)),
    ]
    for desc, attrs, data in slice_axes:
        case("slice_axis", desc, attrs=attrs, shapes={"data": data})
    error("slice_axis", "axis out of range", attrs={"axis": 2, "begin": 0, "end": 1}, shapes={"data": (2, 3)})
    error("slice_axis", "end beyond the axis", attrs={"axis": 1, "begin": 0, "end": 5}, shapes={"data": (2, 3)})

    case("tile", "reps (2,)", attrs={"reps": (2,)}, shapes={"data": (2, 3)})
    case("tile", "reps (2, 1, 3) longer than data", attrs={"reps": (2, 1, 3)}, shapes={"data": (2, 2)})
    case("tile", "reps (1, 1)", attrs={"reps": (1, 1)}, shapes={"data": (2, 3)})
    case("tile", "reps (3, 2) on 1-d", attrs={"reps": (3, 2)}, shapes={"data": (2,)})
    case("tile", "int32", attrs={"reps": (2, 2)}, shapes={"data": (1, 2)}, dtype="int32", gen=uniform(-9, 9))
    error("tile", "reps missing", shapes={"data": (2, 3)})

    case("repeat", "no axis flattens", attrs={"repeats": 2}, shapes={"data": (2, 3)})
    case("repeat", "axis 0", attrs={"repeats": 3, "axis": 0}, shapes={"data": (2, 2)})
    case("repeat", "axis -1", attrs={"repeats": 2, "axis": -1}, shapes={"data": (2, 1, 3)})
    case("repeat", "repeats 1", attrs={"repeats": 1, "axis": 1}, shapes={"data": (2, 3)})
    error("repeat", "axis out of range", attrs={"repeats": 2, "axis": 2}, shapes={"data": (2, 3)})
    error("repeat", "repeats missing", shapes={"data": (2, 3)})

    case("broadcast_to", "(1, 3) to (2, 3)", attrs={"shape": (2, 3)}, shapes={"data": (1, 3)})
    case("broadcast_to", "(2, 1, 1) to (2, 3, 4)", attrs={"shape": (2, 3, 4)}, shapes={"data": (2, 1, 1)})
    case("broadcast_to", "0 keeps the dimension", attrs={"shape": (0, 4)}, shapes={"data": (3, 1)})
    case("broadcast_to", "same shape", attrs={"shape": (2, 2)}, shapes={"data": (2, 2)})
    error("broadcast_to", "dimension not 1", attrs={"shape": (4, 3)}, shapes={"data": (2, 3)})
    error("broadcast_to", "rank differs", attrs={"shape": (2, 2, 3)}, shapes={"data": (2, 3)})

    case("stack", "axis 0 (default)", variadic=2, shapes={"arg0": (2, 3), "arg1": (2, 3)})
    case("stack", "axis 1 three inputs", attrs={"axis": 1}, variadic=3,
         shapes={"arg0": (2, 2), "arg1": (2, 2), "arg2": (2, 2)})
    case("stack", "axis -1", attrs={"axis": -1}, variadic=2, shapes={"arg0": (3,), "arg1": (3,)})
    case("stack", "one input", variadic=1, shapes={"arg0": (2, 1)})
    error("stack", "axis out of range", attrs={"axis": 3}, variadic=2, shapes={"arg0": (2, 3)})

    pads = [
        ("constant 4-d", {"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 2, 2, 1)}, (1, 2, 3, 4)),
        ("constant_value 2.5", {"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 1, 1, 1), "constant_value": 2.5},
         (2, 3, 3, 3)),
        ("edge 4-d", {"mode": "edge", "pad_width": (0, 0, 0, 0, 2, 1, 0, 3)}, (2, 2, 3, 4)),
        ("reflect 4-d", {"mode": "reflect", "pad_width": (0, 0, 0, 0, 3, 2, 4, 1)}, (1, 2, 4, 5)),
        ("reflect on size-2 axes", {"mode": "reflect", "pad_width": (0, 0, 0, 0, 1, 1, 1, 0)}, (1, 1, 2, 2)),
        ("edge from size-1 axes", {"mode": "edge", "pad_width": (0, 0, 0, 0, 2, 1, 1, 3)}, (2, 1, 1, 1)),
        ("zero widths copy", {"mode": "constant", "pad_width": (0, 0, 0, 0, 0, 0, 0, 0)}, (1, 2, 2, 3)),
        ("constant 5-d", {"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 0, 0, 2, 1, 1), "constant_value": -1},
         (1, 2, 2, 3, 4)),
        ("edge 5-d", {"mode": "edge", "pad_width": (0, 0, 0, 0, 1, 2, 2, 1, 0, 3)}, (1, 2, 2, 3, 2)),
        ("reflect 5-d", {"mode": "reflect", "pad_width": (0, 0, 0, 0, 2, 1, 1, 3, 4, 2)}, (1, 1, 3, 4, 5)),
        # Negative widths crop (MXNet's kernels index from the padded origin).
        ("constant, negative widths crop",
         {"mode": "constant", "pad_width": (0, 0, 0, 0, -1, 2, 1, -2), "constant_value": 9}, (1, 1, 4, 5)),
        ("edge, negative widths crop", {"mode": "edge", "pad_width": (0, 0, 0, 0, 2, -1, -2, 1)}, (1, 2, 4, 5)),
        ("reflect, negative widths crop", {"mode": "reflect", "pad_width": (0, 0, 0, 0, -1, 2, 2, -3)},
         (1, 1, 4, 5)),
        ("crop an axis to size 0", {"mode": "constant", "pad_width": (0, 0, 0, 0, -2, -1, 1, 1)}, (1, 1, 3, 2)),
    ]
    for desc, attrs, data in pads:
        case("Pad", desc, attrs=attrs, shapes={"data": data})
    case("Pad", "float64 edge", attrs={"mode": "edge", "pad_width": (0, 0, 0, 0, 1, 1, 2, 0)},
         shapes={"data": (1, 2, 2, 3)}, dtype="float64")
    case("Pad", "float16 constant 2.7 rounds", attrs={"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 0, 0, 1),
                                                      "constant_value": 2.7},
         shapes={"data": (1, 1, 2, 2)}, dtype="float16")
    error("Pad", "3-d input", attrs={"mode": "constant", "pad_width": (0, 0, 1, 1, 1, 1)}, shapes={"data": (2, 3, 4)})
    error("Pad", "6-d input", attrs={"mode": "constant", "pad_width": (0,) * 12},
          shapes={"data": (1, 1, 1, 2, 2, 2)})
    error("Pad", "padding on N", attrs={"mode": "constant", "pad_width": (1, 0, 0, 0, 1, 1, 1, 1)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "padding on C", attrs={"mode": "edge", "pad_width": (0, 0, 0, 2, 1, 1, 1, 1)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "pad_width too short for 4-d", attrs={"mode": "edge", "pad_width": (0, 0, 0, 0, 1, 1)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "pad_width of 5-d for 4-d data", attrs={"mode": "edge", "pad_width": (0, 0, 0, 0, 1, 1, 1, 1, 0, 0)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "pad_width of 4-d for 5-d data", attrs={"mode": "constant", "pad_width": (0, 0, 0, 0, 1, 1, 1, 1)},
          shapes={"data": (1, 2, 3, 4, 5)})
    error("Pad", "reflect width equal to the axis", attrs={"mode": "reflect", "pad_width": (0, 0, 0, 0, 3, 1, 1, 1)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "reflect width beyond the axis", attrs={"mode": "reflect", "pad_width": (0, 0, 0, 0, 1, 1, 1, 5)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "reflect on a size-1 axis", attrs={"mode": "reflect", "pad_width": (0, 0, 0, 0, 1, 0, 0, 0)},
          shapes={"data": (1, 2, 1, 4)})
    error("Pad", "crop below size 0", attrs={"mode": "constant", "pad_width": (0, 0, 0, 0, -3, -3, 0, 0)},
          shapes={"data": (1, 1, 4, 5)})
    error("Pad", "unknown mode", attrs={"mode": "wrap", "pad_width": (0, 0, 0, 0, 1, 1, 1, 1)},
          shapes={"data": (1, 2, 3, 4)})
    error("Pad", "mode missing", attrs={"pad_width": (0, 0, 0, 0, 1, 1, 1, 1)}, shapes={"data": (1, 2, 3, 4)})
    error("Pad", "pad_width missing", attrs={"mode": "constant"}, shapes={"data": (1, 2, 3, 4)})

    cond = {"condition": integers(0, 1)}
    case("where", "same shapes", shapes={"condition": (2, 3), "x": (2, 3), "y": (2, 3)}, values=cond)
    case("where", "1-d condition picks rows", shapes={"condition": (3,), "x": (3, 2), "y": (3, 2)}, values=cond)
    case("where", "float64", shapes={"condition": (2, 2), "x": (2, 2), "y": (2, 2)}, dtype="float64",
         values=cond)
    case("where", "int32", shapes={"condition": (2, 3), "x": (2, 3), "y": (2, 3)}, dtype="int32", values=cond,
         gen=uniform(-9, 9))
    case("where", "int32 condition, float32 values", shapes={"condition": (2, 3), "x": (2, 3), "y": (2, 3)},
         dtypes={"condition": "int32"}, values=cond)
    error("where", "x and y shapes differ", shapes={"condition": (2, 3), "x": (2, 3), "y": (3, 2)})
    error("where", "condition shape fits neither", shapes={"condition": (2,), "x": (3, 2), "y": (3, 2)})


def declare_creation():
    for op in ("zeros", "ones"):
        case(op, "float32 (2, 3)", attrs={"shape": (2, 3)})
        case(op, "int32 (4,)", attrs={"shape": (4,), "dtype": "int32"})
        case(op, "float64 (1, 2, 1)", attrs={"shape": (1, 2, 1), "dtype": "float64"})
    case("full", "2.5 (2, 3)", attrs={"shape": (2, 3), "val": 2.5})
    case("full", "int32 -3", attrs={"shape": (3,), "val": -3, "dtype": "int32"})
    case("full", "float64", attrs={"shape": (2, 2), "val": 0.1, "dtype": "float64"})

    aranges = [
        ("0..5", {"start": 0, "stop": 5}),
        ("1..10 step 2", {"start": 1, "stop": 10, "step": 2}),
        ("stop None: [0, start)", {"start": 4}),
        ("repeat 2", {"start": 0, "stop": 3, "repeat": 2}),
        ("step 0.5", {"start": 0.5, "stop": 3, "step": 0.5}),
        ("negative step", {"start": 5, "stop": 1, "step": -1.5}),
        ("int32", {"start": 2, "stop": 8, "step": 3, "dtype": "int32"}),
        ("float64", {"start": -1, "stop": 1, "step": 0.25, "dtype": "float64"}),
    ]
    for desc, attrs in aranges:
        case("arange", desc, attrs=attrs)
    error("arange", "step 0", attrs={"start": 0, "stop": 5, "step": 0})

    case("random_uniform", "[0, 1) (50, 40)", attrs={"shape": (50, 40)}, random={"kind": "uniform", "low": 0.0,
                                                                                  "high": 1.0})
    case("random_uniform", "[-2, 3) float64", attrs={"low": -2, "high": 3, "shape": (40, 50), "dtype": "float64"},
         random={"kind": "uniform", "low": -2.0, "high": 3.0})
    error("random_uniform", "low > high", attrs={"low": 2, "high": 1, "shape": (2, 2)})
    case("random_normal", "N(0, 1) (50, 40)", attrs={"shape": (50, 40)}, random={"kind": "normal", "loc": 0.0,
                                                                                 "scale": 1.0})
    case("random_normal", "N(2, 0.5) float64", attrs={"loc": 2, "scale": 0.5, "shape": (40, 50),
                                                      "dtype": "float64"},
         random={"kind": "normal", "loc": 2.0, "scale": 0.5})
    error("random_normal", "negative scale", attrs={"scale": -1, "shape": (2, 2)})


def declare_sort():
    """topk and numpy's cumsum (_np_cumsum, which mx.sym.cumsum writes).

    topk's cases keep to where MXNet's order is defined: MXNet sorts with std::sort or
    std::partial_sort and a plain > or <, so ties come out in the input's order only
    when the whole axis is insertion-sorted (n <= 16 with 8k > n) or k = 1, and a NaN
    stays where that sort leaves it (leading, descending; trailing, ascending). kiln
    breaks every tie by index and counts NaN as the largest (numpy's and ONNX's order).
    cumsum's cases use axes >= 0: MXNet 1.9.1 accepts a negative axis in shape
    inference but its forward pass fails on it (kiln follows numpy there).
    """
    topks = [
        ("default: axis -1, k 1, indices", {}, (3, 5), None),
        ("k 3 both", {"k": 3, "ret_typ": "both"}, (2, 6), None),
        ("value, axis 0, k 2", {"axis": 0, "k": 2, "ret_typ": "value"}, (4, 3), None),
        ("mask, k 2", {"k": 2, "ret_typ": "mask"}, (3, 4), None),
        ("ascending both", {"k": 2, "ret_typ": "both", "is_ascend": True}, (2, 5), None),
        ("axis 1 of 3-d", {"axis": 1, "k": 2, "ret_typ": "both"}, (2, 4, 3), None),
        ("axis -3 of 3-d", {"axis": -3, "k": 1, "ret_typ": "both"}, (3, 2, 2), None),
        ("axis None: the flattened input", {"axis": None, "k": 4, "ret_typ": "both"}, (2, 3), None),
        ("axis None mask", {"axis": None, "k": 3, "ret_typ": "mask"}, (3, 4), None),
        ("k 0 selects all", {"k": 0, "ret_typ": "both"}, (2, 5), None),
        ("k -1 selects all, ascending", {"k": -1, "is_ascend": True}, (3, 4), None),
        ("k = n", {"k": 4, "ret_typ": "both"}, (2, 4), None),
        ("ties keep the input's order (n 6, k 6)", {"k": 6, "ret_typ": "both"}, (3, 6), integers(0, 2)),
        ("ties ascending (n 8, k 2)", {"k": 2, "ret_typ": "both", "is_ascend": True}, (3, 8), integers(0, 2)),
        ("ties, k 1 of 40", {"k": 1, "ret_typ": "both"}, (3, 40), integers(0, 1)),
        ("ties in the mask", {"k": 3, "ret_typ": "mask"}, (2, 6), integers(0, 1)),
        ("leading NaN, descending", {"k": 4, "ret_typ": "both"}, (2, 4),
         constant([NAN, 3, 1, 2, NAN, NAN, 0, -INF])),
        ("trailing NaN, ascending", {"k": 4, "ret_typ": "both", "is_ascend": True}, (2, 4),
         constant([3, 1, 2, NAN, INF, -1, NAN, NAN])),
    ]
    for desc, attrs, shape, gen in topks:
        case("topk", desc, attrs=attrs, shapes={"data": shape}, gen=gen)
    for dtype in ("int32", "int64", "float64", "float16", "uint8"):
        case("topk", "indices as " + dtype, attrs={"k": 3, "ret_typ": "both", "dtype": dtype},
             shapes={"data": (2, 5)})
    case("topk", "indices beyond float16's integers round", attrs={"k": 3, "dtype": "float16"},
         shapes={"data": (2100,)}, gen=constant(np.arange(2100)))
    case("topk", "uint8 indices wrap", attrs={"k": 2, "dtype": "uint8", "is_ascend": True},
         shapes={"data": (300,)}, gen=constant(-np.arange(300)))
    for dtype, gen in (("float64", uniform()), ("float16", uniform()), ("int32", integers(-50, 50)),
                       ("int64", integers(-50, 50)), ("int8", integers(-100, 100)), ("uint8", integers(0, 250))):
        case("topk", dtype + " data", attrs={"k": 2, "ret_typ": "both"}, shapes={"data": (3, 7)}, dtype=dtype,
             gen=gen)
        case("topk", dtype + " mask", attrs={"k": 2, "ret_typ": "mask", "axis": 0}, shapes={"data": (3, 4)},
             dtype=dtype, gen=gen)
    error("topk", "k beyond the axis", attrs={"k": 4}, shapes={"data": (2, 3)})
    error("topk", "k beyond the flattened input", attrs={"k": 7, "axis": None}, shapes={"data": (2, 3)})
    error("topk", "axis 2 of 2-d", attrs={"axis": 2}, shapes={"data": (2, 3)})
    error("topk", "axis -3 of 2-d", attrs={"axis": -3}, shapes={"data": (2, 3)})
    error("topk", "unknown ret_typ", attrs={"ret_typ": "values"}, shapes={"data": (2, 3)})
    error("topk", "int8 indices", attrs={"dtype": "int8"}, shapes={"data": (2, 3)})

    cumsums = [
        ("axis None: the flattened input", {}, (2, 3), "float32", uniform()),
        ("axis 0", {"axis": 0}, (3, 4), "float32", uniform()),
        ("axis 1", {"axis": 1}, (3, 4), "float32", uniform()),
        ("axis 1 of 3-d", {"axis": 1}, (2, 5, 3), "float32", uniform()),
        ("axis 2 of 3-d", {"axis": 2}, (2, 3, 4), "float32", uniform()),
        ("float64", {"axis": 0}, (4, 3), "float64", uniform()),
        ("float16 rounds every sum", {"axis": 1}, (2, 10), "float16", uniform(0, 1)),
        ("float16: 0.1 ten times", {}, (10,), "float16", constant([0.1] * 10)),
        ("float32 accumulates in float32", {}, (5,), "float32", constant([1e8, 1, 1, 1, 1])),
        ("NaN and inf propagate, a leading -0 stays", {"axis": 1}, (2, 4), "float32",
         constant([-0.0, 1, NAN, 2, INF, -INF, 1, 2])),
        ("int32", {"axis": 1}, (3, 4), "int32", integers(-50, 50)),
        ("int32 wraps", {}, (3,), "int32", constant([2147483647, 1, 5])),
        ("int64", {"axis": 0}, (3, 2), "int64", integers(-1000, 1000)),
        ("int8 wraps", {}, (4,), "int8", constant([100, 100, 100, -128])),
        ("uint8 wraps", {"axis": 0}, (3, 2), "uint8", integers(100, 250)),
        ("bool sums in int64", {"axis": 1}, (2, 5), "bool", integers(0, 1)),
        ("dtype float64 from float32", {"axis": 1, "dtype": "float64"}, (2, 3), "float32", uniform()),
        ("dtype int32 from float32: elements truncate", {"dtype": "int32"}, (6,), "float32",
         constant([1.7, -1.7, 2.5, -0.5, 0.9, -3.2])),
        ("dtype float16 from int32", {"dtype": "float16"}, (3,), "int32", constant([2049, 1, 1])),
        ("dtype int8 from int32 wraps", {"axis": 0, "dtype": "int8"}, (3, 2), "int32",
         constant([100, 300, 100, -300, 100, 5])),
        ("dtype int64 from bool", {"dtype": "int64"}, (2, 3), "bool", integers(0, 1)),
        ("dtype float32 from int64", {"axis": 1, "dtype": "float32"}, (2, 3), "int64", integers(-9, 9)),
    ]
    for desc, attrs, shape, dtype, gen in cumsums:
        case("cumsum", desc, attrs=attrs, shapes={"a": shape}, dtype=dtype, gen=gen)
    error("cumsum", "axis 2 of 2-d", attrs={"axis": 2}, shapes={"a": (2, 3)})
    error("cumsum", "axis -3 of 2-d", attrs={"axis": -3}, shapes={"a": (2, 3)})
    error("cumsum", "dtype uint8", attrs={"dtype": "uint8"}, shapes={"a": (2, 3)})
    error("cumsum", "dtype bool", attrs={"dtype": "bool"}, shapes={"a": (2, 3)})


# ---------------------------------------------------------------------------------------
# Running MXNet.


def mx_function(op):
    for namespace in (mx.sym, mx.sym._internal):
        fn = getattr(namespace, op, None)
        if fn is not None:
            return fn
    raise KeyError("MXNet has no symbol function " + op)


def build_symbol(op, spec):
    fn = mx_function(op)
    if spec["variadic"] is not None:
        inputs = [mx.sym.var("arg%d" % i) for i in range(spec["variadic"])]
        return fn(*inputs, name=NODE, **spec["attrs"])
    return fn(name=NODE, **spec["attrs"])


def short_name(full):
    return full[len(NODE) + 1:] if full.startswith(NODE + "_") else full


def op_node(sym):
    nodes = json.loads(sym.tojson())["nodes"]
    return nodes[-1]


def known_shape(shape):
    """MXNet 1.x writes an unknown shape as () and an unknown dimension as 0."""
    if shape is None or len(shape) == 0 or any(d == 0 for d in shape):
        return None
    return [int(d) for d in shape]


def error_line(exc):
    """The first line of MXNet's message that says what went wrong, without the trace
    and without the time stamp (so that regenerating gives the same files)."""
    lines = [re.sub(r"\[\d\d:\d\d:\d\d\] ", "", line.strip()) for line in str(exc).splitlines()]
    for line in lines:
        if "Error" in line or "Check failed" in line or "Invalid" in line or "Cannot" in line:
            return line[:300]
    return lines[0][:300]


def check_random(kind_spec, out, inp=None):
    """The statistical checks golden_test.cc makes; applied to MXNet's own sample too."""
    kind = kind_spec["kind"]
    flat = out.astype(np.float64).ravel()
    if kind == "uniform":
        assert flat.min() >= kind_spec["low"] and flat.max() < kind_spec["high"], kind_spec
        width = kind_spec["high"] - kind_spec["low"]
        assert abs(flat.mean() - (kind_spec["low"] + kind_spec["high"]) / 2) < 0.05 * width
    elif kind == "normal":
        assert abs(flat.mean() - kind_spec["loc"]) < 0.15 * kind_spec["scale"]
        assert abs(flat.std() - kind_spec["scale"]) < 0.1 * kind_spec["scale"]
    elif kind == "dropout":
        p = kind_spec["p"]
        x = inp.astype(np.float64).ravel()
        kept = flat != 0
        assert np.allclose(flat[kept], x[kept] / (1 - p), rtol=1e-5)
        assert abs((1 - kept.mean()) - p) < 0.1
    else:
        raise ValueError(kind)


def tolerance(spec, dtype):
    if dtype not in TOLERANCES:  # integers and bool: exact
        return 0.0, 0.0
    tol = spec["tol"]
    if isinstance(tol, dict):
        tol = tol.get(dtype)
    return tol if tol is not None else TOLERANCES[dtype]


def run_forward(op, index, spec):
    rng = np.random.RandomState(zlib.crc32(("%s/%d" % (op, index)).encode()))
    sym = build_symbol(op, spec)
    args, aux = sym.list_arguments(), sym.list_auxiliary_states()
    names = args + aux
    full = {short_name(n): n for n in names}
    given = {full[k]: v for k, v in spec["shapes"].items()}
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**given)
    shapes = dict(zip(args, arg_shapes))
    shapes.update(zip(aux, aux_shapes))
    dtypes = {n: spec["dtypes"].get(short_name(n), spec["dtype"]) for n in names}

    exe = sym.simple_bind(mx.cpu(), grad_req="write" if spec["updates"] else "null",
                          type_dict={n: dtypes[n] for n in names}, **{n: shapes[n] for n in args})
    inputs = []
    for n in names:
        gen = spec["values"].get(short_name(n), spec["gen"])
        value = np.asarray(gen(rng, shapes[n], dtypes[n]), dtype=dtypes[n])
        target = exe.arg_dict[n] if n in exe.arg_dict else exe.aux_dict[n]
        target[:] = value
        inputs.append(dict(name=short_name(n), shape=list(shapes[n]), dtype=dtypes[n], data=value))

    exe.forward(is_train=spec["is_train"])
    outputs = [o.asnumpy() for o in exe.outputs]
    if spec["updates"]:
        # MXNet 1.x updates BatchNorm's moving statistics in the backward pass of a
        # training step; kiln's reference updates them in the training forward.
        exe.backward([mx.nd.ones(o.shape, dtype=o.dtype) for o in exe.outputs])
    mx.nd.waitall()

    record = dict(desc=spec["desc"], attrs=op_node(sym).get("attrs", {}), is_train=spec["is_train"])
    out_names = [short_name(n) for n in sym.list_outputs()]
    record["inputs"] = inputs
    record["outputs"] = []
    for name, value in zip(out_names, outputs):
        item = dict(name=name, shape=list(value.shape), dtype=str(value.dtype))
        if name in spec["undefined"]:
            item["undefined"] = True
        elif spec["random"] is None:
            item["data"] = value
        record["outputs"].append(item)
    if spec["random"] is not None:
        data_in = inputs[0]["data"] if inputs else None
        check_random(spec["random"], outputs[0], data_in)
        record["random"] = spec["random"]
    if spec["updates"]:
        record["updated_inputs"] = [dict(name=short_name(n), shape=list(exe.aux_dict[n].shape),
                                         dtype=np.dtype(exe.aux_dict[n].dtype).name, data=exe.aux_dict[n].asnumpy())
                                    for n in aux]
    out_dtypes = sorted({o["dtype"] for o in record["outputs"]})
    rtol, atol = max(tolerance(spec, d) for d in out_dtypes)
    record["rtol"], record["atol"] = rtol, atol
    grads = run_gradients(op, index, spec, sym, inputs, outputs, set(short_name(n) for n in aux))
    if grads is not None:
        record["head_grads"], record["input_grads"] = grads

    # Shape inference from the first input's shape alone (MXNet infers weights from data).
    # Where MXNet cannot infer from that alone and raises, the error is recorded instead
    # and the test does not compare.
    infer_given = {names[0]: shapes[names[0]]} if names else {}
    if spec["infer_from"] is not None:
        infer_given = {full[k]: shapes[full[k]] for k in spec["infer_from"]}
    record["infer_shape"] = dict(given={short_name(k): list(v) for k, v in infer_given.items()})
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            arg_p, out_p, aux_p = sym.infer_shape_partial(**infer_given)
        # MXNet's partial inference sometimes guesses from the known inputs alone (Concat
        # with one input known reports that input's shape as the output): a shape that
        # contradicts the full shapes of this case is recorded as unknown, with a note.
        ignored = []

        def checked(partial, full, what):
            shape = known_shape(partial)
            if shape is not None and shape != [int(d) for d in full]:
                ignored.append("%s: MXNet inferred %s, the case's shape is %s" % (what, tuple(shape), tuple(full)))
                return None
            return shape

        record["infer_shape"]["inputs"] = [
            checked(p, shapes[n], "input '%s'" % short_name(n)) for p, n in zip(list(arg_p) + list(aux_p), names)]
        record["infer_shape"]["outputs"] = [
            checked(p, o.shape, "output '%s'" % name) for p, o, name in zip(out_p, outputs, out_names)]
        if ignored:
            record["infer_shape"]["ignored"] = ignored
    except mx.base.MXNetError as exc:
        record["infer_shape"]["mxnet_error"] = error_line(exc)
    return record


FLOAT_DTYPES = ("float32", "float64")
# Operators whose MXNet backward cannot be run on the recorded cases: gather_nd's backward
# (scatter-add) corrupts the heap on the cases' indices, Pad's backward crashes (MXNet aborts).
NO_GRADIENT_OPS = {"gather_nd", "Pad"}


def run_gradients(op, index, spec, sym, inputs, outputs, aux_names):
    """MXNet's gradients of an inference forward case, through mx.autograd: float inputs
    get attach_grad, the operator runs imperatively under record(), backward takes seeded
    random head gradients (one per output). Returns (head_grads, input_grads), an input
    MXNet gives no gradient (integer inputs, auxiliary states) as None; None for cases
    MXNet cannot differentiate (random ops, training-mode cases, non-float outputs,
    operators without a gradient)."""
    if op in NO_GRADIENT_OPS or spec["random"] is not None or spec["is_train"] or spec["undefined"] or spec["updates"]:
        return None
    if not outputs or any(str(o.dtype) not in FLOAT_DTYPES for o in outputs):
        return None
    wrt = [item["dtype"] in FLOAT_DTYPES and item["name"] not in aux_names for item in inputs]
    if not any(wrt):
        return None
    rng = np.random.RandomState(zlib.crc32(("%s/%d/grad" % (op, index)).encode()))
    heads = [rng.uniform(-1.0, 1.0, size=o.shape).astype(o.dtype) for o in outputs]
    fn = None
    for namespace in (mx.nd, mx.nd._internal):
        fn = getattr(namespace, op, None)
        if fn is not None:
            break
    arrays = [mx.nd.array(item["data"], dtype=item["dtype"]) for item in inputs]
    for array, differentiate in zip(arrays, wrt):
        if differentiate:
            array.attach_grad()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mx.autograd.record(train_mode=False):
                if spec["variadic"] is not None:
                    result = fn(*arrays, **spec["attrs"])
                else:
                    result = fn(**{item["name"]: a for item, a in zip(inputs, arrays)}, **spec["attrs"])
            results = list(result) if isinstance(result, (list, tuple)) else [result]
            if len(results) != len(outputs):
                return None
            for r, o in zip(results, outputs):  # the imperative run must be the symbolic one
                if not np.array_equal(r.asnumpy(), o, equal_nan=True):
                    return None
            mx.autograd.backward(results, head_grads=[mx.nd.array(h, dtype=h.dtype) for h in heads],
                                 train_mode=False)
            mx.nd.waitall()
            grads = [a.grad.asnumpy() if differentiate else None for a, differentiate in zip(arrays, wrt)]
    except mx.base.MXNetError:
        return None  # MXNet has no gradient for this operator
    head_records = [dict(name=item["name"], shape=list(h.shape), dtype=str(h.dtype), data=h)
                    for item, h in zip([dict(name=short_name(n)) for n in sym.list_outputs()], heads)]
    grad_records = [None if g is None else dict(name=item["name"], shape=list(g.shape), dtype=str(g.dtype), data=g)
                    for item, g in zip(inputs, grads)]
    return head_records, grad_records


def run_error(op, spec):
    record = dict(desc=spec["desc"], attrs={k: mx_attr_string(v) for k, v in spec["attrs"].items()},
                  expect_error=True)
    try:
        sym = build_symbol(op, spec)
    except mx.base.MXNetError as exc:
        record["stage"] = "attrs"
        record["inputs"] = [dict(name=k, shape=list(v), dtype=spec["dtype"]) for k, v in spec["shapes"].items()]
        record["mxnet_error"] = error_line(exc)
        return record
    names = sym.list_arguments() + sym.list_auxiliary_states()
    record["attrs"] = op_node(sym).get("attrs", {})
    record["inputs"] = [dict(name=short_name(n), shape=(list(spec["shapes"][short_name(n)])
                                                        if short_name(n) in spec["shapes"] else None),
                             dtype=spec["dtype"]) for n in names]
    given = {n: spec["shapes"][short_name(n)] for n in names if short_name(n) in spec["shapes"]}
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MXNet prints the arguments on failure
            arg_shapes, _, _ = sym.infer_shape(**given)
    except mx.base.MXNetError as exc:
        record["stage"] = "infer_shape"
        record["mxnet_error"] = error_line(exc)
        return record
    if arg_shapes is None and len(given) == len(names):
        # Some operators (where) report a conflict by leaving the shapes undecided.
        record["stage"] = "infer_shape"
        record["mxnet_error"] = "infer_shape cannot decide the shapes although every input is given"
        return record
    # Some checks MXNet only makes when it runs the operator.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exe = sym.simple_bind(mx.cpu(), grad_req="null", **given)
            exe.forward(is_train=False)
            mx.nd.waitall()
    except mx.base.MXNetError as exc:
        record["stage"] = "forward"
        record["mxnet_error"] = error_line(exc)
        return record
    raise AssertionError("%s error case '%s': MXNet accepted it" % (op, spec["desc"]))


def mx_attr_string(value):
    """MXNet's spelling of a Python attribute value (str() of tuples and booleans)."""
    return str(value)


# ---------------------------------------------------------------------------------------
# Writing: JSON with each number list on one line; float32 values as the shortest text
# that reads back as the same float32 (numpy's repr), float64 as Python's repr.


def format_number(value, dtype):
    if dtype in ("float16", "float32", "float64"):
        v = float(value)
        if np.isnan(v):
            return '"nan"'
        if np.isinf(v):
            return '"inf"' if v > 0 else '"-inf"'
        if dtype == "float32":
            text = repr(np.float32(value))
        elif dtype == "float16":
            text = repr(float(np.float16(value)))  # exact: float16 values are short doubles
        else:
            text = repr(v)
        if text.endswith(".0"):
            text = text[:-2]
        return text
    if dtype == "bool":
        return "1" if value else "0"
    return str(int(value))


def dump(obj, indent=0, dtype=None):
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        dt = obj.get("dtype", dtype)
        items = []
        for k, v in obj.items():
            items.append('%s  %s: %s' % (pad, json.dumps(k), dump(v, indent + 1, dt)))
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, np.ndarray):
        return "[" + ", ".join(format_number(v, dtype) for v in obj.ravel()) + "]"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple, np.ndarray)) for v in obj):
            return "[" + ", ".join(dump(v, indent + 1, dtype) for v in obj) + "]"
        return "[\n" + ",\n".join(pad + "  " + dump(v, indent + 1, dtype) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return json.dumps(obj)
    if isinstance(obj, (int, np.integer)):
        return str(int(obj))
    if isinstance(obj, (float, np.floating)):
        return repr(float(obj))
    raise TypeError(type(obj))


def verify_roundtrip(text, records):
    """Every number written reads back as exactly the value MXNet used."""
    parsed = json.loads(text)
    for rec, back in zip(records, parsed["cases"]):
        for key in ("inputs", "outputs", "updated_inputs", "head_grads", "input_grads"):
            for item, item_back in zip(rec.get(key, []), back.get(key, [])):
                if item is None or "data" not in item:
                    continue
                again = np.array([float(v) for v in item_back["data"]], dtype=np.float64).astype(item["dtype"])
                orig = np.asarray(item["data"]).ravel()
                same = (again == orig) | (np.isnan(again.astype(np.float64)) & np.isnan(orig.astype(np.float64)))
                assert same.all(), (rec["desc"], key, item["name"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "golden", "data"))
    parser.add_argument("--only", default="", help="comma-separated operators to regenerate")
    options = parser.parse_args()

    for declare in (declare_elementwise, declare_compare_logic_mod, declare_unary, declare_rounding,
                    declare_reductions, declare_matrix, declare_nn, declare_index, declare_shape, declare_creation,
                    declare_sort):
        declare()
    only = set(filter(None, options.only.split(",")))
    os.makedirs(options.out, exist_ok=True)
    total_cases = total_bytes = 0
    problems = []
    for op, specs in CASES.items():
        if only and op not in only:
            continue
        records = []
        for index, spec in enumerate(specs):
            try:
                records.append(run_forward(op, index, spec) if spec["kind"] == "forward" else run_error(op, spec))
            except Exception as exc:  # report every broken case, then fail
                problems.append("%s case %d (%s): %s: %s" % (op, index, spec["desc"], type(exc).__name__,
                                                             error_line(exc)))
        if problems:
            continue
        # The operator's name in MXNet's graph JSON (_copy for identity, SliceChannel for split).
        mxnet_op = op_node(build_symbol(op, next(s for s in specs if s["kind"] == "forward")))["op"]
        document = {"op": op, "mxnet_op": mxnet_op, "mxnet_version": mx.__version__, "cases": records}
        text = dump(document) + "\n"
        verify_roundtrip(text, records)
        path = os.path.join(options.out, op + ".json")
        with open(path, "w") as f:
            f.write(text)
        total_cases += len(records)
        total_bytes += len(text)
    if problems:
        sys.exit("cases that did not generate (nothing written after the first):\n  " + "\n  ".join(problems))
    print("wrote %d operators, %d cases, %d bytes" % (len(CASES) if not only else len(only), total_cases,
                                                      total_bytes))


if __name__ == "__main__":
    main()
