#include "codegen/cuda/cuda_prelude.h"

namespace kiln::cuda {

// The prelude compiles under NVRTC (no standard headers: math functions are CUDA's
// built-ins) and, for the emulation harness, as host C++ after cuda_emulation.h (which
// defines KILN_CUDA_EMULATION and includes <math.h>).
const char* CudaPrelude() {
  return R"prelude(// ---- kiln CUDA prelude: the kernel IR's arithmetic, as the kir interpreter defines it ----
#if defined(KILN_CUDA_EMULATION)
#define KILN_FN static inline
KILN_FN float kiln_bits_float(unsigned int b) { float f; __builtin_memcpy(&f, &b, 4); return f; }
KILN_FN unsigned int kiln_float_bits(float f) { unsigned int b; __builtin_memcpy(&b, &f, 4); return b; }
KILN_FN double kiln_bits_double(unsigned long long b) { double d; __builtin_memcpy(&d, &b, 8); return d; }
#else
#define KILN_FN static __device__ __forceinline__
KILN_FN float kiln_bits_float(unsigned int b) { return __uint_as_float(b); }
KILN_FN unsigned int kiln_float_bits(float f) { return __float_as_uint(f); }
KILN_FN double kiln_bits_double(unsigned long long b) { return __longlong_as_double((long long)b); }
#endif

// Four floats moved as one 16-byte access (ld.global.v4.f32 / st.global.v4.f32).
struct alignas(16) kiln_f4 {
  float x, y, z, w;
};

#define KILN_INF_F kiln_bits_float(0x7f800000u)
#define KILN_NAN_F kiln_bits_float(0x7fc00000u)
#define KILN_INF_D kiln_bits_double(0x7ff0000000000000ull)
#define KILN_NAN_D kiln_bits_double(0x7ff8000000000000ull)

// float16: IEEE half, rounded to nearest even (as runtime/dtype.cc).
KILN_FN unsigned short kiln_f2h(float value) {
  const unsigned int bits = kiln_float_bits(value);
  const unsigned int sign = (bits >> 16) & 0x8000u;
  const unsigned int exponent = (bits >> 23) & 0xffu;
  unsigned int mantissa = bits & 0x7fffffu;
  if (exponent == 0xffu) return (unsigned short)(sign | 0x7c00u | (mantissa ? 0x200u : 0u));
  const int half_exponent = (int)exponent - 127 + 15;
  if (half_exponent >= 0x1f) return (unsigned short)(sign | 0x7c00u);
  if (half_exponent <= 0) {
    if (half_exponent < -10) return (unsigned short)sign;
    mantissa |= 0x800000u;
    const unsigned int shift = (unsigned int)(14 - half_exponent);
    unsigned int half_mantissa = mantissa >> shift;
    const unsigned int remainder = mantissa & ((1u << shift) - 1u);
    const unsigned int halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ++half_mantissa;
    return (unsigned short)(sign | half_mantissa);
  }
  unsigned int half = sign | ((unsigned int)half_exponent << 10) | (mantissa >> 13);
  const unsigned int remainder = mantissa & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) ++half;
  return (unsigned short)half;
}
KILN_FN float kiln_h2f(unsigned short half) {
  const unsigned int sign = (unsigned int)(half & 0x8000u) << 16;
  const unsigned int exponent = (half >> 10) & 0x1fu;
  unsigned int mantissa = half & 0x3ffu;
  unsigned int bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | ((unsigned int)(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127u - 15u) << 23) | (mantissa << 13);
  }
  return kiln_bits_float(bits);
}
// bfloat16: the top half of a float, rounded to nearest even; NaN stays quiet.
KILN_FN unsigned short kiln_f2bf(float value) {
  const unsigned int bits = kiln_float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
  return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
KILN_FN float kiln_bf2f(unsigned short bits) { return kiln_bits_float((unsigned int)bits << 16); }
// A float result of a float16 / bfloat16 operation: rounded to its precision.
KILN_FN float kiln_round_h(float x) { return kiln_h2f(kiln_f2h(x)); }
KILN_FN float kiln_round_bf(float x) { return kiln_bf2f(kiln_f2bf(x)); }

// Float min / max: a NaN operand on the left wins, as the interpreter's `a < b ? a : b`.
template <class T> KILN_FN T kiln_fmin(T a, T b) { return (a != a || a < b) ? a : b; }
template <class T> KILN_FN T kiln_fmax(T a, T b) { return (a != a || a > b) ? a : b; }

template <class T> KILN_FN T kiln_imin(T a, T b) { return a < b ? a : b; }
template <class T> KILN_FN T kiln_imax(T a, T b) { return a > b ? a : b; }

// Integers wrap to their width (computed in 64-bit unsigned arithmetic, then narrowed).
template <class T> KILN_FN T kiln_add(T a, T b) { return (T)((unsigned long long)a + (unsigned long long)b); }
template <class T> KILN_FN T kiln_sub(T a, T b) { return (T)((unsigned long long)a - (unsigned long long)b); }
template <class T> KILN_FN T kiln_mul(T a, T b) { return (T)((unsigned long long)a * (unsigned long long)b); }
template <class T> KILN_FN T kiln_neg(T a) { return (T)(0ull - (unsigned long long)a); }
template <class T> KILN_FN T kiln_abs(T a) { return a < (T)0 ? kiln_neg(a) : a; }
// x / 0 = x % 0 = 0; MIN / -1 wraps to MIN (remainder 0).
template <class T> KILN_FN T kiln_sdiv(T a, T b) { return b == (T)0 ? (T)0 : b == (T)-1 ? kiln_neg(a) : (T)(a / b); }
template <class T> KILN_FN T kiln_smod(T a, T b) { return (b == (T)0 || b == (T)-1) ? (T)0 : (T)(a % b); }
template <class T> KILN_FN T kiln_udiv(T a, T b) { return b == (T)0 ? (T)0 : (T)(a / b); }
template <class T> KILN_FN T kiln_umod(T a, T b) { return b == (T)0 ? (T)0 : (T)(a % b); }

// Float to integer: truncated, NaN to 0, saturated to the int64 range, then wrapped to the
// target width; uint64 also takes [2^63, 2^64) and saturates above.
KILN_FN long long kiln_f2i(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return (long long)0x7fffffffffffffffull;
  if (v <= -9223372036854775808.0) return (long long)0x8000000000000000ull;
  return (long long)v;
}
KILN_FN unsigned long long kiln_f2u64(double v) {
  if (v >= 18446744073709551616.0) return 0xffffffffffffffffull;
  if (v >= 9223372036854775808.0) return (unsigned long long)v;
  return (unsigned long long)kiln_f2i(v);
}
// A block's cooperative reduction (kir's kReduction loops): every thread of the block
// calls it with its partial value, and every thread gets op over all of them. Warp
// shuffles within each warp, the warps' results through shared memory, then the first
// warp's shuffles again. Blocks are whole warps. `identity` pads the missing warps.
#if !defined(KILN_CUDA_EMULATION)
KILN_FN float kiln_shfl_down(float v, int offset) { return __shfl_down_sync(0xffffffffu, v, offset); }
KILN_FN double kiln_shfl_down(double v, int offset) { return __shfl_down_sync(0xffffffffu, v, offset); }
KILN_FN long long kiln_shfl_down(long long v, int offset) { return __shfl_down_sync(0xffffffffu, v, offset); }
KILN_FN unsigned long long kiln_shfl_down(unsigned long long v, int offset) {
  return __shfl_down_sync(0xffffffffu, v, offset);
}
KILN_FN int kiln_shfl_down(int v, int offset) { return __shfl_down_sync(0xffffffffu, v, offset); }
KILN_FN unsigned int kiln_shfl_down(unsigned int v, int offset) { return __shfl_down_sync(0xffffffffu, v, offset); }
KILN_FN short kiln_shfl_down(short v, int offset) { return (short)kiln_shfl_down((int)v, offset); }
KILN_FN unsigned short kiln_shfl_down(unsigned short v, int offset) {
  return (unsigned short)kiln_shfl_down((unsigned int)v, offset);
}
KILN_FN signed char kiln_shfl_down(signed char v, int offset) { return (signed char)kiln_shfl_down((int)v, offset); }
KILN_FN unsigned char kiln_shfl_down(unsigned char v, int offset) {
  return (unsigned char)kiln_shfl_down((unsigned int)v, offset);
}
KILN_FN bool kiln_shfl_down(bool v, int offset) { return kiln_shfl_down((int)v, offset) != 0; }
template <class T, class Op> KILN_FN T kiln_warp_reduce(T value, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) value = op(value, kiln_shfl_down(value, offset));
  return value;
}
template <class T, class Op> KILN_FN T kiln_block_reduce(T value, T identity, Op op) {
  __shared__ T kiln_slots[32];
  const unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  value = kiln_warp_reduce(value, op);
  if (lane == 0) kiln_slots[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = kiln_warp_reduce(lane < ((blockDim.x + 31u) >> 5) ? kiln_slots[lane] : identity, op);
    if (lane == 0) kiln_slots[0] = value;
  }
  __syncthreads();
  value = kiln_slots[0];
  __syncthreads();  // before the slots are used again
  return value;
}
#else
// The emulation computes the same tree as the shuffles, in the same order, from the
// block's values gathered at a barrier (its threads are fibers of one host thread).
template <class T, class Op> KILN_FN T kiln_warp_tree(T* v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    for (int lane = 0; lane + offset < 32; ++lane) v[lane] = op(v[lane], v[lane + offset]);
  }
  return v[0];
}
template <class T, class Op> KILN_FN T kiln_block_reduce(T value, T identity, Op op) {
  // The block's fibers share it; blocks on other host threads (the CPU kernel ABI's
  // parallel ranges) have their own.
  static thread_local T values[1024];
  values[threadIdx.x] = value;
  __syncthreads();
  const unsigned int warps = (blockDim.x + 31u) >> 5;
  T results[32];
  for (unsigned int w = 0; w < 32; ++w) {
    T lanes[32];
    for (unsigned int lane = 0; lane < 32; ++lane) {
      lanes[lane] = w < warps && w * 32 + lane < blockDim.x ? values[w * 32 + lane] : identity;
    }
    results[w] = w < warps ? kiln_warp_tree(lanes, op) : identity;
  }
  value = kiln_warp_tree(results, op);
  __syncthreads();  // before the values are used again
  return value;
}
#endif
// ---- end of the prelude ----
)prelude";
}

}  // namespace kiln::cuda
