// Shared by the rnnlab recurrent kernels (recurrence.cpp, gated_feedback.cpp): cell and
// activation codes, the vectorised activation tables, the per-step matrix product on a
// weight packed once per call, and the split of a batch into per-thread row blocks.
// Everything is in an anonymous namespace: each kernel is its own translation unit.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

// MKL's packed GEMM (Fortran interface, LP64), exported by x86 torch builds that link
// MKL. Weak: on builds without it (OpenBLAS, ARM) the pointers are null at run time.
extern "C" {
__attribute__((weak)) size_t sgemm_pack_get_size_(const char*, const int*, const int*,
                                                  const int*);
__attribute__((weak)) void sgemm_pack_(const char*, const char*, const int*, const int*,
                                       const int*, const float*, const float*, const int*,
                                       float*);
__attribute__((weak)) void sgemm_compute_(const char*, const char*, const int*, const int*,
                                          const int*, const float*, const int*, const float*,
                                          const int*, const float*, float*, const int*);
}

namespace {

// The same codes as rnnlab.nn.kernels.CELL_CODES and activations.KERNEL_CODES.
// IND: IndRNN, the Elman step with an elementwise (vector) recurrent weight.
enum Cell : int64_t { RNN = 0, LSTM = 1, GRU = 2, IND = 3 };
enum Act : int64_t {
  TANH = 0, RELU = 1, LEAKY_RELU = 2, ELU = 3, GELU = 4,
  SILU = 5, SOFTSIGN = 6, HARDTANH = 7, SIGMOID = 8, HARD_SIGMOID = 9
};

// Vectorisable float32 transcendental functions. glibc's libmvec only offers 4-wide
// SSE variants to this build, so exp/tanh/erf would leave most of an AVX2/AVX-512
// register idle; these inline versions are plain arithmetic that the compiler
// vectorises at full width inside `omp simd` loops. Accuracy (tests check float32
// against float64): exp ~1 ulp (Cephes polynomial), tanh ~2 ulp, erf < 2e-7 absolute
// (Abramowitz-Stegun 7.1.26, as ATen's vectorised erf). float64 keeps libm.
namespace fm {
template <typename T> __attribute__((always_inline)) inline T exp(T x) { return std::exp(x); }
template <typename T> __attribute__((always_inline)) inline T tanh(T x) { return std::tanh(x); }
template <typename T> __attribute__((always_inline)) inline T erf(T x) { return std::erf(x); }

template <> __attribute__((always_inline)) inline float exp<float>(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
}

template <> __attribute__((always_inline)) inline float tanh<float>(float x) {
  const float a = std::abs(x);
  const float z = x * x;  // small |x|: Cephes' odd polynomial keeps the relative accuracy
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = fm::exp<float>(-2.0f * a);
  const float big = std::copysign((1.0f - e) / (1.0f + e), x);
  return a < 0.625f ? small : big;
}

template <> __attribute__((always_inline)) inline float erf<float>(float x) {
  const float a = std::abs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return std::copysign(1.0f - p * t * fm::exp<float>(-a * a), x);
}
}  // namespace fm

#define RNNLAB_MAP(EXPR)                                   \
  _Pragma("omp simd") for (int64_t k = 0; k < n; ++k) {    \
    const T v = x[k];                                      \
    y[k] = (EXPR);                                         \
  }                                                        \
  break;

// y = f(x) elementwise.
template <typename T>
void act_fwd(int64_t a, const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  const T one = 1, zero = 0, half = 0.5;
  switch (a) {
    case TANH: RNNLAB_MAP(fm::tanh<T>(v))
    case RELU: RNNLAB_MAP(v > zero ? v : zero)
    case LEAKY_RELU: RNNLAB_MAP(v > zero ? v : T(0.01) * v)
    case ELU: RNNLAB_MAP(v > zero ? v : fm::exp<T>(v) - one)
    case GELU: RNNLAB_MAP(half * v * (one + fm::erf<T>(v * T(M_SQRT1_2))))
    case SILU: RNNLAB_MAP(v / (one + fm::exp<T>(-v)))
    case SOFTSIGN: RNNLAB_MAP(v / (one + std::abs(v)))
    case HARDTANH: RNNLAB_MAP(v < -one ? -one : (v > one ? one : v))
    case SIGMOID: RNNLAB_MAP(one / (one + fm::exp<T>(-v)))
    case HARD_SIGMOID: {
      RNNLAB_MAP(std::min(std::max(T(0.2) * v + half, zero), one))
    }
    default: TORCH_CHECK(false, "rnnlab kernel: unknown activation code ", a);
  }
}

#define RNNLAB_GRAD(EXPR)                                  \
  _Pragma("omp simd") for (int64_t k = 0; k < n; ++k) {    \
    const T v = x[k];                                      \
    g[k] = gy[k] * (EXPR);                                 \
  }                                                        \
  break;

// g = gy * f'(x), x the pre-activation; g may alias gy.
template <typename T>
void act_bwd(int64_t a, const T* __restrict__ x, const T* gy, T* g, int64_t n) {
  const T one = 1, zero = 0, half = 0.5;
  switch (a) {
    case TANH: RNNLAB_GRAD((one - fm::tanh<T>(v) * fm::tanh<T>(v)))
    case RELU: RNNLAB_GRAD(v > zero ? one : zero)
    case LEAKY_RELU: RNNLAB_GRAD(v > zero ? one : T(0.01))
    case ELU: RNNLAB_GRAD(v > zero ? one : fm::exp<T>(v))
    case GELU:
      RNNLAB_GRAD(half * (one + fm::erf<T>(v * T(M_SQRT1_2))) +
                  v * fm::exp<T>(-half * v * v) * T(0.3989422804014327))
    case SILU: {
      RNNLAB_GRAD((one / (one + fm::exp<T>(-v))) * (one + v * (one - one / (one + fm::exp<T>(-v)))))
    }
    case SOFTSIGN: RNNLAB_GRAD(one / ((one + std::abs(v)) * (one + std::abs(v))))
    case HARDTANH: RNNLAB_GRAD((v > -one && v < one) ? one : zero)
    case SIGMOID: RNNLAB_GRAD((one / (one + fm::exp<T>(-v))) * (one - one / (one + fm::exp<T>(-v))))
    case HARD_SIGMOID: RNNLAB_GRAD((v >= T(-2.5) && v <= T(2.5)) ? T(0.2) : zero)
    default: TORCH_CHECK(false, "rnnlab kernel: unknown activation code ", a);
  }
}

#define RNNLAB_BOTH(Y, D)                                  \
  _Pragma("omp simd") for (int64_t k = 0; k < n; ++k) {    \
    const T v = x[k];                                      \
    Y;                                                     \
    D;                                                     \
  }                                                        \
  break;

// y = f(x) and d = f'(x) in one pass: a backward that needs both (the gated cells)
// evaluates each exp/tanh/erf once instead of twice (act_fwd, then act_bwd).
template <typename T>
void act_both(int64_t a, const T* __restrict__ x, T* __restrict__ y, T* __restrict__ d,
              int64_t n) {
  const T one = 1, zero = 0, half = 0.5;
  switch (a) {
    case TANH: RNNLAB_BOTH(const T t = fm::tanh<T>(v); y[k] = t, d[k] = one - t * t)
    case RELU: RNNLAB_BOTH(y[k] = v > zero ? v : zero, d[k] = v > zero ? one : zero)
    case LEAKY_RELU:
      RNNLAB_BOTH(y[k] = v > zero ? v : T(0.01) * v, d[k] = v > zero ? one : T(0.01))
    case ELU: RNNLAB_BOTH(const T e = fm::exp<T>(v); y[k] = v > zero ? v : e - one,
                          d[k] = v > zero ? one : e)
    case GELU:
      RNNLAB_BOTH(const T c = half * (one + fm::erf<T>(v * T(M_SQRT1_2))); y[k] = v * c,
                  d[k] = c + v * fm::exp<T>(-half * v * v) * T(0.3989422804014327))
    case SILU: RNNLAB_BOTH(const T s = one / (one + fm::exp<T>(-v)); y[k] = v * s,
                           d[k] = s * (one + v * (one - s)))
    case SOFTSIGN: RNNLAB_BOTH(const T q = one / (one + std::abs(v)); y[k] = v * q,
                               d[k] = q * q)
    case HARDTANH: RNNLAB_BOTH(y[k] = v < -one ? -one : (v > one ? one : v),
                               d[k] = (v > -one && v < one) ? one : zero)
    case SIGMOID: RNNLAB_BOTH(const T s = one / (one + fm::exp<T>(-v)); y[k] = s,
                              d[k] = s * (one - s))
    case HARD_SIGMOID:
      RNNLAB_BOTH(y[k] = std::min(std::max(T(0.2) * v + half, zero), one),
                  d[k] = (v >= T(-2.5) && v <= T(2.5)) ? T(0.2) : zero)
    default: TORCH_CHECK(false, "rnnlab kernel: unknown activation code ", a);
  }
}

at::Tensor empty0(const at::Tensor& like) { return at::empty({0}, like.options()); }

// dW_hh = sum_{b,t} dG[b,t]^T h_{t-1}[b] (dG (B, T, G*H), out (B, T, W) the outputs, h0
// (B, W)) as one matmul over the flattened (B*T) rows, without building a shifted copy
// of the outputs: pair row r of dG with row r-1 of out, then correct the rows where
// t = 0 (they met the previous sequence's last output instead of h0) with one small
// (B-row) matmul. Padded steps have dG = 0, so what they pair with does not matter.
// elementwise (IndRNN's vector u): du = sum_{b,t} dG * h_{t-1}, the same pairing.
at::Tensor recurrent_weight_grad(const at::Tensor& dg, const at::Tensor& out, const at::Tensor& h0,
                                 bool elementwise) {
  const int64_t B = dg.size(0), S = dg.size(1), GH = dg.size(2), W = out.size(2);
  const at::Tensor dg_flat = dg.view({B * S, GH});
  const at::Tensor out_flat = out.view({B * S, W});
  const at::Tensor first = dg.select(1, 0);  // (B, GH), t = 0 rows
  at::Tensor corr = h0.clone();
  if (B > 1) corr.narrow(0, 1, B - 1).sub_(out.select(1, S - 1).narrow(0, 0, B - 1));
  at::Tensor dw;
  if (elementwise) {
    dw = (first * corr).sum(0);
    if (B * S > 1) dw.add_((dg_flat.narrow(0, 1, B * S - 1) * out_flat.narrow(0, 0, B * S - 1)).sum(0));
  } else {
    dw = at::mm(first.t(), corr);
    if (B * S > 1) dw.addmm_(dg_flat.narrow(0, 1, B * S - 1).t(), out_flat.narrow(0, 0, B * S - 1));
  }
  return dw;
}

// A per-step product with a weight W (rows x cols, row-major) fixed for the loop:
// C[n x m] = beta * C + X[n x k] * M[k x m], M = W^T (transpose) or W. X and C are row
// blocks of larger buffers (row strides ldx, ldc). float32 with MKL: W packed once,
// sgemm_compute per step (read-only, so row-block threads share it); else at::mm.
//
// Memory: MKL's packed buffer costs ~7.5 MiB on top of the weight whatever its size,
// so a kernel with many step weights (gated feedback: 2L-1 forward, 3L backward) can
// pass a byte budget; weights beyond it use at::mm (repacked per call: ~10-25% slower
// per product, no extra memory). No budget: always pack.
struct PackBudget {
  int64_t bytes;
};

template <typename T>
struct StepMatmul {
  at::Tensor w, packed;
  bool transposed = false;
  int m = 0, k = 0;

