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
// Forward here; backward in variant_backward.cpp; shared parts in variant_recurrence.h
// (Spec, layer norm, the LSTM gate math) and variant_rows.h (the per-row step math).
#include <torch/library.h>

#include "variant_rows.h"

namespace {

struct FwdBufs {
  at::Tensor gh, hin, hc, rb, tmp, xs;  // xs: LN(W u_t) rows (layer norm)
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
  T *rx_p = ptr_or_null<T>(ln.rx), *mx_p = ptr_or_null<T>(ln.mx);
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
            ln_fwd<T>(xs + o, s.lnx_g + o, s.lnx_b + o, H, nullptr,
                      rx_p ? rx_p + bt * G + g : nullptr, mx_p ? mx_p + bt * G + g : nullptr);
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
          const T* __restrict__ kh = s.keep_h(t, b);
#pragma omp simd
          for (int64_t k = 0; k < Hh; ++k) hb[k] = kh[k] * hb[k] + (T(1) - kh[k]) * hcb[k];
        } else {
          std::copy(hcb, hcb + Hh, hb);
        }
        std::copy(hb, hb + Hh, o);
      }
    }
  });
}

}  // namespace

namespace rnnlab_variant {

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
              empty0(gx),  // xx: W u is gx itself (saved by the caller)
              (save && ln) ? at::empty({B, S, G}, opts) : empty0(gx),
              (save && ln) ? at::empty({B, S, G}, opts) : empty0(gx)};
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor whh = w_hh.contiguous(), whr = w_hr.contiguous();
  const at::Tensor pe = peep.contiguous(), dr = drop.contiguous();
  const at::Tensor khc = kh.contiguous(), kcc = kc.contiguous();
  const at::Tensor zrow = at::full({std::max(H, Hh)}, kh.numel() ? 0.0 : z, opts);
  const at::Tensor kscr = kh.numel() ? at::empty({B, 2 * std::max(H, Hh)}, opts) : empty0(gx);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnlab_var_forward", [&] {
    const Spec<scalar_t> s = make_spec<scalar_t>(B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant,
                                                 len.data_ptr<int64_t>(), pe, dr, khc, kcc, z, proj,
                                                 ln_params, zrow, kscr);
    forward_loop<scalar_t>(s, gx, whh, whr, b_ih.contiguous(), b_hh.contiguous(), out, h, c, pre,
                           ct_all, cs_all, hn_all, buf, lns, save);
  });
  return {out, h, c, pre, ct_all, cs_all, hn_all, lns.xh, lns.rh, lns.xc,
          lns.rc, lns.xx, lns.rx, lns.mx};
}

}  // namespace rnnlab_variant

TORCH_LIBRARY(rnnlab_variant_kernels, m) {
  m.def("var_forward", &rnnlab_variant::var_forward);
  m.def("var_backward", &rnnlab_variant::var_backward);
}
