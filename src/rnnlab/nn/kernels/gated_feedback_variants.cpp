// rnnlab gated-feedback variant kernel: the lockstep loop of an L-layer gated-feedback
// stack whose layers carry the cell variants (Greff's LSTM variants, peepholes, layer
// norm, recurrent dropout, zoneout) and/or an LSTM projection, with a hand-written
// backward (docs/equations.md, "gated_feedback with the cell variants"; the per-step
// autograd loop of nn/connections/gated_feedback_variants.py is its definition).
//
// It is gated_feedback.cpp's algorithm (read that first: time-major layout, one product
// per source layer and step with w_rec, one per layer j >= 1 with w_in, weight gradients
// as large products after the loop) with the variant kernel's row math (variant_rows.h)
// in place of the plain cells'. Per step t and layer j:
// - recurrent dropout: every recurrent product reads h~^i = m^i * h^i_{t-1} (one mask per
//   layer and sequence): the products with w_rec are taken of h~;
// - the recurrent term r^j (no bias) is the own-gate products with the candidate block
//   replaced by sum_i g^{i->j} U^{i->j} h~^i; W u^j (no bias) and r^j go through LN per
//   gate block (layer norm), then forward_row adds b_ih, b_hh and runs the variant's gate
//   math (peepholes, Greff variants, LN(c~), r = o * phi_c(c) with a projection);
// - the projection h~ = W_hr r is one more product per layer and step;
// - zoneout keeps units of the previous (h, c) (masks in training, z in eval); the zoned
//   h^j_t is fed back at t+1 and, times the between-layer dropout mask, read by layer j+1.
// Inputs (Python, kernels/gated_feedback_variants.py, assembles them):
//   gx0 (S, B, G*H + L) layer 0's [W_ih x | gate_u x], no bias; w_in (L-1, G*H + L, P);
//   w_rec (L, N, P); b_ih, b_hh (L, G*H); peep (L, 3, H); w_hr (L, P, H); drop
//   (L-1, S, B, P) between layers; rdrop (L, B, P); kh (L, S, B, P), kc (L, S, B, H) bool;
//   the layer-norm gains and biases stacked per layer; each optional one may be empty.
#include <torch/library.h>

#include "gated_feedback_variants.h"

