// rnnlab variant kernel: the time loop of a layer with the cell variants of
// nn/variants.py (docs/equations.md, "Cell variants") in C++, with a hand-written backward.
//
// It extends recurrence.cpp's algorithm (read that first) with, per step:
// - LSTM: Greff et al.'s variants (cifg, nig, nfg, nog, niaf, noaf), peepholes
//   (a_i += p_i c_{t-1}, a_f += p_f c_{t-1}, a_o += p_o c_t) and a projection
//   h = W_hr (o * phi_c(c)) (one more product per step; dW_hr = dH~^T R after the loop);
// - every cell: recurrent dropout (one mask m (B, width of h) on the h_{t-1} that enters
//   the recurrent product; dW_hh = dG^T (H_prev * m), dh_{t-1} += (dG W_hh) * m) and
//   zoneout (s_t = k s_{t-1} + (1 - k) s~_t with per-step masks k (T, B, width) in
//   training, k = z everywhere in eval; ds_{t-1} += k ds_t, ds~_t = (1 - k) ds_t).
// - layer norm (Ba et al.): per row and step, LN(W u_t) and LN(U h_{t-1}) per gate block
//   and the LSTM's LN(c~_t) before phi_c; x^ and 1/std are saved, the backward runs LN's
//   backward per row and reduces the gains' and biases' gradients after the loop.
// The masks are drawn in Python (variant_recurrence.py) in the order the per-step loop
// draws them, so both paths see the same masks under a seed.
//
// Each step runs in phases per row block: (1) the recurrent product, (2) the gate math
// of every row, giving the candidate state h~ (or r = o * phi_c(c) with a projection),
// (3) the projection product, (4) zoneout, lengths and the output. The backward mirrors
// it: dh~, the projection's transposed product, the gate derivatives, W_hh's product.
#include <torch/library.h>

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
  const T* kh;    // (S, B, Hh) zoneout keep masks of h, or null (then z, maybe 0)
  const T* kc;    // (S, B, H) of c (LSTM)
  T z;            // eval zoneout: the keep probability everywhere (0: no zoneout)
  bool proj;
  const T *lnh_g, *lnh_b;  // (G, H) gains/biases of LN(U h) per block, or null (no LN)
  const T *lnc_g, *lnc_b;  // (H,) of LN(c~) (LSTM)
  const T *lnx_g, *lnx_b;  // (G, H) of LN(W u) per block
  bool ln() const { return lnh_g != nullptr; }
  bool zoned() const { return kh != nullptr || z != T(0); }
  T keep_h(int64_t t, int64_t b, int64_t k) const { return kh ? kh[(t * B + b) * Hh + k] : z; }
  T keep_c(int64_t t, int64_t b, int64_t k) const { return kc ? kc[(t * B + b) * H + k] : z; }
};

constexpr double kLnEps = 1e-5;  // variant_cells.LN_EPS

// y = LN(y) g + beta over its n units, in place (biased variance); x^ and 1/std are
// written to xhat and rstd when those are given.
template <typename T>
void ln_fwd(T* __restrict__ y, const T* __restrict__ g, const T* __restrict__ beta, int64_t n,
            T* __restrict__ xhat, T* rstd) {
  T mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
  for (int64_t k = 0; k < n; ++k) mean += y[k];
  mean /= T(n);
#pragma omp simd reduction(+ : var)
  for (int64_t k = 0; k < n; ++k) var += (y[k] - mean) * (y[k] - mean);
  const T rs = T(1) / std::sqrt(var / T(n) + T(kLnEps));
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) {
    const T xh = (y[k] - mean) * rs;
    if (xhat) xhat[k] = xh;
    y[k] = xh * g[k] + beta[k];
  }
  if (rstd) *rstd = rs;
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

