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

// The forward's buffers, step weights and raw pointers, and its per-step phases; each
// phase works on the rows [r0, r1) of one row block (or one row b of it).
template <typename T>
struct Forward {
  const FeedbackDims& d;
  const std::vector<Spec<T>>& specs;
  const bool save, proj, ln;
  at::Tensor sbuf, abuf, rbuf, tmp, ggb, hcb, hin, ubuf, xsb, rbb, b_sum;
  std::vector<StepMatmul<T>> rec, inp, project;
  const T *gx, *bs, *bi, *bh, *drop, *rd;
  T *s, *a, *r, *q, *gg, *hc, *hi, *u, *xs, *rb;
  T *out, *hs, *c, *pre, *ct, *hn, *g, *xh, *rh, *xc, *rc, *xx, *rx;

  Forward(const FeedbackDims& d_, const std::vector<Spec<T>>& specs_, const at::Tensor& gx0,
          const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& b_ih,
          const at::Tensor& b_hh, const at::Tensor& w_hr, const at::Tensor& drop_m,
          const at::Tensor& rdrop, bool save_, GfvSaved& sv, int64_t max_n)
      : d(d_), specs(specs_), save(save_), proj(d_.P != d_.H), ln(specs_[0].ln()) {
    const int64_t B = d.B, H = d.H, P = d.P, L = d.L, GH = d.GH;
    const auto opts = gx0.options();
    const at::Tensor none = at::empty({0}, opts);
    sbuf = at::empty({L, B, d.N}, opts), abuf = at::empty({B, d.GW}, opts);
    rbuf = at::empty({B, GH}, opts), tmp = at::empty({B, 7 * H}, opts);
    ggb = at::empty({B, L}, opts), hcb = at::empty({B, P}, opts);
    hin = rdrop.numel() ? at::empty({L, B, P}, opts) : none;
    ubuf = drop_m.numel() ? at::empty({B, P}, opts) : none;
    xsb = ln ? at::empty({B, GH}, opts) : none;
    rbb = proj ? at::empty({B, H}, opts) : none;
    b_sum = b_ih + b_hh;
    gx = gx0.data_ptr<T>(), bs = b_sum.data_ptr<T>();
    bi = b_ih.data_ptr<T>(), bh = b_hh.data_ptr<T>();
    drop = ptr_or_null<T>(drop_m), rd = ptr_or_null<T>(rdrop);
    s = sbuf.data_ptr<T>(), a = abuf.data_ptr<T>(), r = rbuf.data_ptr<T>();
    q = tmp.data_ptr<T>(), gg = ggb.data_ptr<T>(), hc = hcb.data_ptr<T>();
    hi = ptr_or_null<T>(hin), u = ptr_or_null<T>(ubuf), xs = ptr_or_null<T>(xsb);
    rb = ptr_or_null<T>(rbb);
    out = sv.out.data_ptr<T>(), hs = sv.hs.data_ptr<T>(), c = ptr_or_null<T>(sv.cs);
    pre = sv.pre.data_ptr<T>(), ct = ptr_or_null<T>(sv.ct), hn = ptr_or_null<T>(sv.hn);
    g = ptr_or_null<T>(sv.g), xh = ptr_or_null<T>(sv.xh), rh = ptr_or_null<T>(sv.rh);
    xc = ptr_or_null<T>(sv.xc), rc = ptr_or_null<T>(sv.rc);
    xx = ptr_or_null<T>(sv.xx), rx = ptr_or_null<T>(sv.rx);
    PackBudget budget{save ? (sv.hs.nbytes() + sv.pre.nbytes()) / 2 : INT64_MAX};
    for (int64_t i = 0; i < L; ++i) rec.emplace_back(w_rec.select(0, i), true, max_n, &budget);
    for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), true, max_n, &budget);
    if (proj)
      for (int64_t j = 0; j < L; ++j) project.emplace_back(w_hr.select(0, j), true, max_n, &budget);
  }

  T* hrow(int64_t j, int64_t t, int64_t b) const { return hs + ((j * (d.S + 1) + t) * d.B + b) * d.P; }
  T* crow(int64_t j, int64_t t, int64_t b) const { return c + ((j * (d.S + 1) + t) * d.B + b) * d.H; }

  // Every product that reads h~^i_{t-1} (own gates, feedback, reset gates): one per source.
  void products(int64_t t, int64_t r0, int64_t r1) {
    const int64_t nr = r1 - r0, P = d.P, B = d.B;
    for (int64_t i = 0; i < d.L; ++i) {
      const T* src = hrow(i, t, r0);
      if (rd) {  // h~ = m^i * h^i_{t-1}
        T* __restrict__ dst = hi + (i * B + r0) * P;
        const T* __restrict__ m = rd + (i * B + r0) * P;
#pragma omp simd
        for (int64_t k = 0; k < nr * P; ++k) dst[k] = m[k] * src[k];
        src = dst;
      }
      rec[i](src, P, nr, T(0), s + (i * B + r0) * d.N, d.N);
    }
  }

  // [W u^j | gate_u_j u^j] rows of layer j at step t: gx0 for layer 0, else the product of
  // u^j = drop * h^{j-1}_t.
  const T* layer_input(int64_t j, int64_t t, int64_t r0, int64_t r1) {
    if (j == 0) return gx + t * d.B * d.GW;
    const int64_t nr = r1 - r0, P = d.P;
    const T* src = hrow(j - 1, t + 1, r0);
    if (drop) {
      const T* __restrict__ m = drop + (((j - 1) * d.S + t) * d.B + r0) * P;
      T* __restrict__ ub = u + r0 * P;
#pragma omp simd
      for (int64_t k = 0; k < nr * P; ++k) ub[k] = m[k] * src[k];
      src = ub;
    }
    inp[j - 1](src, P, nr, T(0), a + r0 * d.GW, d.GW);
    return a;
  }

  // Row b's reset gates g^{i->j} and recurrent term r^j: its own gate products with the
  // candidate block = sum_i g^{i->j} U^{i->j} h~^i (no bias).
  T* recurrent_term(int64_t j, int64_t t, int64_t b, const T* __restrict__ ab) {
    const int64_t H = d.H, L = d.L, N = d.N, B = d.B;
    T* __restrict__ gb = gg + b * L;
    for (int64_t i = 0; i < L; ++i) {  // g^{i->j} = sigmoid(w . u^j + v . h~*)
      T v = ab[d.GH + i];
      for (int64_t src = 0; src < L; ++src) v += s[(src * B + b) * N + d.secG + j * L + i];
      gb[i] = sigm(v);
    }
    if (g) std::copy(gb, gb + L, g + ((j * d.S + t) * B + b) * L);
    T* __restrict__ rr = r + b * d.GH;
    const T* __restrict__ own = s + (j * B + b) * N;
    for (int64_t qb = 0; qb < d.G - 1; ++qb)
      std::copy(own + qb * H, own + (qb + 1) * H, rr + d.block_of(qb) * H);
    T* __restrict__ cand = rr + d.kc * H;
    std::fill(cand, cand + H, T(0));
    for (int64_t i = 0; i < L; ++i) {
      const T gi = gb[i];
      const T* __restrict__ U = s + (i * B + b) * N + d.secU + j * H;
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) cand[k] += gi * U[k];
    }
    return rr;
  }

  // Row b of layer j at a valid step t: LN per gate block, then the variant's gate math
  // (forward_row) into h~ (or r = o * phi_c(c) with a projection) and c_t in place.
  void gate_row(int64_t j, int64_t t, int64_t b, const T* ab) {
    const Spec<T>& sp = specs[j];
    const int64_t H = d.H, GH = d.GH, G = d.G, srow = (j * d.S + t) * d.B + b;
    T* rr = recurrent_term(j, t, b, ab);
    const T* x = ab;
    if (ln) {  // LN(W u) and LN(r) per gate block
      T* xb = xs + b * GH;
      std::copy(ab, ab + GH, xb);
      x = xb;
      for (int64_t gb = 0; gb < G; ++gb) {
        const int64_t o = gb * H;
        ln_fwd<T>(xb + o, sp.lnx_g + o, sp.lnx_b + o, H, xx ? xx + srow * GH + o : nullptr,
                  rx ? rx + srow * G + gb : nullptr);
        ln_fwd<T>(rr + o, sp.lnh_g + o, sp.lnh_b + o, H, xh ? xh + srow * GH + o : nullptr,
                  rh ? rh + srow * G + gb : nullptr);
      }
    }
    T* cb = nullptr;
    if (c) {  // c_t starts as c_{t-1}: forward_row updates it in place (zoneout)
      cb = crow(j, t + 1, b);
      std::copy(crow(j, t, b), crow(j, t, b) + H, cb);
    }
    const int64_t prow = save ? srow : j * d.B + b;
    forward_row<T>(sp, b, t, x, rr, bs + j * GH, bh + j * GH, bi + j * GH, pre + prow * GH,
                   q + b * 7 * H, hrow(j, t, b), cb, save && ct ? ct + srow * H : nullptr,
                   nullptr, save && hn ? hn + srow * H : nullptr,
                   proj ? rb + b * H : hc + b * d.P, xc ? xc + srow * H : nullptr,
                   rc ? rc + srow : nullptr);
  }

  // Layer j at step t for the rows [r0, r1): padded rows keep the state; the others run
  // the gate math, the projection, zoneout; the top layer writes the output.
  void layer_step(int64_t j, int64_t t, int64_t r0, int64_t r1) {
    const int64_t B = d.B, H = d.H, P = d.P, L = d.L;
    const Spec<T>& sp = specs[j];
    const T* A = layer_input(j, t, r0, r1);
    for (int64_t b = r0; b < r1; ++b) {
      if (t < sp.L[b]) {
        gate_row(j, t, b, A + b * d.GW);
        continue;
      }
      if (g) std::fill(g + ((j * d.S + t) * B + b) * L, g + ((j * d.S + t) * B + b + 1) * L, T(0));
      std::copy(hrow(j, t, b), hrow(j, t, b) + P, hrow(j, t + 1, b));
      if (c) std::copy(crow(j, t, b), crow(j, t, b) + H, crow(j, t + 1, b));
    }
    if (proj) project[j](rb + r0 * H, H, r1 - r0, T(0), hc + r0 * P, P);
    for (int64_t b = r0; b < r1; ++b) {
      T* __restrict__ o = out + (t * B + b) * P;
      if (t >= sp.L[b]) {
        if (j == L - 1) std::fill(o, o + P, T(0));
        continue;
      }
      T* __restrict__ hb = hrow(j, t + 1, b);
      const T* __restrict__ ho = hrow(j, t, b);
      const T* __restrict__ hcr = hc + b * P;
      if (sp.zoned()) {
        const T* __restrict__ k = sp.keep_h(t, b);
#pragma omp simd
        for (int64_t e = 0; e < P; ++e) hb[e] = k[e] * ho[e] + (T(1) - k[e]) * hcr[e];
      } else {
        std::copy(hcr, hcr + P, hb);
      }
      if (j == L - 1) std::copy(hb, hb + P, o);
    }
  }
};

template <typename T>
void forward_loop(const FeedbackDims& d, const std::vector<Spec<T>>& specs, const at::Tensor& gx0,
                  const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& b_ih,
                  const at::Tensor& b_hh, const at::Tensor& w_hr, const at::Tensor& drop,
                  const at::Tensor& rdrop, bool save, GfvSaved& sv) {
  const int64_t blocks = row_blocks(d.B);
  Forward<T> f(d, specs, gx0, w_in, w_rec, b_ih, b_hh, w_hr, drop, rdrop, save, sv,
               (d.B + blocks - 1) / blocks);
  over_row_blocks(d.B, blocks, [&](int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < d.S; ++t) {
      f.products(t, r0, r1);
      for (int64_t j = 0; j < d.L; ++j) f.layer_step(j, t, r0, r1);
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
