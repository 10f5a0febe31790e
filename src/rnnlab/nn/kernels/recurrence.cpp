// rnnlab recurrent kernels: the time loop of Elman / LSTM / GRU layers in C++.
//
// The Python side computes the input projection gx = x W_ih^T for all steps (one
// matmul, without bias: both biases are added in the elementwise pass, which saves a
// full-size broadcast copy) and hands it here. Forward: one matmul per step for the recurrence and
// one fused, vectorised elementwise pass per batch row. Backward: one matmul per step to
// carry dh through W_hh, fused elementwise gate derivatives, and the weight gradient
// dW_hh = dGates^T H_prev as ONE matmul after the loop.
// Lengths: rows with t >= length keep their state and emit zeros (no per-sequence loop).
// Activations are chosen at run time by code (kernels/__init__.py lists them).
//
// Where the time goes at RNN sizes (perf, T=200 B=32 H=128): the per-step matmul is
// small, so three things dominate that a naive loop pays every step: (1) the BLAS
// re-packing the weight on each call, (2) fork/join barriers, (3) scalar or narrow
// transcendental functions. Hence: (1) W_hh is packed once per call with MKL's packed
// GEMM API when the torch build exports it (falls back to at::mm otherwise);
// (2) independent batch rows are split into per-thread blocks that run the whole time
// loop without synchronising; (3) float32 exp/tanh/erf are inline polynomials the
// compiler vectorises at full width.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
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

enum Cell : int64_t { RNN = 0, LSTM = 1, GRU = 2 };
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

int64_t gates_of(int64_t cell) { return cell == LSTM ? 4 : (cell == GRU ? 3 : 1); }

at::Tensor empty0(const at::Tensor& like) { return at::empty({0}, like.options()); }

// The recurrent matmul of every step, with the weight W (rows x cols, row-major) fixed
// for the whole loop: C[n x m] = beta * C + X[n x k] * M[k x m] where M = W^T (forward,
// m = rows, k = cols) or M = W (backward, m = cols, k = rows). X and C are row blocks of
// larger buffers (row strides ldx, ldc). float32 with MKL: W is packed once here and
// every step runs sgemm_compute on the packed copy; otherwise at::mm on views.
template <typename T>
struct StepMatmul {
  at::Tensor w, packed;
  bool transposed;  // M = W^T
  int m, k;

  StepMatmul(const at::Tensor& weight, bool transpose, int64_t max_n)
      : w(weight.contiguous()), transposed(transpose) {
    m = static_cast<int>(transpose ? w.size(0) : w.size(1));
    k = static_cast<int>(transpose ? w.size(1) : w.size(0));
    if constexpr (std::is_same_v<T, float>) {
      if (sgemm_pack_get_size_ && sgemm_pack_ && sgemm_compute_ && m > 0 && k > 0) {
        // Column-major view: C^T (m x n) = op(A) (m x k) * X^T (k x n), A = W's storage.
        const int n = static_cast<int>(std::max<int64_t>(max_n, 1));
        const char id = 'A', tr = transpose ? 'T' : 'N';
        const int ld = transpose ? k : m;
        const float one = 1.0f;
        const size_t bytes = sgemm_pack_get_size_(&id, &m, &n, &k);
        packed = at::empty({static_cast<int64_t>(bytes / sizeof(float)) + 16}, w.options());
        sgemm_pack_(&id, &tr, &m, &n, &k, &one, w.data_ptr<float>(), &ld,
                    packed.data_ptr<float>());
      }
    }
  }