// Forward phase 2 for row b at step t (t < L[b]): gate math, c update (LSTM), and the
// candidate state (h~ into hc, or r into hc when projecting).
template <typename T>
void forward_row(const Spec<T>& s, int64_t b, int64_t t, const T* __restrict__ x,
                 const T* __restrict__ r, const T* __restrict__ bs, const T* __restrict__ bh,
                 const T* __restrict__ bi, T* __restrict__ p,
                 T* __restrict__ q, const T* __restrict__ hprev, T* __restrict__ cb,
                 T* __restrict__ ct_save, T* __restrict__ cs_save, T* __restrict__ hn_save,
                 T* __restrict__ hc, T* xc_save, T* rc_save) {
  const int64_t H = s.H;
  if (s.cell == RNN || s.cell == IND) {  // IND: r = u * (m * h_{t-1}), filled by the loop
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) p[k] = x[k] + r[k] + bs[k];
    act_fwd<T>(s.phi, p, hc, H);
  } else if (s.cell == LSTM) {
#pragma omp simd
    for (int64_t k = 0; k < 4 * H; ++k) p[k] = x[k] + r[k] + bs[k];
    if (s.peep) {
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        p[k] += s.peep[k] * cb[k];
        p[H + k] += s.peep[H + k] * cb[k];
      }
    }
    T* ct = q + 4 * H;
    T* tc = q + 5 * H;
    T* cn = q + 6 * H;
    lstm_gates<T>(s, p, q, nullptr, cb, ct, cn, tc, nullptr, true, xc_save, rc_save);
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) hc[k] = q[3 * H + k] * tc[k];
    if (ct_save) std::copy(ct, ct + H, ct_save);
    if (s.zoned()) {
      for (int64_t k = 0; k < H; ++k) {
        const T kk = s.keep_c(t, b, k);
        cb[k] = kk * cb[k] + (T(1) - kk) * ct[k];
      }
    } else {
      std::copy(ct, ct + H, cb);
    }
    if (cs_save) std::copy(cb, cb + H, cs_save);
  } else {
#pragma omp simd
    for (int64_t k = 0; k < 2 * H; ++k) p[k] = x[k] + r[k] + bs[k];
    act_fwd<T>(s.sigma, p, q, 2 * H);
    const T* rn = r + 2 * H;  // W_hn (m * h) without b_hn
    T* hn = q + 3 * H;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) hn[k] = rn[k] + bh[2 * H + k];
    if (hn_save) std::copy(hn, hn + H, hn_save);
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) p[2 * H + k] = x[2 * H + k] + bi[2 * H + k] + q[k] * hn[k];
    act_fwd<T>(s.phi, p + 2 * H, q + 2 * H, H);
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      const T z = q[H + k];
      hc[k] = (T(1) - z) * q[2 * H + k] + z * hprev[k];  // the carry is not dropped
    }
  }
}

struct FwdBufs {
  at::Tensor gh, hin, hc, rb, tmp, xs;  // xs: LN(W u_t) rows (layer norm)
};

// x^ and 1/std of LN(U h) (B, T, G*H), (B, T, G), of LN(c~) (B, T, H), (B, T) and of
// LN(W u) (B, T, G*H), (B, T, G).
struct LnSaved {
  at::Tensor xh, rh, xc, rc, xx, rx;
};

