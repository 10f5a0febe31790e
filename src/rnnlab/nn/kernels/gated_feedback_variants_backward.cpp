// rnnlab gated-feedback variant kernel, backward: gated_feedback.cpp's backward with the
// variant kernel's row math (variant_rows.h). Per step t, layers top down: (1) dh^j_t
// split into the zoneout carry and dh~ (the projection's transposed product gives dr),
// backward_row's gate derivatives, LN's backward per gate block: dR^j (the gradient of
// the recurrent term before LN) and dX^j (of W u^j); (2) the feedback product
// dcand_j [U^{0->j} | ...], giving d g^{i->j} and dh~^i; (3) the layer input's product.
// Then the own-gate and reset-gate products per source, times the recurrent-dropout mask
// into dh_{t-1}. Bias, peephole and LN gain gradients are summed per row in the loop;
// the weight gradients are large products over the saved (S*B)-row tensors after it.
#include "gated_feedback_variants.h"

namespace {

// Per layer and row, the sums over the steps (``width`` wide): [dG (G*H) | dX (G*H)
// (both at LN's output: the gradients of b_hh, b_ih) | LN(r) gain: dY x^ (G*H) |
// LN(W u) gain (G*H) | LN(c~): dY x^, dY (2H) | peepholes: dA_i c_{t-1}, dA_f c_{t-1},
// dA_o c~_t (3H)].
struct AccLayout {
  int64_t dg, dx, ln, pp, width;
  AccLayout(int64_t GH, int64_t H) : dg(0), dx(GH), ln(2 * GH), pp(4 * GH + 2 * H), width(4 * GH + 5 * H) {}
};

struct GfvBwdBufs {
  at::Tensor dH, dHp, dHt, dC, DR, DG, Q, DA, du, dht, dr, rr, tmp, dgs, dxs, dcn, acc;
  std::vector<at::Tensor> D;
};

template <typename T>
void add_row_sums(const Spec<T>& s, const AccLayout& al, const T* __restrict__ dg,
                  const T* __restrict__ dx, const T* cp, const T* ct, T* __restrict__ acc) {
  const int64_t GH = s.GH, H = s.H;
#pragma omp simd
  for (int64_t k = 0; k < GH; ++k) {
    acc[al.dg + k] += dg[k];
    acc[al.dx + k] += dx[k];
  }
  if (s.peep) {
    T* __restrict__ pp = acc + al.pp;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      pp[k] += dg[k] * cp[k];
      pp[H + k] += dg[H + k] * cp[k];
      pp[2 * H + k] += dg[3 * H + k] * ct[k];
    }
  }
}