namespace {

struct GfvSaved {  // time-major, per layer; see gfv_forward
  at::Tensor out, hs, cs, pre, ct, hn, g, xh, rh, xc, rc, xx, rx;
};

template <typename T>
void forward_loop(const FeedbackDims& d, const std::vector<Spec<T>>& specs, const at::Tensor& gx0,
                  const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& b_ih,
                  const at::Tensor& b_hh, const at::Tensor& w_hr, const at::Tensor& drop,
                  const at::Tensor& rdrop, bool save, GfvSaved& sv) {
  const int64_t S = d.S, B = d.B, H = d.H, P = d.P, L = d.L, GH = d.GH, GW = d.GW, N = d.N;
  const int64_t G = d.G, ST = save ? S : 1;
  const bool proj = P != H, ln = specs[0].ln();
  const auto opts = gx0.options();
  at::Tensor sbuf = at::empty({L, B, N}, opts), abuf = at::empty({B, GW}, opts);
  at::Tensor rbuf = at::empty({B, GH}, opts), tmp = at::empty({B, 7 * H}, opts);
  at::Tensor ggb = at::empty({B, L}, opts), hcb = at::empty({B, P}, opts);
  at::Tensor hin = rdrop.numel() ? at::empty({L, B, P}, opts) : at::empty({0}, opts);
  at::Tensor ubuf = drop.numel() ? at::empty({B, P}, opts) : at::empty({0}, opts);
  at::Tensor xsb = ln ? at::empty({B, GH}, opts) : at::empty({0}, opts);
  at::Tensor rbb = proj ? at::empty({B, H}, opts) : at::empty({0}, opts);
  const at::Tensor b_sum = b_ih + b_hh;
  const T *gx_p = gx0.data_ptr<T>(), *bs_p = b_sum.data_ptr<T>();
  const T *bi_p = b_ih.data_ptr<T>(), *bh_p = b_hh.data_ptr<T>();
  const T *drop_p = ptr_or_null<T>(drop), *rd_p = ptr_or_null<T>(rdrop);
  T *s_p = sbuf.data_ptr<T>(), *a_p = abuf.data_ptr<T>(), *r_p = rbuf.data_ptr<T>();
  T *tmp_p = tmp.data_ptr<T>(), *gg_p = ggb.data_ptr<T>(), *hc_p = hcb.data_ptr<T>();
  T *hin_p = ptr_or_null<T>(hin), *u_p = ptr_or_null<T>(ubuf), *xs_p = ptr_or_null<T>(xsb);
  T *rb_p = ptr_or_null<T>(rbb);
  T *out_p = sv.out.data_ptr<T>(), *hs_p = sv.hs.data_ptr<T>(), *c_p = ptr_or_null<T>(sv.cs);
  T *pre_p = sv.pre.data_ptr<T>(), *ct_p = ptr_or_null<T>(sv.ct), *hn_p = ptr_or_null<T>(sv.hn);
  T *g_p = ptr_or_null<T>(sv.g), *xh_p = ptr_or_null<T>(sv.xh), *rh_p = ptr_or_null<T>(sv.rh);
  T *xc_p = ptr_or_null<T>(sv.xc), *rc_p = ptr_or_null<T>(sv.rc);
  T *xx_p = ptr_or_null<T>(sv.xx), *rx_p = ptr_or_null<T>(sv.rx);
  const int64_t blocks = row_blocks(B);
  const int64_t max_n = (B + blocks - 1) / blocks;
  std::vector<StepMatmul<T>> rec, inp, project;
  PackBudget budget{save ? (sv.hs.nbytes() + sv.pre.nbytes()) / 2 : INT64_MAX};
  for (int64_t i = 0; i < L; ++i) rec.emplace_back(w_rec.select(0, i), true, max_n, &budget);
  for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), true, max_n, &budget);
  if (proj)
    for (int64_t j = 0; j < L; ++j) project.emplace_back(w_hr.select(0, j), true, max_n, &budget);
  auto hrow = [&](int64_t j, int64_t t, int64_t b) { return hs_p + ((j * (S + 1) + t) * B + b) * P; };
  auto crow = [&](int64_t j, int64_t t, int64_t b) { return c_p + ((j * (S + 1) + t) * B + b) * H; };

  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
  const int64_t nr = r1 - r0;
  for (int64_t t = 0; t < S; ++t) {
    const int64_t ts = save ? t : 0;
    for (int64_t i = 0; i < L; ++i) {  // every product that reads h~^i_{t-1}: one matmul
      const T* src = hrow(i, t, r0);
      if (rd_p) {
        T* __restrict__ hi = hin_p + (i * B + r0) * P;
        const T* __restrict__ m = rd_p + (i * B + r0) * P;
#pragma omp simd
        for (int64_t k = 0; k < nr * P; ++k) hi[k] = m[k] * src[k];
        src = hi;
      }
      rec[i](src, P, nr, T(0), s_p + (i * B + r0) * N, N);
    }
    for (int64_t j = 0; j < L; ++j) {
      const Spec<T>& sp = specs[j];
      const T* A = gx_p + t * B * GW;
      if (j > 0) {  // u^j = drop * h^{j-1}_t
        const T* u = hrow(j - 1, t + 1, r0);
        if (drop_p) {
          const T* __restrict__ m = drop_p + (((j - 1) * S + t) * B + r0) * P;
          T* __restrict__ ub = u_p + r0 * P;
#pragma omp simd
          for (int64_t k = 0; k < nr * P; ++k) ub[k] = m[k] * u[k];
          u = ub;
        }
        inp[j - 1](u, P, nr, T(0), a_p + r0 * GW, GW);
        A = a_p;
      }
      for (int64_t b = r0; b < r1; ++b) {
        const int64_t row = (j * ST + ts) * B + b, srow = (j * S + t) * B + b;
        T* __restrict__ hnew = hrow(j, t + 1, b);
        if (t >= sp.L[b]) {  // padded: the state stays, the output is zero
          if (g_p) std::fill(g_p + srow * L, g_p + (srow + 1) * L, T(0));
          std::copy(hnew - B * P, hnew - B * P + P, hnew);
          if (c_p) std::copy(crow(j, t, b), crow(j, t, b) + H, crow(j, t + 1, b));
          continue;
        }
        const T* __restrict__ a = A + b * GW;
        T* __restrict__ gg = gg_p + b * L;
        for (int64_t i = 0; i < L; ++i) {  // g^{i->j} = sigmoid(w . u^j + v . h~*)
          T v = a[GH + i];
          for (int64_t src = 0; src < L; ++src) v += s_p[(src * B + b) * N + d.secG + j * L + i];
          gg[i] = sigm(v);
        }
        if (g_p) std::copy(gg, gg + L, g_p + srow * L);
        // r^j: own gate products, the candidate block = sum_i g^{i->j} U^{i->j} h~^i
        T* __restrict__ r = r_p + b * GH;
        const T* __restrict__ own = s_p + (j * B + b) * N;
        for (int64_t qb = 0; qb < G - 1; ++qb)
          std::copy(own + qb * H, own + (qb + 1) * H, r + d.block_of(qb) * H);
        T* __restrict__ cand = r + d.kc * H;
        std::fill(cand, cand + H, T(0));
        for (int64_t i = 0; i < L; ++i) {
          const T gi = gg[i];
          const T* __restrict__ U = s_p + (i * B + b) * N + d.secU + j * H;
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) cand[k] += gi * U[k];
        }
        const T* x = a;
        if (ln) {  // LN(W u) and LN(r) per gate block
          T* xs = xs_p + b * GH;
          std::copy(a, a + GH, xs);
          x = xs;
          for (int64_t gb = 0; gb < G; ++gb) {
            const int64_t o = gb * H;
            ln_fwd<T>(xs + o, sp.lnx_g + o, sp.lnx_b + o, H, xx_p ? xx_p + srow * GH + o : nullptr,
                      rx_p ? rx_p + srow * G + gb : nullptr);
            ln_fwd<T>(r + o, sp.lnh_g + o, sp.lnh_b + o, H, xh_p ? xh_p + srow * GH + o : nullptr,
                      rh_p ? rh_p + srow * G + gb : nullptr);
          }
        }
        T* cb = nullptr;
        if (c_p) {  // c_t starts as c_{t-1}: forward_row updates it in place (zoneout)
          cb = crow(j, t + 1, b);
          std::copy(crow(j, t, b), crow(j, t, b) + H, cb);
        }
        forward_row<T>(sp, b, t, x, r, bs_p + j * GH, bh_p + j * GH, bi_p + j * GH,
                       pre_p + row * GH, tmp_p + b * 7 * H, hrow(j, t, b), cb,
                       save && ct_p ? ct_p + srow * H : nullptr, nullptr,
                       save && hn_p ? hn_p + srow * H : nullptr,
                       proj ? rb_p + b * H : hc_p + b * P, xc_p ? xc_p + srow * H : nullptr,
                       rc_p ? rc_p + srow : nullptr);
      }
      if (proj) project[j](rb_p + r0 * H, H, nr, T(0), hc_p + r0 * P, P);
      for (int64_t b = r0; b < r1; ++b) {  // zoneout, then the new state and the output
        if (t >= sp.L[b]) {
          if (j == L - 1) std::fill(out_p + (t * B + b) * P, out_p + (t * B + b + 1) * P, T(0));
          continue;
        }
        T* __restrict__ hb = hrow(j, t + 1, b);
        const T* __restrict__ ho = hb - B * P;
        const T* __restrict__ hcb_row = hc_p + b * P;
        if (sp.zoned()) {
          const T* __restrict__ k = sp.keep_h(t, b);
#pragma omp simd
          for (int64_t q = 0; q < P; ++q) hb[q] = k[q] * ho[q] + (T(1) - k[q]) * hcb_row[q];
        } else {
          std::copy(hcb_row, hcb_row + P, hb);
        }
        if (j == L - 1) std::copy(hb, hb + P, out_p + (t * B + b) * P);
      }
    }
  }
  });
}

}  // namespace