template <typename T>
void forward_loop(const Spec<T>& s, const at::Tensor& gx, const at::Tensor& w_hh,
                  const at::Tensor& w_hr, const at::Tensor& b_ih, const at::Tensor& b_hh,
                  at::Tensor& out, at::Tensor& h, at::Tensor& c, at::Tensor& pre,
                  at::Tensor& ct_all, at::Tensor& cs_all, at::Tensor& hn_all, FwdBufs& buf,
                  LnSaved& ln, bool save) {
  const int64_t B = s.B, S = s.S, GH = s.GH, H = s.H, Hh = s.Hh;
  const at::Tensor b_sum = b_ih + b_hh;
  const T *gx_p = gx.data_ptr<T>(), *bs = b_sum.data_ptr<T>();
  const T *bi = b_ih.data_ptr<T>(), *bh = b_hh.data_ptr<T>();
  T *gh_p = buf.gh.data_ptr<T>(), *hin_p = ptr_or_null<T>(buf.hin);
  T *hc_p = buf.hc.data_ptr<T>(), *rb_p = ptr_or_null<T>(buf.rb), *tmp_p = buf.tmp.data_ptr<T>();
  T *out_p = out.data_ptr<T>(), *h_p = h.data_ptr<T>(), *c_p = ptr_or_null<T>(c);
  T *pre_p = pre.data_ptr<T>(), *ct_p = ptr_or_null<T>(ct_all);
  T *cs_p = ptr_or_null<T>(cs_all), *hn_p = ptr_or_null<T>(hn_all);
  const int64_t blocks = row_blocks(B);
  const int64_t rows = (B + blocks - 1) / blocks;
  PackBudget budget{save ? B * S * GH * static_cast<int64_t>(sizeof(T)) : INT64_MAX};
  const StepMatmul<T> recur = s.cell == IND ? StepMatmul<T>()
      : StepMatmul<T>(w_hh, /*transpose=*/true, rows, &budget);
  const StepMatmul<T> project = s.proj ? StepMatmul<T>(w_hr, true, rows, &budget) : StepMatmul<T>();
  const T* u = s.cell == IND ? w_hh.data_ptr<T>() : nullptr;
  const int64_t G = GH / H;
  T *xh_p = ptr_or_null<T>(ln.xh), *rh_p = ptr_or_null<T>(ln.rh);
  T *xc_p = ptr_or_null<T>(ln.xc), *rc_p = ptr_or_null<T>(ln.rc);
  T *xx_p = ptr_or_null<T>(ln.xx), *rx_p = ptr_or_null<T>(ln.rx);
  T* xs_p = ptr_or_null<T>(buf.xs);
  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < S; ++t) {
      if (s.cell == IND) {  // the elementwise "product" u * (m * h)
        for (int64_t b = r0; b < r1; ++b) {
          const T* m = s.drop ? s.drop + b * H : nullptr;
          const T* hb = h_p + b * H;
          T* r = gh_p + b * GH;
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) r[k] = u[k] * hb[k] * (m ? m[k] : T(1));
        }
      } else {
        const T* hsrc = h_p;
        if (s.drop) {  // the recurrent product reads m * h_{t-1}
          for (int64_t b = r0; b < r1; ++b)
#pragma omp simd
            for (int64_t k = 0; k < Hh; ++k) hin_p[b * Hh + k] = h_p[b * Hh + k] * s.drop[b * Hh + k];
          hsrc = hin_p;
        }
        recur(hsrc + r0 * Hh, Hh, r1 - r0, T(0), gh_p + r0 * GH, GH);
      }
      for (int64_t b = r0; b < r1; ++b) {
        const int64_t bt = b * S + t;
        if (t >= s.L[b]) {  // padded: keep the state (saved as is, so the backward reads finite values)
          if (save && ct_p) std::copy(c_p + b * H, c_p + (b + 1) * H, ct_p + bt * H);
          if (save && cs_p) std::copy(c_p + b * H, c_p + (b + 1) * H, cs_p + bt * H);
          if (xh_p) std::fill(xh_p + bt * GH, xh_p + (bt + 1) * GH, T(0));
          if (xx_p) std::fill(xx_p + bt * GH, xx_p + (bt + 1) * GH, T(0));
          if (xc_p) std::fill(xc_p + bt * H, xc_p + (bt + 1) * H, T(0));
          continue;
        }
        const T* x = gx_p + bt * GH;
        if (s.ln()) {
          T* xs = xs_p + b * GH;  // LN(W u_t) of this row
          std::copy(x, x + GH, xs);
          x = xs;
          for (int64_t g = 0; g < G; ++g) {
            const int64_t o = g * H;
            ln_fwd<T>(xs + o, s.lnx_g + o, s.lnx_b + o, H, xx_p ? xx_p + bt * GH + o : nullptr,
                      rx_p ? rx_p + bt * G + g : nullptr);
            ln_fwd<T>(gh_p + b * GH + o, s.lnh_g + o, s.lnh_b + o, H,
                      xh_p ? xh_p + bt * GH + o : nullptr, rh_p ? rh_p + bt * G + g : nullptr);
          }
        }
        T* dest = s.proj ? rb_p + b * H : hc_p + b * Hh;
        forward_row<T>(s, b, t, x, gh_p + b * GH, bs, bh, bi,
                       pre_p + (save ? bt : b) * GH, tmp_p + b * 7 * H, h_p + b * Hh,
                       c_p ? c_p + b * H : nullptr, save && ct_p ? ct_p + bt * H : nullptr,
                       save && cs_p ? cs_p + bt * H : nullptr,
                       save && hn_p ? hn_p + bt * H : nullptr, dest,
                       xc_p ? xc_p + bt * H : nullptr, rc_p ? rc_p + bt : nullptr);
      }
      if (s.proj) project(rb_p + r0 * H, H, r1 - r0, T(0), hc_p + r0 * Hh, Hh);
      for (int64_t b = r0; b < r1; ++b) {
        T* __restrict__ o = out_p + (b * S + t) * Hh;
        if (t >= s.L[b]) {
          std::fill(o, o + Hh, T(0));
          continue;
        }
        T* __restrict__ hb = h_p + b * Hh;
        const T* __restrict__ hcb = hc_p + b * Hh;
        if (s.zoned()) {
          for (int64_t k = 0; k < Hh; ++k) {
            const T kk = s.keep_h(t, b, k);
            hb[k] = kk * hb[k] + (T(1) - kk) * hcb[k];
          }
        } else {
          std::copy(hcb, hcb + Hh, hb);
        }
        std::copy(hb, hb + Hh, o);
      }
    }
  });
}

template <typename T>
Spec<T> make_spec(int64_t B, int64_t S, int64_t GH, int64_t H, int64_t Hh, int64_t cell,
                  int64_t phi, int64_t phi_c, int64_t sigma, int64_t variant, const int64_t* L,
                  const at::Tensor& peep, const at::Tensor& drop, const at::Tensor& kh,
                  const at::Tensor& kc, double z, bool proj, const std::vector<at::Tensor>& ln) {
  Spec<T> s{B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant, L,
            ptr_or_null<T>(peep), ptr_or_null<T>(drop), ptr_or_null<T>(kh),
            ptr_or_null<T>(kc), static_cast<T>(kh.numel() ? 0.0 : z), proj,
            ptr_or_null<T>(ln[0]), ptr_or_null<T>(ln[1]), ptr_or_null<T>(ln[2]),
            ptr_or_null<T>(ln[3]), ptr_or_null<T>(ln[4]), ptr_or_null<T>(ln[5])};
  return s;
}