template <typename T>
void backward_loop(const FeedbackDims& d, const std::vector<Spec<T>>& specs, const at::Tensor& go,
                   const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& w_hr,
                   const at::Tensor& drop, const at::Tensor& rdrop, const at::Tensor& hs,
                   const at::Tensor& cs, const at::Tensor& pre, const at::Tensor& ct,
                   const at::Tensor& hn, const at::Tensor& gsave, const std::vector<at::Tensor>& lsv,
                   GfvBwdBufs& bf) {
  const int64_t S = d.S, B = d.B, H = d.H, P = d.P, L = d.L, G = d.G, GH = d.GH, GW = d.GW;
  const int64_t NG = d.NG, LP = L * P;
  const bool proj = P != H, ln = specs[0].ln(), lstm = specs[0].cell == LSTM;
  const bool gru = specs[0].cell == GRU;
  const AccLayout al(GH, H);
  const auto opts = hs.options();
  // F_j = [U^{0->j} | ... | U^{L-1->j}] (H, L*P) and the reset-gate weights (L*L, L*P).
  at::Tensor F = at::empty({L, H, LP}, opts), GHM = at::empty({L * L, LP}, opts);
  for (int64_t i = 0; i < L; ++i) {
    const at::Tensor wi = w_rec.select(0, i);
    for (int64_t j = 0; j < L; ++j)
      F.select(0, j).narrow(1, i * P, P).copy_(wi.narrow(0, d.secU + j * H, H));
    GHM.narrow(1, i * P, P).copy_(wi.narrow(0, d.secG, L * L));
  }
  const int64_t gs0 = go.stride(0), gs1 = go.stride(1), gs2 = go.stride(2);
  const T *go_p = go.data_ptr<T>(), *hs_p = hs.data_ptr<T>(), *c_p = ptr_or_null<T>(cs);
  const T *pre_p = pre.data_ptr<T>(), *ct_p = ptr_or_null<T>(ct), *hn_p = ptr_or_null<T>(hn);
  const T *g_p = gsave.data_ptr<T>(), *drop_p = ptr_or_null<T>(drop);
  const T* rd_p = ptr_or_null<T>(rdrop);
  const T *xh_p = ptr_or_null<T>(lsv[0]), *rh_p = ptr_or_null<T>(lsv[1]);
  const T *xc_p = ptr_or_null<T>(lsv[2]), *rc_p = ptr_or_null<T>(lsv[3]);
  const T *xx_p = ptr_or_null<T>(lsv[4]), *rx_p = ptr_or_null<T>(lsv[5]);
  T *dC_p = ptr_or_null<T>(bf.dC), *DR_p = bf.DR.data_ptr<T>(), *DG_p = ptr_or_null<T>(bf.DG);
  T *Q_p = bf.Q.data_ptr<T>(), *DA_p = bf.DA.data_ptr<T>(), *du_p = bf.du.data_ptr<T>();
  T *dht_p = bf.dht.data_ptr<T>(), *dr_p = ptr_or_null<T>(bf.dr), *rr_p = ptr_or_null<T>(bf.rr);
  T *tmp_p = bf.tmp.data_ptr<T>(), *dgs_p = bf.dgs.data_ptr<T>(), *dxs_p = ptr_or_null<T>(bf.dxs);
  T *dcn_p = ptr_or_null<T>(bf.dcn), *acc_p = bf.acc.data_ptr<T>(), *dHt_p = ptr_or_null<T>(bf.dHt);
  const int64_t blocks = row_blocks(B);
  const int64_t max_n = (B + blocks - 1) / blocks;
  std::vector<StepMatmul<T>> fb, inp, gates, project;
  int64_t held = hs.nbytes() + cs.nbytes() + pre.nbytes() + bf.DR.nbytes();
  for (const auto& dj : bf.D) held += dj.nbytes();
  PackBudget budget{held * 3 / 20}, none{0};
  for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), false, max_n, &budget);
  if (NG > 0)
    for (int64_t i = 0; i < L; ++i)
      gates.emplace_back(w_rec.select(0, i).narrow(0, 0, NG), false, max_n, &budget);
  for (int64_t j = 0; j < L; ++j) fb.emplace_back(F.select(0, j), false, max_n, &budget);
  if (proj)
    for (int64_t j = 0; j < L; ++j) project.emplace_back(w_hr.select(0, j), false, max_n, &budget);
  const StepMatmul<T> resets(GHM, false, max_n, &none);  // K = L*L: never worth packing
  // dh~ rows: kept (L, S, B, P) for dW_hr with a projection, else one (B, P) row each
  auto dht_row = [&](int64_t j, int64_t t, int64_t b) {
    return proj ? dht_p + ((j * S + t) * B + b) * P : dht_p + b * P;
  };
  auto hrow = [&](int64_t j, int64_t t, int64_t b) { return hs_p + ((j * (S + 1) + t) * B + b) * P; };

  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
  const int64_t nr = r1 - r0;
  T* dH_p = bf.dH.data_ptr<T>();  // this block's rows of both buffers; swapped every step
  T* dHp_p = bf.dHp.data_ptr<T>();
  for (int64_t t = S - 1; t >= 0; --t) {
    std::fill(dHp_p + r0 * LP, dHp_p + r1 * LP, T(0));
    if (dHt_p) std::fill(dHt_p + r0 * LP, dHt_p + r1 * LP, T(0));
    T* dtil = dHt_p ? dHt_p : dHp_p;  // where the products' dh~_{t-1} go
    for (int64_t j = L - 1; j >= 0; --j) {
      const Spec<T>& sp = specs[j];
      T* D_p = bf.D[j].data_ptr<T>();
      for (int64_t b = r0; b < r1; ++b) {  // (1a) the zoneout split of dh^j_t
        const int64_t srow = (j * S + t) * B + b;
        T* __restrict__ dh = dH_p + b * LP + j * P;
        T* __restrict__ dhp = dHp_p + b * LP + j * P;
        T* __restrict__ dht = dht_row(j, t, b);
        if (t >= sp.L[b]) {  // padded: the unchanged state passes its gradient through
          std::fill(D_p + (t * B + b) * GW, D_p + (t * B + b + 1) * GW, T(0));
          std::fill(DR_p + srow * GH, DR_p + (srow + 1) * GH, T(0));
          if (DG_p) std::fill(DG_p + (j * B + b) * NG, DG_p + (j * B + b + 1) * NG, T(0));
          std::fill(dht, dht + P, T(0));
          if (rr_p) std::fill(rr_p + srow * H, rr_p + (srow + 1) * H, T(0));
#pragma omp simd
          for (int64_t k = 0; k < P; ++k) dhp[k] += dh[k];
          continue;
        }
        split_dh<T>(sp, b, t, j == L - 1 ? go_p + t * gs0 + b * gs1 : nullptr, gs2, dh, dht);
#pragma omp simd
        for (int64_t k = 0; k < P; ++k) dhp[k] += dh[k];  // the zoneout carry k * dh
      }
      if (proj) project[j](dht_row(j, t, r0), P, nr, T(0), dr_p + r0 * H, H);
      for (int64_t b = r0; b < r1; ++b) {  // (1b) the gate derivatives, LN's backward
        if (t >= sp.L[b]) continue;
        const int64_t srow = (j * S + t) * B + b;
        const T* dd = proj ? dr_p + b * H : dht_row(j, t, b);
        const T* cp = lstm ? c_p + ((j * (S + 1) + t) * B + b) * H : nullptr;
        T* dg = dgs_p + b * GH;
        T* dx = gru ? dxs_p + b * GH : dg;  // the gradient of W u^j (after LN)
        backward_row<T>(sp, b, t, dd, pre_p + srow * GH, cp, ct_p ? ct_p + srow * H : nullptr,
                        hn_p ? hn_p + srow * H : nullptr, hrow(j, t, b), tmp_p + b * 12 * H, dg,
                        dx, dHp_p + b * LP + j * P, dC_p ? dC_p + (j * B + b) * H : nullptr,
                        rr_p ? rr_p + srow * H : nullptr, xc_p ? xc_p + srow * H : nullptr,
                        rc_p ? rc_p[srow] : T(0), dcn_p ? dcn_p + b * H : nullptr);
        T* acc = acc_p + (j * B + b) * al.width;
        add_row_sums<T>(sp, al, dg, dx, cp, ct_p ? ct_p + srow * H : nullptr, acc);
        T* __restrict__ dR = DR_p + srow * GH;
        T* __restrict__ dX = D_p + (t * B + b) * GW;
        if (ln) {
          for (int64_t gb = 0; gb < G; ++gb) {
            const int64_t o = gb * H;
            ln_bwd<T>(dg + o, sp.lnh_g + o, xh_p + srow * GH + o, rh_p[srow * G + gb], H, dR + o);
            ln_bwd<T>(dx + o, sp.lnx_g + o, xx_p + srow * GH + o, rx_p[srow * G + gb], H, dX + o);
          }
          ln_sums<T>(sp, dg, xh_p + srow * GH, dx, xx_p + srow * GH, dcn_p ? dcn_p + b * H : nullptr,
                     xc_p ? xc_p + srow * H : nullptr, acc + al.ln);
        } else {
          std::copy(dg, dg + GH, dR);
          std::copy(dx, dx + GH, dX);
        }
        for (int64_t qb = 0; qb < G - 1; ++qb) {
          const T* src = dR + d.block_of(qb) * H;
          std::copy(src, src + H, DG_p + (j * B + b) * NG + qb * H);
        }
      }
      // (2) feedback: Q = dcand_j F_j, one product for all sources
      fb[j](DR_p + ((j * S + t) * B + r0) * GH + d.kc * H, GH, nr, T(0), Q_p + r0 * LP, LP);
      for (int64_t b = r0; b < r1; ++b) {
        T* __restrict__ da = DA_p + b * L * L + j * L;
        if (t >= sp.L[b]) {
          std::fill(da, da + L, T(0));
          continue;
        }
        T* __restrict__ Dj = D_p + (t * B + b) * GW;
        const T* __restrict__ gg = g_p + ((j * S + t) * B + b) * L;
        for (int64_t i = 0; i < L; ++i) {
          const T* __restrict__ qi = Q_p + b * LP + i * P;
          const T* __restrict__ hp = hrow(i, t, b);
          const T* __restrict__ m = rd_p ? rd_p + (i * B + b) * P : nullptr;
          T* __restrict__ dtl = dtil + b * LP + i * P;
          const T gi = gg[i];
          T dgi = 0;
          if (m) {
#pragma omp simd reduction(+ : dgi)
            for (int64_t k = 0; k < P; ++k) dgi += qi[k] * hp[k] * m[k];
          } else {
#pragma omp simd reduction(+ : dgi)
            for (int64_t k = 0; k < P; ++k) dgi += qi[k] * hp[k];
          }
#pragma omp simd
          for (int64_t k = 0; k < P; ++k) dtl[k] += gi * qi[k];
          da[i] = dgi * gi * (T(1) - gi);
          Dj[GH + i] = da[i];
        }
      }
      if (j > 0) {  // (3) the layer input u^j = drop * h^{j-1}_t
        inp[j - 1](D_p + (t * B + r0) * GW, GW, nr, T(0), du_p + r0 * P, P);
        for (int64_t b = r0; b < r1; ++b) {
          if (t >= sp.L[b]) continue;
          T* __restrict__ dh = dH_p + b * LP + (j - 1) * P;
          const T* __restrict__ db = du_p + b * P;
          const T* __restrict__ m = drop_p ? drop_p + (((j - 1) * S + t) * B + b) * P : nullptr;
          if (m) {
#pragma omp simd
            for (int64_t k = 0; k < P; ++k) dh[k] += m[k] * db[k];
          } else {
#pragma omp simd
            for (int64_t k = 0; k < P; ++k) dh[k] += db[k];
          }
        }
      }
    }
    // (4) own gates per source layer, all reset gates in one product; then the masks
    for (int64_t i = 0; i < static_cast<int64_t>(gates.size()); ++i)
      gates[i](DG_p + (i * B + r0) * NG, NG, nr, T(1), dtil + r0 * LP + i * P, LP);
    resets(DA_p + r0 * L * L, L * L, nr, T(1), dtil + r0 * LP, LP);
    if (dHt_p) {
      for (int64_t b = r0; b < r1; ++b)
        for (int64_t i = 0; i < L; ++i) {
          const T* __restrict__ m = rd_p + (i * B + b) * P;
          const T* __restrict__ src = dHt_p + b * LP + i * P;
          T* __restrict__ dst = dHp_p + b * LP + i * P;
#pragma omp simd
          for (int64_t k = 0; k < P; ++k) dst[k] += m[k] * src[k];
        }
    }
    std::swap(dH_p, dHp_p);
  }
  });
}

