// Shared by variant_recurrence.cpp (forward, op registration) and variant_backward.cpp:
// the run-time description of a variant layer (Spec), layer norm per row, the LSTM
// variants' gate math, and the two entry points. See variant_recurrence.cpp.
#pragma once

#include <torch/library.h>  // before common.h: at::NoGradGuard

#include "common.h"

namespace {

// rnnlab.nn.variants.LSTM_VARIANTS order.
enum LstmVariant : int64_t { VANILLA = 0, CIFG = 1, NIG = 2, NFG = 3, NOG = 4, NIAF = 5, NOAF = 6 };

int64_t gates_of(int64_t cell) { return cell == LSTM ? 4 : (cell == GRU ? 3 : 1); }

template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.numel() ? t.data_ptr<T>() : nullptr;
}

// The run-time description of one layer's loop.
template <typename T>
struct Spec {
  int64_t B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant;
  const int64_t* L;
  const T* peep;  // (3, H): p_i, p_f, p_o, or null
  const T* drop;  // (B, Hh) recurrent-dropout mask, or null
  const uint8_t* kh;  // (S, B, Hh) zoneout keep masks of h (bool), or null (then z, maybe 0)
  const uint8_t* kc;  // (S, B, H) of c (LSTM)
  T z;            // eval zoneout: the keep probability everywhere (0: no zoneout)
  bool proj;
  const T *lnh_g, *lnh_b;  // (G, H) gains/biases of LN(U h) per block, or null (no LN)
  const T *lnc_g, *lnc_b;  // (H,) of LN(c~) (LSTM)
  const T *lnx_g, *lnx_b;  // (G, H) of LN(W u) per block
  bool ln() const { return lnh_g != nullptr; }
  bool zoned() const { return kh != nullptr || z != T(0); }
  const T* zrow;  // max(H, Hh) copies of z: the keep "mask" of eval
  T* kscr;        // (B, 2 max(H, Hh)): each row's keep masks of the step as T
  // The keep factors of h and c at step t, row b: the bool mask widened into the row's
  // scratch (a mask costs a quarter of a float mask's memory), in eval z for every unit.
  const T* keep_h(int64_t t, int64_t b) const { return widen(kh, t, b, Hh, 0); }
  const T* keep_c(int64_t t, int64_t b) const { return widen(kc, t, b, H, 1); }
  const T* widen(const uint8_t* m, int64_t t, int64_t b, int64_t n, int64_t half) const {
    if (!m) return zrow;
    const int64_t w = std::max(H, Hh);
    T* __restrict__ out = kscr + (2 * b + half) * w;
    const uint8_t* __restrict__ row = m + (t * B + b) * n;
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) out[k] = static_cast<T>(row[k]);
    return out;
  }
};

inline const uint8_t* mask_or_null(const at::Tensor& m) {
  if (!m.numel()) return nullptr;
  TORCH_CHECK(m.scalar_type() == at::kBool && m.is_contiguous(),
              "zoneout keep masks must be contiguous bool tensors");
  return reinterpret_cast<const uint8_t*>(m.data_ptr<bool>());
}

constexpr double kLnEps = 1e-5;  // variant_cells.LN_EPS

// x^ of one unit: (y - mean) / std. One copy for ln_fwd and ln_xhat, so the backward's
// rebuilt x^ is bitwise the forward's.
template <typename T>
__attribute__((always_inline)) inline T ln_norm(T y, T mu, T rs) {
  return (y - mu) * rs;
}