void check_inputs(const at::Tensor& gx, int64_t cell, int64_t GH, int64_t H) {
  TORCH_CHECK(gx.dim() == 3 && gx.is_contiguous(), "gx must be a contiguous (B, T, G*H) tensor");
  TORCH_CHECK(GH == gates_of(cell) * H, "gx width does not match the cell");
}

// gx (B, T, G*H) contiguous, W u without bias. Returns {out, h_T, c_T, pre, ct_all,
// cs_all, hn_all}: pre the complete pre-activations (biases, peepholes), ct_all the new
// cells c~_t, cs_all the zoned cell states (empty without zoneout: then c_t = c~_t),
// and with layer norm x^, 1/std of LN(U h) per block, of LN(c~) and of LN(W u) per block.
// ln_params: LN(U h)'s gain and bias (G, H), LN(c~)'s (H,), LN(W u)'s (G, H) (all
// empty: no layer norm).
std::vector<at::Tensor> var_forward(const at::Tensor& gx, const at::Tensor& w_hh,
                                    const at::Tensor& b_ih, const at::Tensor& b_hh,
                                    const at::Tensor& h0, const at::Tensor& c0,
                                    const at::Tensor& peep, const at::Tensor& w_hr,
                                    const at::Tensor& drop, const at::Tensor& kh,
                                    const at::Tensor& kc, double z, const at::Tensor& lengths,
                                    int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
                                    int64_t variant, std::vector<at::Tensor> ln_params,
                                    bool save) {
  const int64_t B = gx.size(0), S = gx.size(1), GH = gx.size(2);
  const int64_t H = GH / gates_of(cell), Hh = h0.size(1);
  const bool proj = w_hr.numel() > 0;
  check_inputs(gx, cell, GH, H);
  TORCH_CHECK(proj || Hh == H, "h0 width must be the hidden size without a projection");
  at::NoGradGuard no_grad;
  auto opts = gx.options();
  const bool lstm = cell == LSTM, zoned = kh.numel() > 0 || z != 0.0;
  at::Tensor out = at::empty({B, S, Hh}, opts);
  at::Tensor h = h0.contiguous().clone();
  at::Tensor c = lstm ? c0.contiguous().clone() : empty0(gx);
  at::Tensor pre = at::empty({B, save ? S : 1, GH}, opts);
  at::Tensor ct_all = (save && lstm) ? at::empty({B, S, H}, opts) : empty0(gx);
  at::Tensor cs_all = (save && lstm && zoned) ? at::empty({B, S, H}, opts) : empty0(gx);
  at::Tensor hn_all = (save && cell == GRU) ? at::empty({B, S, H}, opts) : empty0(gx);
  FwdBufs buf{at::empty({B, GH}, opts), drop.numel() ? at::empty({B, Hh}, opts) : empty0(gx),
              at::zeros({B, Hh}, opts), proj ? at::zeros({B, H}, opts) : empty0(gx),
              at::empty({B, 7 * H}, opts)};
  const bool ln = ln_params.at(0).numel() > 0;
  buf.xs = ln ? at::empty({B, GH}, opts) : empty0(gx);
  for (auto& t : ln_params) t = t.contiguous();
  const int64_t G = gates_of(cell);
  LnSaved lns{(save && ln) ? at::empty({B, S, GH}, opts) : empty0(gx),
              (save && ln) ? at::empty({B, S, G}, opts) : empty0(gx),
              (save && ln && lstm) ? at::empty({B, S, H}, opts) : empty0(gx),
              (save && ln && lstm) ? at::empty({B, S}, opts) : empty0(gx),
              (save && ln) ? at::empty({B, S, GH}, opts) : empty0(gx),
              (save && ln) ? at::empty({B, S, G}, opts) : empty0(gx)};
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor whh = w_hh.contiguous(), whr = w_hr.contiguous();
  const at::Tensor pe = peep.contiguous(), dr = drop.contiguous();
  const at::Tensor khc = kh.contiguous(), kcc = kc.contiguous();
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnlab_var_forward", [&] {
    const Spec<scalar_t> s = make_spec<scalar_t>(B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant,
                                                 len.data_ptr<int64_t>(), pe, dr, khc, kcc, z, proj,
                                                 ln_params);
    forward_loop<scalar_t>(s, gx, whh, whr, b_ih.contiguous(), b_hh.contiguous(), out, h, c, pre,
                           ct_all, cs_all, hn_all, buf, lns, save);
  });
  return {out, h, c, pre, ct_all, cs_all, hn_all, lns.xh, lns.rh, lns.xc, lns.rc, lns.xx, lns.rx};
}