// The weight gradients after the loop: d_w_in (L-1, GW, P), d_w_rec (L, N, P), d_w_hr.
void weight_grads(const FeedbackDims& d, const at::Tensor& hs, const at::Tensor& drop,
                  const at::Tensor& rdrop, const at::Tensor& gsave, const GfvBwdBufs& bf,
                  at::Tensor& d_w_in, at::Tensor& d_w_rec, at::Tensor& d_w_hr) {
  const int64_t S = d.S, B = d.B, H = d.H, P = d.P, L = d.L, GH = d.GH, GW = d.GW, TB = S * B;
  for (int64_t j = 1; j < L; ++j) {
    at::Tensor u = hs.select(0, j - 1).narrow(0, 1, S).reshape({TB, P});
    if (drop.numel()) u = u * drop.select(0, j - 1).reshape({TB, P});
    at::Tensor dw = d_w_in.select(0, j - 1);
    at::mm_out(dw, bf.D[j].view({TB, GW}).t(), u);
  }
  for (int64_t i = 0; i < L; ++i) {
    at::Tensor hprev = hs.select(0, i).narrow(0, 0, S);  // h~^i_{t-1} = m^i h^i_{t-1}
    if (rdrop.numel()) hprev = hprev * rdrop.select(0, i).unsqueeze(0);
    hprev = hprev.reshape({TB, P});
    source_weight_grads(
        d_w_rec.select(0, i), hprev, bf.DR.select(0, i).view({TB, GH}), gsave, i, d.G, H, L,
        d.kc, d.secU, d.secG,
        [&](int64_t j) { return bf.DR.select(0, j).view({TB, GH}).narrow(1, d.kc * H, H); },
        [&](int64_t j) { return bf.D[j].view({TB, GW}).narrow(1, GH, L); });
  }
  if (P != H)
    for (int64_t j = 0; j < L; ++j)
      d_w_hr.select(0, j).copy_(at::mm(bf.dht.select(0, j).view({TB, P}).t(),
                                       bf.rr.select(0, j).view({TB, H})));
}

}  // namespace