// y = LN(y) g + beta over its n units, in place (biased variance); x^, 1/std and the
// mean are written to xhat, rstd and mu_out when those are given.
template <typename T>
void ln_fwd(T* __restrict__ y, const T* __restrict__ g, const T* __restrict__ beta, int64_t n,
            T* __restrict__ xhat, T* rstd, T* mu_out = nullptr) {
  double mean = 0, var = 0;  // double sums: float32 ones lose x^ when var << mean^2
#pragma omp simd reduction(+ : mean)
  for (int64_t k = 0; k < n; ++k) mean += y[k];
  mean /= double(n);
#pragma omp simd reduction(+ : var)
  for (int64_t k = 0; k < n; ++k) var += (y[k] - mean) * (y[k] - mean);
  const double rsd = 1.0 / std::sqrt(var / double(n) + kLnEps);
  const T rs = T(rsd), mu = T(mean);
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) {
    const T xh = ln_norm<T>(y[k], mu, rs);
    if (xhat) xhat[k] = xh;
    y[k] = xh * g[k] + beta[k];
  }
  if (rstd) *rstd = rs;
  if (mu_out) *mu_out = mu;
}

// ln_fwd's x^, rebuilt from its input u (n units) and the saved mean and 1/std.
template <typename T>
void ln_xhat(const T* __restrict__ u, T mu, T rs, int64_t n, T* __restrict__ xhat) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) xhat[k] = ln_norm<T>(u[k], mu, rs);
}

// dx = rstd (dy g - mean(dy g) - x^ mean(dy g x^)), the gradient through ln_fwd's input;
// dx may alias dy.
template <typename T>
void ln_bwd(const T* dy, const T* __restrict__ g, const T* __restrict__ xhat, T rs, int64_t n,
            T* dx) {
  T m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
  for (int64_t k = 0; k < n; ++k) {
    m1 += dy[k] * g[k];
    m2 += dy[k] * g[k] * xhat[k];
  }
  m1 /= T(n);
  m2 /= T(n);
  // element k reads dy[k] before writing dx[k]: vectorising is safe even when they alias
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dx[k] = rs * (dy[k] * g[k] - m1 - xhat[k] * m2);
}

// LSTM gate values q = (i, f, g, o) from the pre-activations p (peepholes already in
// a_i, a_f; a_o gets p_o c~ here), the new cell c~ and r = o * phi_c(c~). With d != null
// also the derivatives dq = (i', f', g', o') and tc, dtc = phi_c(cn), phi_c'(cn), where cn
// is c~, or with layer norm LN(c~) (the forward computes it into cn, saving x^ and 1/std
// to xc, rc; the backward passes it in).
template <typename T>
void lstm_gates(const Spec<T>& s, T* __restrict__ p, T* __restrict__ q, T* __restrict__ dq,
                const T* __restrict__ cp, T* __restrict__ ct, T* __restrict__ cn,
                T* __restrict__ tc, T* __restrict__ dtc, bool forward, T* xc = nullptr,
                T* rc = nullptr) {
  const int64_t H = s.H, v = s.variant;
  auto gate = [&](int64_t a, int64_t off) {
    if (dq) {
      act_both<T>(a, p + off, q + off, dq + off, H);
    } else {
      act_fwd<T>(a, p + off, q + off, H);
    }
  };
  auto constant = [&](int64_t off, T value) {
    std::fill(q + off, q + off + H, value);
    if (dq) std::fill(dq + off, dq + off + H, T(0));
  };
  if (v == NFG) constant(H, T(1)); else gate(s.sigma, H);
  if (v == CIFG) {
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) q[k] = T(1) - q[H + k];
    if (dq) std::fill(dq, dq + H, T(0));  // i has no parameters of its own: see df
  } else if (v == NIG) {
    constant(0, T(1));
  } else {
    gate(s.sigma, 0);
  }
  if (v == NIAF) {
    std::copy(p + 2 * H, p + 3 * H, q + 2 * H);
    if (dq) std::fill(dq + 2 * H, dq + 3 * H, T(1));
  } else {
    gate(s.phi, 2 * H);
  }
  if (forward) {
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) ct[k] = q[H + k] * cp[k] + q[k] * q[2 * H + k];
    if (s.peep) {
      const T* po = s.peep + 2 * H;
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) p[3 * H + k] += po[k] * ct[k];
    }
  }
  if (v == NOG) constant(3 * H, T(1)); else gate(s.sigma, 3 * H);
  if (s.ln() && forward) {
    std::copy(ct, ct + H, cn);
    ln_fwd<T>(cn, s.lnc_g, s.lnc_b, H, xc, rc);
  }
  const T* cin = s.ln() ? cn : ct;
  if (v == NOAF) {
    std::copy(cin, cin + H, tc);
    if (dtc) std::fill(dtc, dtc + H, T(1));
  } else if (dtc) {
    act_both<T>(s.phi_c, cin, tc, dtc, H);
  } else {
    act_fwd<T>(s.phi_c, cin, tc, H);
  }
}