  StepMatmul() = default;
  StepMatmul(const at::Tensor& weight, bool transpose, int64_t max_n,
             PackBudget* budget = nullptr)
      : w(weight.contiguous()), transposed(transpose) {
    m = static_cast<int>(transpose ? w.size(0) : w.size(1));
    k = static_cast<int>(transpose ? w.size(1) : w.size(0));
    if constexpr (std::is_same_v<T, float>) {
      if (sgemm_pack_get_size_ && sgemm_pack_ && sgemm_compute_ && m > 0 && k > 0) {
        const int n = static_cast<int>(std::max<int64_t>(max_n, 1));
        const char id = 'A', tr = transpose ? 'T' : 'N';
        const int ld = transpose ? k : m;
        const float one = 1.0f;
        const size_t bytes = sgemm_pack_get_size_(&id, &m, &n, &k);
        if (budget) {
          if (static_cast<int64_t>(bytes) > budget->bytes) return;
          budget->bytes -= static_cast<int64_t>(bytes);
        }
        packed = at::empty({static_cast<int64_t>(bytes / sizeof(float)) + 16}, w.options());
        sgemm_pack_(&id, &tr, &m, &n, &k, &one, w.data_ptr<float>(), &ld,
                    packed.data_ptr<float>());
      }
    }
  }