  void operator()(const T* x, int64_t ldx, int64_t n, T beta, T* c, int64_t ldc) const {
    if (n <= 0) return;
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
// (single-threaded) matmul and the elementwise work of its rows. With fewer than
// kMinBlockRows rows per thread the per-step matmul would be too thin; then one block
// runs on the calling thread and the matmul itself uses all threads.
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

template <typename T>
void forward_loop(const at::Tensor& gx, at::Tensor& gh, at::Tensor& out, at::Tensor& h,
                  at::Tensor& c, at::Tensor& pre, at::Tensor& c_all, at::Tensor& hn_all,
                  at::Tensor& tmp, const at::Tensor& b_ih, const at::Tensor& b_hh,
                  const at::Tensor& w_hh,
                  const int64_t* L, int64_t B, int64_t S, int64_t GH, int64_t H, int64_t cell,
                  int64_t phi, int64_t phi_c, int64_t sigma, bool save) {
  const T* gx_p = gx.data_ptr<T>();
  const T* bi = b_ih.data_ptr<T>();
  const T* bh = b_hh.data_ptr<T>();
  // Elman/LSTM: one combined bias; GRU keeps b_hn apart (it sits inside r * (...)).
  const at::Tensor b_sum = b_ih + b_hh;
  const T* bs = b_sum.data_ptr<T>();
  T* gh_p = gh.data_ptr<T>();
  T* out_p = out.data_ptr<T>();
  T* h_p = h.data_ptr<T>();
  T* c_p = cell == LSTM ? c.data_ptr<T>() : nullptr;
  T* pre_p = pre.data_ptr<T>();
  T* call_p = c_all.numel() ? c_all.data_ptr<T>() : nullptr;
  T* hn_p = hn_all.numel() ? hn_all.data_ptr<T>() : nullptr;
  T* tmp_p = tmp.data_ptr<T>();
  const int64_t blocks = row_blocks(B);
  const StepMatmul<T> recur(w_hh, /*transpose=*/true, (B + blocks - 1) / blocks);
  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < S; ++t) {
      recur(h_p + r0 * H, H, r1 - r0, T(0), gh_p + r0 * GH, GH);  // gh = h W_hh^T
      for (int64_t b = r0; b < r1; ++b) {
        const int64_t bt = b * S + t;
        T* __restrict__ o = out_p + bt * H;
        if (t >= L[b]) {
          std::fill(o, o + H, T(0));
          continue;
        }
        const T* __restrict__ x = gx_p + bt * GH;
        T* __restrict__ r = gh_p + b * GH;
        T* __restrict__ p = pre_p + (save ? bt : b) * GH;
        T* __restrict__ hb = h_p + b * H;
        T* __restrict__ q = tmp_p + b * 4 * H;
        if (cell == RNN) {
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) p[k] = x[k] + r[k] + bs[k];
          act_fwd<T>(phi, p, hb, H);
          std::copy(hb, hb + H, o);
        } else if (cell == LSTM) {
#pragma omp simd
          for (int64_t k = 0; k < 4 * H; ++k) p[k] = x[k] + r[k] + bs[k];
          act_fwd<T>(sigma, p, q, 2 * H);
          act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
          act_fwd<T>(sigma, p + 3 * H, q + 3 * H, H);
          T* __restrict__ cb = c_p + b * H;
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) cb[k] = q[H + k] * cb[k] + q[k] * q[2 * H + k];
          if (call_p) std::copy(cb, cb + H, call_p + bt * H);
          act_fwd<T>(phi_c, cb, q, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            hb[k] = q[3 * H + k] * q[k];
            o[k] = hb[k];
          }
        } else {
#pragma omp simd
          for (int64_t k = 0; k < 2 * H; ++k) p[k] = x[k] + r[k] + bs[k];
          act_fwd<T>(sigma, p, q, 2 * H);
          T* __restrict__ hn = r + 2 * H;  // W_hn h + b_hn, gated by the reset gate
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) hn[k] += bh[2 * H + k];
          if (hn_p) std::copy(hn, hn + H, hn_p + bt * H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) p[2 * H + k] = x[2 * H + k] + bi[2 * H + k] + q[k] * hn[k];
          act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            const T z = q[H + k];
            hb[k] = (T(1) - z) * q[2 * H + k] + z * hb[k];
            o[k] = hb[k];
          }
        }
      }
    }
  });
}

// gx (B, T, G*H) contiguous, x W_ih^T without bias. Returns {out, h_T, c_T, pre, c_all,
// hn_all}; pre holds the complete pre-activations (both biases included).
std::vector<at::Tensor> rec_forward(const at::Tensor& gx, const at::Tensor& w_hh,
                                    const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& h0,
                                    const at::Tensor& c0, const at::Tensor& lengths, int64_t cell,
                                    int64_t phi, int64_t phi_c, int64_t sigma, bool save) {
  TORCH_CHECK(gx.dim() == 3 && gx.is_contiguous(), "gx must be a contiguous (B, T, G*H) tensor");
  const int64_t B = gx.size(0), S = gx.size(1), GH = gx.size(2), H = w_hh.size(1);
  TORCH_CHECK(GH == gates_of(cell) * H, "gx width does not match the cell");
  at::NoGradGuard no_grad;
  auto opts = gx.options();
  at::Tensor out = at::empty({B, S, H}, opts);
  at::Tensor h = h0.contiguous().clone();
  at::Tensor c = cell == LSTM ? c0.contiguous().clone() : empty0(gx);
  at::Tensor pre = at::empty({B, save ? S : 1, GH}, opts);
  at::Tensor c_all = (save && cell == LSTM) ? at::empty({B, S, H}, opts) : empty0(gx);
  at::Tensor hn_all = (save && cell == GRU) ? at::empty({B, S, H}, opts) : empty0(gx);
  at::Tensor gh = at::empty({B, GH}, opts);
  at::Tensor tmp = at::empty({B, 4 * H}, opts);
  at::Tensor len = lengths.to(at::kLong).contiguous();
  const int64_t* L = len.data_ptr<int64_t>();
  const at::Tensor bi = b_ih.contiguous(), bh = b_hh.contiguous();

  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnlab_rec_forward", [&] {
    forward_loop<scalar_t>(gx, gh, out, h, c, pre, c_all, hn_all, tmp, bi, bh, w_hh, L, B, S, GH,
                           H, cell, phi, phi_c, sigma, save);
  });
  return {out, h, c, pre, c_all, hn_all};
}