// Backward phase A for row b at step t < L[b]: add the output gradient, split dh into
// the zoneout carry (left in dh) and dh~ (written to dht).
template <typename T>
void split_dh(const Spec<T>& s, int64_t b, int64_t t, const T* gob, int64_t gs2,
              T* __restrict__ dhb, T* __restrict__ dht) {
  const int64_t Hh = s.Hh;
  if (gs2 == 1) {
#pragma omp simd
    for (int64_t k = 0; k < Hh; ++k) dhb[k] += gob[k];
  } else {  // e.g. the stride-0 gradient of out.sum(): never materialised
    for (int64_t k = 0; k < Hh; ++k) dhb[k] += gob[k * gs2];
  }
  if (s.zoned()) {
    for (int64_t k = 0; k < Hh; ++k) {
      const T kk = s.keep_h(t, b, k);
      dht[k] = (T(1) - kk) * dhb[k];
      dhb[k] = kk * dhb[k];
    }
  } else {
    std::copy(dhb, dhb + Hh, dht);
    std::fill(dhb, dhb + Hh, T(0));
  }
}

struct BwdPtrs {
  const void *pre, *out, *ct, *cs, *hn, *h0, *c0;
};

// Backward phase B for row b at step t < L[b]: d is dL/dh~ (dL/dr with a projection);
// writes the gate gradients dg (and GRU's dx), updates dc and adds the carries to dh.
template <typename T>
void backward_row(const Spec<T>& s, int64_t b, int64_t t, const T* __restrict__ d,
                  const T* __restrict__ p, const T* __restrict__ cp, const T* __restrict__ ct,
                  const T* __restrict__ hn, const T* __restrict__ hprev,
                  T* __restrict__ q, T* __restrict__ dg, T* __restrict__ dx,
                  T* __restrict__ dhb, T* __restrict__ dcb, T* __restrict__ r_save,
                  const T* xc, T rc, T* dcn_save) {
  const int64_t H = s.H;
  if (s.cell == RNN || s.cell == IND) {
    act_bwd<T>(s.phi, p, d, dg, H);  // IND: the loop adds u * dG to dh
  } else if (s.cell == LSTM) {
    T* dq = q + 4 * H;
    T* tc = q + 8 * H;
    T* dtc = q + 9 * H;
    T* dcl = q + 10 * H;  // dL/dc~ through h~ (through LN(c~) with layer norm)
    T* cn = q + 11 * H;
    if (s.ln()) {
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) cn[k] = xc[k] * s.lnc_g[k] + s.lnc_b[k];
    }
    // forward=false: lstm_gates reads p, ct and cn, writes only q, dq, tc, dtc
    lstm_gates<T>(s, const_cast<T*>(p), q, dq, cp, const_cast<T*>(ct), cn, tc, dtc, false);
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) dcl[k] = d[k] * q[3 * H + k] * dtc[k];
    if (s.ln()) {
      std::copy(dcl, dcl + H, dcn_save);
      ln_bwd<T>(dcl, s.lnc_g, xc, rc, H, dcl);
    }
    const T cf = s.variant == CIFG ? T(1) : T(0);
    const bool peep = s.peep != nullptr;
    const T* pi = s.peep;
    const T* pf = peep ? s.peep + H : nullptr;
    const T* po = peep ? s.peep + 2 * H : nullptr;
    for (int64_t k = 0; k < H; ++k) {
      T dct = dcl[k];
      if (s.zoned()) {
        const T kk = s.keep_c(t, b, k);
        dct += (T(1) - kk) * dcb[k];
        dcb[k] = kk * dcb[k];
      } else {
        dct += dcb[k];
        dcb[k] = T(0);
      }
      const T dao = d[k] * tc[k] * dq[3 * H + k];
      if (peep) dct += dao * po[k];
      const T di = dct * q[2 * H + k];
      const T dai = di * dq[k];
      const T daf = (dct * cp[k] - cf * di) * dq[H + k];
      dg[k] = dai;
      dg[H + k] = daf;
      dg[2 * H + k] = dct * q[k] * dq[2 * H + k];
      dg[3 * H + k] = dao;
      T dcp = dct * q[H + k];
      if (peep) dcp += dai * pi[k] + daf * pf[k];
      dcb[k] += dcp;
      if (r_save) r_save[k] = q[3 * H + k] * tc[k];
    }
  } else {
    T* dq = q + 3 * H;  // q: r z n, dq: r' z' n'
    act_both<T>(s.sigma, p, q, dq, 2 * H);
    act_both<T>(s.phi, p + 2 * H, q + 2 * H, dq + 2 * H, H);
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      const T z = q[H + k];
      const T dn = d[k] * (T(1) - z) * dq[2 * H + k];
      dx[k] = dn * hn[k] * dq[k];
      dx[H + k] = d[k] * (hprev[k] - q[2 * H + k]) * dq[H + k];
      dx[2 * H + k] = dn;
      dg[k] = dx[k];
      dg[H + k] = dx[H + k];
      dg[2 * H + k] = dn * q[k];
      dhb[k] += d[k] * z;
    }
  }
}