// x^ and 1/std of LN(U h) (B, T, G*H), (B, T, G), of LN(c~) (B, T, H), (B, T); of LN(W u)
// the input xx = W u itself (B, T, G*H: the backward rebuilds x^ from it, so the forward
// writes no third (B, T, G*H) tensor; empty in the forward's result, where Python puts gx),
// 1/std rx and the mean mx (B, T, G).
struct LnSaved {
  at::Tensor xh, rh, xc, rc, xx, rx, mx;
};


template <typename T>
Spec<T> make_spec(int64_t B, int64_t S, int64_t GH, int64_t H, int64_t Hh, int64_t cell,
                  int64_t phi, int64_t phi_c, int64_t sigma, int64_t variant, const int64_t* L,
                  const at::Tensor& peep, const at::Tensor& drop, const at::Tensor& kh,
                  const at::Tensor& kc, double z, bool proj, const std::vector<at::Tensor>& ln,
                  const at::Tensor& zrow, const at::Tensor& kscr) {
  Spec<T> s{B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant, L,
            ptr_or_null<T>(peep), ptr_or_null<T>(drop), mask_or_null(kh),
            mask_or_null(kc), static_cast<T>(kh.numel() ? 0.0 : z), proj,
            ptr_or_null<T>(ln[0]), ptr_or_null<T>(ln[1]), ptr_or_null<T>(ln[2]),
            ptr_or_null<T>(ln[3]), ptr_or_null<T>(ln[4]), ptr_or_null<T>(ln[5]),
            zrow.data_ptr<T>(), ptr_or_null<T>(kscr)};
  return s;
}

void check_inputs(const at::Tensor& gx, int64_t cell, int64_t GH, int64_t H) {
  TORCH_CHECK(gx.dim() == 3 && gx.is_contiguous(), "gx must be a contiguous (B, T, G*H) tensor");
  TORCH_CHECK(GH == gates_of(cell) * H, "gx width does not match the cell");
}

}  // namespace

namespace rnnlab_variant {

std::vector<at::Tensor> var_forward(const at::Tensor& gx, const at::Tensor& w_hh,
                                    const at::Tensor& b_ih, const at::Tensor& b_hh,
                                    const at::Tensor& h0, const at::Tensor& c0,
                                    const at::Tensor& peep, const at::Tensor& w_hr,
                                    const at::Tensor& drop, const at::Tensor& kh,
                                    const at::Tensor& kc, double z, const at::Tensor& lengths,
                                    int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
                                    int64_t variant, std::vector<at::Tensor> ln_params,
                                    bool save);

std::vector<at::Tensor> var_backward(
    const at::Tensor& grad_out, const at::Tensor& grad_h, const at::Tensor& grad_c,
    const at::Tensor& w_hh, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& peep,
    const at::Tensor& w_hr, const at::Tensor& drop, const at::Tensor& kh, const at::Tensor& kc,
    double z, const at::Tensor& out, const at::Tensor& pre, const at::Tensor& ct_all,
    const at::Tensor& cs_all, const at::Tensor& hn_all, const at::Tensor& lengths, int64_t cell,
    int64_t phi, int64_t phi_c, int64_t sigma, int64_t variant,
    std::vector<at::Tensor> ln_params, std::vector<at::Tensor> ln_saved);

}  // namespace rnnlab_variant