template <typename T>
void backward_loop(const at::Tensor& go, const at::Tensor& out, const at::Tensor& pre,
                   const at::Tensor& c_all, const at::Tensor& hn_all, const at::Tensor& h0c,
                   const at::Tensor& c0c, at::Tensor& dh, at::Tensor& dc, at::Tensor& dgh,
                   at::Tensor& dgx, at::Tensor& tmp, const at::Tensor& w_hh, const int64_t* L,
                   int64_t B, int64_t S, int64_t GH, int64_t H, int64_t cell, int64_t phi,
                   int64_t phi_c, int64_t sigma) {
  const int64_t gs0 = go.stride(0), gs1 = go.stride(1), gs2 = go.stride(2);
  const T* go_p = go.data_ptr<T>();
  const T* out_p = out.data_ptr<T>();
  const T* pre_p = pre.data_ptr<T>();
  const T* call_p = cell == LSTM ? c_all.data_ptr<T>() : nullptr;
  const T* hn_p = cell == GRU ? hn_all.data_ptr<T>() : nullptr;
  const T* h0_p = h0c.data_ptr<T>();
  const T* c0_p = cell == LSTM ? c0c.data_ptr<T>() : nullptr;
  T* dh_p = dh.data_ptr<T>();
  T* dc_p = cell == LSTM ? dc.data_ptr<T>() : nullptr;
  T* dgh_p = dgh.data_ptr<T>();
  T* dgx_p = dgx.data_ptr<T>();
  T* tmp_p = tmp.data_ptr<T>();
  const int64_t blocks = row_blocks(B);
  const StepMatmul<T> recur(w_hh, /*transpose=*/false, (B + blocks - 1) / blocks);
  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
    for (int64_t t = S - 1; t >= 0; --t) {
      // Each row leaves in dh the part of dh_{t-1} that bypasses W_hh (the carry: zero for
      // Elman/LSTM, z * dh for GRU, all of dh at padded steps); the matmul adds dG W_hh.
      for (int64_t b = r0; b < r1; ++b) {
        const int64_t bt = b * S + t;
        T* __restrict__ dg = dgh_p + bt * GH;
        T* __restrict__ dhb = dh_p + b * H;
        if (t >= L[b]) {  // padded step: gradients pass through the unchanged state
          std::fill(dg, dg + GH, T(0));
          if (cell == GRU) std::fill(dgx_p + bt * GH, dgx_p + (bt + 1) * GH, T(0));
          continue;
        }
        const T* gob = go_p + b * gs0 + t * gs1;
        if (gs2 == 1) {
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) dhb[k] += gob[k];
        } else {  // e.g. the stride-0 gradient of out.sum(): never materialised
          for (int64_t k = 0; k < H; ++k) dhb[k] += gob[k * gs2];
        }
        const T* __restrict__ p = pre_p + bt * GH;
        T* __restrict__ q = tmp_p + b * 6 * H;
        if (cell == RNN) {
          act_bwd<T>(phi, p, dhb, dg, H);
          std::fill(dhb, dhb + H, T(0));
        } else if (cell == LSTM) {
          const T* __restrict__ cb = call_p + bt * H;
          const T* __restrict__ cprev = t ? call_p + (bt - 1) * H : c0_p + b * H;
          T* __restrict__ dcb = dc_p + b * H;
          act_fwd<T>(sigma, p, q, 2 * H);
          act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
          act_fwd<T>(sigma, p + 3 * H, q + 3 * H, H);
          T* __restrict__ tc = q + 4 * H;
          T* __restrict__ u = q + 5 * H;
          act_fwd<T>(phi_c, cb, tc, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) u[k] = dhb[k] * q[3 * H + k];
          act_bwd<T>(phi_c, cb, u, u, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            const T dct = dcb[k] + u[k];
            dg[k] = dct * q[2 * H + k];
            dg[H + k] = dct * cprev[k];
            dg[2 * H + k] = dct * q[k];
            dg[3 * H + k] = dhb[k] * tc[k];
            dcb[k] = dct * q[H + k];
            dhb[k] = T(0);
          }
          act_bwd<T>(sigma, p, dg, dg, 2 * H);
          act_bwd<T>(phi, p + 2 * H, dg + 2 * H, dg + 2 * H, H);
          act_bwd<T>(sigma, p + 3 * H, dg + 3 * H, dg + 3 * H, H);
        } else {
          const T* __restrict__ hn = hn_p + bt * H;
          const T* __restrict__ hprev = t ? out_p + (bt - 1) * H : h0_p + b * H;
          T* __restrict__ dx = dgx_p + bt * GH;
          act_fwd<T>(sigma, p, q, 2 * H);
          act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            const T z = q[H + k];
            dx[2 * H + k] = dhb[k] * (T(1) - z);
            dx[H + k] = dhb[k] * (hprev[k] - q[2 * H + k]);
            dhb[k] = dhb[k] * z;
          }
          act_bwd<T>(phi, p + 2 * H, dx + 2 * H, dx + 2 * H, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            dx[k] = dx[2 * H + k] * hn[k];
            dg[2 * H + k] = dx[2 * H + k] * q[k];
          }
          act_bwd<T>(sigma, p, dx, dx, 2 * H);
          std::copy(dx, dx + 2 * H, dg);
        }
      }
      // dh += dG_t W_hh for this block's rows (dG_t rows are S*GH apart in dgh).
      recur(dgh_p + (r0 * S + t) * GH, S * GH, r1 - r0, T(1), dh_p + r0 * H, H);
    }
  });
}