struct BwdBufs {
  // with layer norm dR: dL/d(U h), dX: dL/d(W u) (LN's input), dcn: dL/dLN(c~)
  at::Tensor dh, dc, dgh, dgx, dht, dr, rr, mm, tmp, dR, dcn, dX;
};

template <typename T>
void backward_loop(const Spec<T>& s, const at::Tensor& go, const at::Tensor& out,
                   const at::Tensor& pre, const at::Tensor& ct_all, const at::Tensor& cs_all,
                   const at::Tensor& hn_all, const at::Tensor& h0c, const at::Tensor& c0c,
                   const at::Tensor& w_hh, const at::Tensor& w_hr, const LnSaved& ln,
                   BwdBufs& buf) {
  const int64_t B = s.B, S = s.S, GH = s.GH, H = s.H, Hh = s.Hh;
  const int64_t gs0 = go.stride(0), gs1 = go.stride(1), gs2 = go.stride(2);
  const T *go_p = go.data_ptr<T>(), *out_p = out.data_ptr<T>(), *pre_p = pre.data_ptr<T>();
  const T *ct_p = ptr_or_null<T>(ct_all), *hn_p = ptr_or_null<T>(hn_all);
  const T* cs_p = cs_all.numel() ? cs_all.data_ptr<T>() : ct_p;  // no zoneout: c_t = c~_t
  const T *h0_p = h0c.data_ptr<T>(), *c0_p = ptr_or_null<T>(c0c);
  T *dh_p = buf.dh.data_ptr<T>(), *dc_p = ptr_or_null<T>(buf.dc);
  T *dgh_p = buf.dgh.data_ptr<T>(), *dgx_p = buf.dgx.data_ptr<T>();
  T *dht_p = buf.dht.data_ptr<T>(), *dr_p = ptr_or_null<T>(buf.dr);
  T *rr_p = ptr_or_null<T>(buf.rr), *mm_p = ptr_or_null<T>(buf.mm);
  T* tmp_p = buf.tmp.data_ptr<T>();
  const int64_t blocks = row_blocks(B);
  const int64_t rows = (B + blocks - 1) / blocks;
  PackBudget budget{B * S * GH * static_cast<int64_t>(sizeof(T))};  // as in the forward
  const StepMatmul<T> recur = s.cell == IND ? StepMatmul<T>()
      : StepMatmul<T>(w_hh, /*transpose=*/false, rows, &budget);
  const StepMatmul<T> project = s.proj ? StepMatmul<T>(w_hr, false, rows, &budget) : StepMatmul<T>();
  const T* u = s.cell == IND ? w_hh.data_ptr<T>() : nullptr;
  const int64_t G = GH / H;
  const T *xh_p = ptr_or_null<T>(ln.xh), *rh_p = ptr_or_null<T>(ln.rh);
  const T *xc_p = ptr_or_null<T>(ln.xc), *rc_p = ptr_or_null<T>(ln.rc);
  T *dR_p = ptr_or_null<T>(buf.dR), *dcn_p = ptr_or_null<T>(buf.dcn);
  T* dX_p = ptr_or_null<T>(buf.dX);
  const T *xx_p = ptr_or_null<T>(ln.xx), *rx_p = ptr_or_null<T>(ln.rx);
  // dh~ rows: with a projection they are kept (B, S, P) for dW_hr, else one (B, Hh) row each
  const int64_t dht_rs = s.proj ? S * Hh : Hh;
  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
    for (int64_t t = S - 1; t >= 0; --t) {
      const int64_t dht_off = s.proj ? t * Hh : 0;
      for (int64_t b = r0; b < r1; ++b) {
        const int64_t bt = b * S + t;
        T* dht = dht_p + b * dht_rs + dht_off;
        if (t >= s.L[b]) {  // padded: gradients pass through the unchanged state
          std::fill(dgh_p + bt * GH, dgh_p + (bt + 1) * GH, T(0));
          if (s.cell == GRU) std::fill(dgx_p + bt * GH, dgx_p + (bt + 1) * GH, T(0));
          std::fill(dht, dht + Hh, T(0));
          if (rr_p) std::fill(rr_p + bt * H, rr_p + (bt + 1) * H, T(0));
          if (dR_p) std::fill(dR_p + bt * GH, dR_p + (bt + 1) * GH, T(0));
          if (dX_p) std::fill(dX_p + bt * GH, dX_p + (bt + 1) * GH, T(0));
          if (dcn_p) std::fill(dcn_p + bt * H, dcn_p + (bt + 1) * H, T(0));
          continue;
        }
        split_dh<T>(s, b, t, go_p + b * gs0 + t * gs1, gs2, dh_p + b * Hh, dht);
      }
      if (s.proj) project(dht_p + r0 * dht_rs + dht_off, dht_rs, r1 - r0, T(0), dr_p + r0 * H, H);
      for (int64_t b = r0; b < r1; ++b) {
        if (t >= s.L[b]) continue;
        const int64_t bt = b * S + t;
        const T* d = s.proj ? dr_p + b * H : dht_p + b * dht_rs + dht_off;
        const T* cp = nullptr;
        if (s.cell == LSTM) cp = t ? cs_p + (bt - 1) * H : c0_p + b * H;
        const T* hprev = t ? out_p + (bt - 1) * Hh : h0_p + b * Hh;
        backward_row<T>(s, b, t, d, pre_p + bt * GH, cp, ct_p ? ct_p + bt * H : nullptr,
                        hn_p ? hn_p + bt * H : nullptr, hprev, tmp_p + b * 12 * H,
                        dgh_p + bt * GH, dgx_p + bt * GH, dh_p + b * Hh,
                        dc_p ? dc_p + b * H : nullptr, rr_p ? rr_p + bt * H : nullptr,
                        xc_p ? xc_p + bt * H : nullptr, rc_p ? rc_p[bt] : T(0),
                        dcn_p ? dcn_p + bt * H : nullptr);
        if (s.ln()) {  // dR, dX: LN's backward of dG (GRU: of dx), block by block
          const T* dxs = dgx_p + bt * GH;  // = dgh for all cells but GRU
          for (int64_t g = 0; g < G; ++g) {
            const int64_t o = bt * GH + g * H;
            ln_bwd<T>(dgh_p + o, s.lnh_g + g * H, xh_p + o, rh_p[bt * G + g], H, dR_p + o);
            ln_bwd<T>(dxs + g * H, s.lnx_g + g * H, xx_p + o, rx_p[bt * G + g], H, dX_p + o);
          }
        }
      }
      const T* src = s.ln() ? dR_p : dgh_p;  // the gradient of the step's product
      if (s.cell == IND) {  // dh_{t-1} += u * dR * m
        for (int64_t b = r0; b < r1; ++b) {
          const T* m = s.drop ? s.drop + b * H : nullptr;
          const T* dg = src + (b * S + t) * GH;
          T* dhb = dh_p + b * H;
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) dhb[k] += u[k] * dg[k] * (m ? m[k] : T(1));
        }
        continue;
      }
      const T* dg_rows = src + (r0 * S + t) * GH;
      if (s.drop) {  // dh_{t-1} += (dG W_hh) * m
        recur(dg_rows, S * GH, r1 - r0, T(0), mm_p + r0 * Hh, Hh);
        for (int64_t b = r0; b < r1; ++b)
#pragma omp simd
          for (int64_t k = 0; k < Hh; ++k) dh_p[b * Hh + k] += mm_p[b * Hh + k] * s.drop[b * Hh + k];
      } else {
        recur(dg_rows, S * GH, r1 - r0, T(1), dh_p + r0 * Hh, Hh);
      }
    }
  });
}