namespace rnnlab_gfv {

// Returns {d_gx0 (S,B,GW), d_w_in, d_w_rec, d_b_ih, d_b_hh (L,G*H), d_peep (L,3,H), d_w_hr
// (L,P,H), and the six layer-norm gradients (L,G,H) / (L,H)} (unused ones empty).
std::vector<at::Tensor> gfv_backward(
    const at::Tensor& grad_out, const at::Tensor& grad_h, const at::Tensor& grad_c,
    const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& peep,
    const at::Tensor& w_hr, const at::Tensor& drop, const at::Tensor& rdrop, const at::Tensor& kh,
    const at::Tensor& kc, double z, const at::Tensor& hs, const at::Tensor& cs,
    const at::Tensor& pre, const at::Tensor& ct, const at::Tensor& hn, const at::Tensor& g,
    const at::Tensor& lengths, int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
    int64_t variant, std::vector<at::Tensor> ln_params, std::vector<at::Tensor> ln_saved) {
  at::NoGradGuard no_grad;
  const int64_t H = pre.size(3) / gates_of(cell);
  const FeedbackDims d(cell, hs.size(1) - 1, hs.size(2), H, hs.size(3), hs.size(0));
  const int64_t S = d.S, B = d.B, L = d.L, P = d.P, GH = d.GH, G = d.G;
  const bool lstm = cell == LSTM, proj = P != H, ln = ln_params.at(0).numel() > 0;
  const auto opts = hs.options();
  const at::Tensor none = at::empty({0}, opts);
  const AccLayout al(GH, H);
  GfvBwdBufs bf;
  bf.dH = grad_h.permute({1, 0, 2}).reshape({B, L * P}).clone();
  bf.dHp = at::empty({B, L * P}, opts);
  bf.dHt = rdrop.numel() ? at::empty({B, L * P}, opts) : none;
  bf.dC = lstm ? grad_c.contiguous().clone() : none;
  for (int64_t j = 0; j < L; ++j) bf.D.push_back(at::empty({S, B, d.GW}, opts));
  bf.DR = at::empty({L, S, B, GH}, opts);
  bf.DG = d.NG ? at::empty({L, B, d.NG}, opts) : none;
  bf.Q = at::empty({B, L * P}, opts);
  bf.DA = at::empty({B, L * L}, opts);
  bf.du = at::empty({B, P}, opts);
  bf.dht = proj ? at::empty({L, S, B, P}, opts) : at::empty({B, P}, opts);
  bf.dr = proj ? at::empty({B, H}, opts) : none;
  bf.rr = proj ? at::empty({L, S, B, H}, opts) : none;
  bf.tmp = at::empty({B, 12 * H}, opts);
  bf.dgs = at::empty({B, GH}, opts);
  bf.dxs = cell == GRU ? at::empty({B, GH}, opts) : none;
  bf.dcn = ln && lstm ? at::empty({B, H}, opts) : none;
  bf.acc = at::zeros({L, B, al.width}, opts);
  const GfvInputs in = gfv_inputs(peep, rdrop, kh, kc, z, ln_params, B, H, P, opts);
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor w_in_c = w_in.contiguous(), w_rec_c = w_rec.contiguous();
  const at::Tensor w_hr_c = w_hr.contiguous(), drop_c = drop.contiguous();
  for (auto& t : ln_saved) t = t.contiguous();
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "rnnlab_gfv_backward", [&] {
    std::vector<Spec<scalar_t>> specs;
    for (int64_t j = 0; j < L; ++j)
      specs.push_back(layer_spec<scalar_t>(d, in, j, cell, phi, phi_c, sigma, variant, z,
                                           len.data_ptr<int64_t>()));
    backward_loop<scalar_t>(d, specs, grad_out, w_in_c, w_rec_c, w_hr_c, drop_c, in.rdrop, hs, cs,
                            pre, ct, hn, g, ln_saved, bf);
  });
  at::Tensor d_w_in = at::empty({L - 1, d.GW, P}, opts);
  at::Tensor d_w_rec = at::empty({L, d.N, P}, opts);
  at::Tensor d_w_hr = proj ? at::empty({L, P, H}, opts) : none;
  weight_grads(d, hs, drop_c, in.rdrop, g, bf, d_w_in, d_w_rec, d_w_hr);
  const at::Tensor sums = bf.acc.sum(1);  // (L, width): the per-row sums of every layer
  at::Tensor d_b_hh = sums.narrow(1, al.dg, GH).clone();
  at::Tensor d_b_ih = sums.narrow(1, al.dx, GH).clone();
  at::Tensor d_peep = peep.numel() ? sums.narrow(1, al.pp, 3 * H).reshape({L, 3, H}) : none;
  std::vector<at::Tensor> dln(6, none);
  if (ln) {
    dln[0] = sums.narrow(1, al.ln, GH).reshape({L, G, H});
    dln[1] = d_b_hh.view({L, G, H}).clone();  // own memory: autograd may keep it as .grad
    if (lstm) {
      dln[2] = sums.narrow(1, al.ln + 2 * GH, H).contiguous();
      dln[3] = sums.narrow(1, al.ln + 2 * GH + H, H).contiguous();
    }
    dln[4] = sums.narrow(1, al.ln + GH, GH).reshape({L, G, H});
    dln[5] = d_b_ih.view({L, G, H}).clone();
  }
  return {bf.D[0], d_w_in, d_w_rec, d_b_ih, d_b_hh, d_peep, d_w_hr,
          dln[0], dln[1], dln[2], dln[3], dln[4], dln[5]};
}

}  // namespace rnnlab_gfv