  void operator()(const T* x, int64_t ldx, int64_t n, T beta, T* c, int64_t ldc) const {
    if (n <= 0 || m <= 0) return;
    if (k <= 0) {
      if (beta == T(0))
        for (int64_t r = 0; r < n; ++r) std::fill(c + r * ldc, c + r * ldc + m, T(0));
      return;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (packed.defined() && ldx <= INT32_MAX && ldc <= INT32_MAX) {  // LP64 ints
        const char ta = 'P', tb = 'N';
        const int nn = static_cast<int>(n), ldb = static_cast<int>(ldx);
        const int ldcc = static_cast<int>(ldc), lda = transposed ? k : m;
        sgemm_compute_(&ta, &tb, &m, &nn, &k, packed.data_ptr<float>(), &lda, x, &ldb, &beta,
                       c, &ldcc);
        return;
      }
    }
    auto opts = w.options();
    const at::Tensor xv = at::from_blob(const_cast<T*>(x), {n, k}, {ldx, 1}, opts);
    at::Tensor cv = at::from_blob(c, {n, m}, {ldc, 1}, opts);
    const at::Tensor mat = transposed ? w.t() : w;
    if (beta == T(0)) {
      at::mm_out(cv, xv, mat);
    } else {
      cv.addmm_(xv, mat);
    }
  }
};

// Rows of a batch are independent recurrences, so the time loop runs on disjoint row
// blocks in parallel with no synchronisation between steps: each thread does its own
// (single-threaded) products and the elementwise work of its rows. With fewer than
// kMinBlockRows rows per thread the per-step products would be too thin; then one block
// runs on the calling thread and each product uses all threads itself.
constexpr int64_t kMinBlockRows = 8;

int64_t row_blocks(int64_t B) {
  if (at::in_parallel_region()) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B / kMinBlockRows));
}

template <typename F>
void over_row_blocks(int64_t B, int64_t blocks, const F& fn) {
  if (blocks == 1) {
    fn(0, B);
    return;
  }
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    at::NoGradGuard no_grad;  // grad mode is thread-local: worker threads start with it on
    for (int64_t k = k0; k < k1; ++k) fn(k * B / blocks, (k + 1) * B / blocks);
  });
}

}  // namespace