// Returns {dgx, dW_hh, db_ih, db_hh, dh0, dc0, dW_hr, dpeep, and for layer norm the
// gradients of LN(U h)'s gain and bias (G, H), LN(c~)'s (H,) and LN(W u)'s (G, H)}.
std::vector<at::Tensor> var_backward(
    const at::Tensor& grad_out, const at::Tensor& grad_h, const at::Tensor& grad_c,
    const at::Tensor& w_hh, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& peep,
    const at::Tensor& w_hr, const at::Tensor& drop, const at::Tensor& kh, const at::Tensor& kc,
    double z, const at::Tensor& out, const at::Tensor& pre, const at::Tensor& ct_all,
    const at::Tensor& cs_all, const at::Tensor& hn_all, const at::Tensor& lengths, int64_t cell,
    int64_t phi, int64_t phi_c, int64_t sigma, int64_t variant,
    std::vector<at::Tensor> ln_params, std::vector<at::Tensor> ln_saved) {
  const int64_t B = out.size(0), S = out.size(1), Hh = out.size(2), GH = pre.size(2);
  const int64_t H = GH / gates_of(cell);
  const bool lstm = cell == LSTM, proj = w_hr.numel() > 0;
  at::NoGradGuard no_grad;
  auto opts = out.options();
  BwdBufs buf;
  buf.dh = grad_h.contiguous().clone();
  buf.dc = lstm ? grad_c.contiguous().clone() : empty0(out);
  buf.dgh = at::empty({B, S, GH}, opts);
  buf.dgx = cell == GRU ? at::empty({B, S, GH}, opts) : buf.dgh;
  buf.dht = proj ? at::empty({B, S, Hh}, opts) : at::empty({B, Hh}, opts);
  buf.dr = proj ? at::empty({B, H}, opts) : empty0(out);
  buf.rr = proj ? at::empty({B, S, H}, opts) : empty0(out);
  buf.mm = drop.numel() ? at::empty({B, Hh}, opts) : empty0(out);
  buf.tmp = at::empty({B, 12 * H}, opts);
  const bool ln = ln_params.at(0).numel() > 0;
  for (auto& t : ln_params) t = t.contiguous();
  buf.dR = ln ? at::empty({B, S, GH}, opts) : empty0(out);
  buf.dcn = ln && lstm ? at::empty({B, S, H}, opts) : empty0(out);
  buf.dX = ln ? at::empty({B, S, GH}, opts) : empty0(out);
  const LnSaved lns{ln_saved.at(0), ln_saved.at(1), ln_saved.at(2),
                    ln_saved.at(3), ln_saved.at(4), ln_saved.at(5)};
  const at::Tensor h0c = h0.contiguous(), c0c = lstm ? c0.contiguous() : empty0(out);
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor whh = w_hh.contiguous(), whr = w_hr.contiguous();
  const at::Tensor pe = peep.contiguous(), dr = drop.contiguous();
  const at::Tensor khc = kh.contiguous(), kcc = kc.contiguous();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnlab_var_backward", [&] {
    const Spec<scalar_t> s = make_spec<scalar_t>(B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant,
                                                 len.data_ptr<int64_t>(), pe, dr, khc, kcc, z, proj,
                                                 ln_params);
    backward_loop<scalar_t>(s, grad_out, out, pre, ct_all, cs_all, hn_all, h0c, c0c, whh, whr, lns,
                            buf);
  });
  // dW_hh = sum_{b,t} dG^T (m * h_{t-1}) as one product over the (B*T) rows.
  at::Tensor h_prev = at::cat({h0c.unsqueeze(1), out.narrow(1, 0, S - 1)}, 1);
  if (drop.numel()) h_prev = h_prev * dr.unsqueeze(1);
  const at::Tensor dg_flat = buf.dgh.view({B * S, GH});
  const at::Tensor& dprod = ln ? buf.dR : buf.dgh;  // the gradient of U h (of LN's input)
  at::Tensor dw = cell == IND ? (dprod * h_prev).sum({0, 1})
                              : at::mm(dprod.view({B * S, GH}).t(), h_prev.reshape({B * S, Hh}));
  at::Tensor db = dg_flat.sum(0);
  at::Tensor db_ih = cell == GRU ? buf.dgx.view({B * S, GH}).sum(0) : db;
  at::Tensor dw_hr = proj ? at::mm(buf.dht.view({B * S, Hh}).t(), buf.rr.view({B * S, H}))
                          : empty0(out);
  at::Tensor dpeep = empty0(out);
  if (lstm && peep.numel()) {  // dp_i, dp_f pair with c_{t-1}, dp_o with c~_t
    const at::Tensor cs = cs_all.numel() ? cs_all : ct_all;
    const at::Tensor c_prev = at::cat({c0c.unsqueeze(1), cs.narrow(1, 0, S - 1)}, 1);
    const at::Tensor dg4 = buf.dgh.view({B, S, 4, H});
    dpeep = at::stack({(dg4.select(2, 0) * c_prev).sum({0, 1}),
                       (dg4.select(2, 1) * c_prev).sum({0, 1}),
                       (dg4.select(2, 3) * ct_all).sum({0, 1})});
  }
  // LN gains and biases: dgamma = sum dY * x^, dbeta = sum dY (dY: the LN output's gradient)
  std::vector<at::Tensor> dln(6, empty0(out));
  if (ln) {
    const int64_t G = GH / H;
    dln[0] = (buf.dgh * lns.xh).sum({0, 1}).view({G, H});
    dln[1] = db.view({G, H}).clone();
    if (lstm) {
      dln[2] = (buf.dcn * lns.xc).sum({0, 1});
      dln[3] = buf.dcn.sum({0, 1});
    }
    dln[4] = (buf.dgx * lns.xx).sum({0, 1}).view({G, H});
    dln[5] = db_ih.view({G, H}).clone();
  }
  return {ln ? buf.dX : buf.dgx, dw, db_ih, db, buf.dh, buf.dc, dw_hr, dpeep,
          dln[0], dln[1], dln[2], dln[3], dln[4], dln[5]};
}

}  // namespace

TORCH_LIBRARY(rnnlab_variant_kernels, m) {
  m.def("var_forward", &var_forward);
  m.def("var_backward", &var_backward);
}