namespace rnnlab_gfv {

// Returns {out (S,B,P), hs (L,S+1,B,P), cs (L,S+1,B,H) (LSTM: the zoned cells), pre
// (L,S,B,G*H) the complete pre-activations, ct (L,S,B,H) the new cells c~ (LSTM), hn
// (L,S,B,H) GRU's recurrent candidate term, g (L,S,B,L) the reset gates, and with layer
// norm x^ (L,S,B,G*H), 1/std (L,S,B,G) of LN(r), x^, 1/std of LN(c~) (LSTM), x^ (L,S,B,G*H)
// and 1/std (L,S,B,G) of LN(W u)}; with save=false only out and the state history (the
// rest empty or one step long).
std::vector<at::Tensor> gfv_forward(const at::Tensor& gx0, const at::Tensor& w_in,
                                    const at::Tensor& w_rec, const at::Tensor& b_ih,
                                    const at::Tensor& b_hh, const at::Tensor& peep,
                                    const at::Tensor& w_hr, const at::Tensor& drop,
                                    const at::Tensor& rdrop, const at::Tensor& kh,
                                    const at::Tensor& kc, double z, const at::Tensor& lengths,
                                    int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
                                    int64_t variant, std::vector<at::Tensor> ln_params,
                                    bool save) {
  TORCH_CHECK(gx0.dim() == 3 && gx0.is_contiguous(), "gx0 must be a contiguous (S, B, G*H+L) tensor");
  TORCH_CHECK(w_rec.dim() == 3 && b_hh.dim() == 2, "w_rec must be (L, N, P), b_hh (L, G*H)");
  const int64_t H = b_hh.size(1) / gates_of(cell);
  const FeedbackDims d(cell, gx0.size(0), gx0.size(1), H, w_rec.size(2), w_rec.size(0));
  TORCH_CHECK(gx0.size(2) == d.GW, "gx0 width ", gx0.size(2), " != G*H+L = ", d.GW);
  TORCH_CHECK(w_rec.size(1) == d.N, "w_rec rows ", w_rec.size(1), " != ", d.N);
  TORCH_CHECK(w_in.size(0) == d.L - 1, "w_in must hold L-1 layers");
  TORCH_CHECK(d.P == H || w_hr.numel() == d.L * d.P * H, "w_hr must be (L, P, H) when P != H");
  TORCH_CHECK(drop.numel() == 0 || drop.numel() == (d.L - 1) * d.S * d.B * d.P, "drop shape");
  TORCH_CHECK(rdrop.numel() == 0 || rdrop.numel() == d.L * d.B * d.P, "rdrop shape");
  TORCH_CHECK(kh.numel() == 0 || kh.numel() == d.L * d.S * d.B * d.P, "kh shape");
  TORCH_CHECK(kc.numel() == 0 || kc.numel() == d.L * d.S * d.B * H, "kc shape");
  TORCH_CHECK(lengths.numel() == d.B, "lengths must hold one length per row");
  at::NoGradGuard no_grad;
  const int64_t S = d.S, B = d.B, L = d.L, P = d.P, GH = d.GH, G = d.G, ST = save ? S : 1;
  const bool lstm = cell == LSTM, ln = ln_params.at(0).numel() > 0;
  const auto opts = gx0.options();
  const at::Tensor none = at::empty({0}, opts);
  GfvSaved sv;
  sv.out = at::empty({S, B, P}, opts);
  sv.hs = at::empty({L, S + 1, B, P}, opts);
  sv.hs.select(1, 0).zero_();
  sv.cs = lstm ? at::empty({L, S + 1, B, H}, opts) : none;
  if (lstm) sv.cs.select(1, 0).zero_();
  sv.pre = at::empty({L, ST, B, GH}, opts);
  sv.ct = save && lstm ? at::empty({L, S, B, H}, opts) : none;
  sv.hn = save && cell == GRU ? at::empty({L, S, B, H}, opts) : none;
  sv.g = save ? at::empty({L, S, B, L}, opts) : none;
  const bool lns = save && ln;
  sv.xh = lns ? at::empty({L, S, B, GH}, opts) : none;
  sv.rh = lns ? at::empty({L, S, B, G}, opts) : none;
  sv.xc = lns && lstm ? at::empty({L, S, B, H}, opts) : none;
  sv.rc = lns && lstm ? at::empty({L, S, B}, opts) : none;
  sv.xx = lns ? at::empty({L, S, B, GH}, opts) : none;
  sv.rx = lns ? at::empty({L, S, B, G}, opts) : none;
  const GfvInputs in = gfv_inputs(peep, rdrop, kh, kc, z, ln_params, B, H, P, opts);
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  AT_DISPATCH_FLOATING_TYPES(gx0.scalar_type(), "rnnlab_gfv_forward", [&] {
    std::vector<Spec<scalar_t>> specs;
    for (int64_t j = 0; j < L; ++j)
      specs.push_back(layer_spec<scalar_t>(d, in, j, cell, phi, phi_c, sigma, variant, z,
                                           len.data_ptr<int64_t>()));
    forward_loop<scalar_t>(d, specs, gx0, w_in.contiguous(), w_rec.contiguous(),
                           b_ih.contiguous(), b_hh.contiguous(), w_hr.contiguous(),
                           drop.contiguous(), in.rdrop, save, sv);
  });
  return {sv.out, sv.hs, sv.cs, sv.pre, sv.ct, sv.hn, sv.g,
          sv.xh, sv.rh, sv.xc, sv.rc, sv.xx, sv.rx};
}

}  // namespace rnnlab_gfv

TORCH_LIBRARY_FRAGMENT(rnnlab_variant_kernels, m) {
  m.def("gfv_forward", &rnnlab_gfv::gfv_forward);
  m.def("gfv_backward", &rnnlab_gfv::gfv_backward);
}