// Returns {dgx, dW_hh, db_ih, db_hh, dh0, dc0}.
std::vector<at::Tensor> rec_backward(const at::Tensor& grad_out, const at::Tensor& grad_h,
                                     const at::Tensor& grad_c, const at::Tensor& w_hh,
                                     const at::Tensor& h0, const at::Tensor& c0,
                                     const at::Tensor& out, const at::Tensor& pre,
                                     const at::Tensor& c_all, const at::Tensor& hn_all,
                                     const at::Tensor& lengths, int64_t cell, int64_t phi,
                                     int64_t phi_c, int64_t sigma) {
  const int64_t B = out.size(0), S = out.size(1), H = out.size(2), GH = pre.size(2);
  at::NoGradGuard no_grad;
  auto opts = out.options();
  const at::Tensor& go = grad_out;  // any strides (read through them)
  at::Tensor dh = grad_h.contiguous().clone();
  at::Tensor dc = cell == LSTM ? grad_c.contiguous().clone() : empty0(out);
  at::Tensor dgh = at::empty({B, S, GH}, opts);
  at::Tensor dgx = cell == GRU ? at::empty({B, S, GH}, opts) : dgh;
  at::Tensor tmp = at::empty({B, 6 * H}, opts);
  at::Tensor h0c = h0.contiguous();
  at::Tensor c0c = cell == LSTM ? c0.contiguous() : empty0(out);
  at::Tensor len = lengths.to(at::kLong).contiguous();
  const int64_t* L = len.data_ptr<int64_t>();

  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnlab_rec_backward", [&] {
    backward_loop<scalar_t>(go, out, pre, c_all, hn_all, h0c, c0c, dh, dc, dgh, dgx, tmp, w_hh,
                            L, B, S, GH, H, cell, phi, phi_c, sigma);
  });
  // dW_hh = sum_{b,t} dG[b,t]^T h_{t-1}[b] as one matmul over the flattened (B*T) rows,
  // without building a shifted copy of the outputs: pair row r of dG with row r-1 of
  // out, then correct the rows where t = 0 (they met the previous sequence's last
  // output instead of h0) with one small (B-row) matmul.
  const at::Tensor dg_flat = dgh.view({B * S, GH});
  const at::Tensor out_flat = out.view({B * S, H});
  at::Tensor first = dgh.select(1, 0);  // (B, GH), t = 0 rows
  at::Tensor corr = h0c.clone();
  if (B > 1) corr.narrow(0, 1, B - 1).sub_(out.select(1, S - 1).narrow(0, 0, B - 1));
  at::Tensor dw = at::mm(first.t(), corr);
  if (B * S > 1) dw.addmm_(dg_flat.narrow(0, 1, B * S - 1).t(), out_flat.narrow(0, 0, B * S - 1));
  at::Tensor db = dg_flat.sum(0);
  at::Tensor db_ih = cell == GRU ? dgx.view({B * S, GH}).sum(0) : db;
  return {dgx, dw, db_ih, db, dh, dc};
}

}  // namespace

TORCH_LIBRARY(rnnlab_kernels, m) {
  m.def("rec_forward", &rec_forward);
  m.def("rec_backward", &rec_backward);
}
