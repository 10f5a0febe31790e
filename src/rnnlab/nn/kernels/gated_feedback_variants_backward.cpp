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

// The backward's step weights and raw pointers, and its per-step phases, each on the
// rows [r0, r1) of one row block (or one row b of it). dh, dhp: the block's pointers
// into the two (B, L*P) state-gradient buffers of steps t and t-1 (swapped every step);
// dtil: where the products' dh~_{t-1} go (a third buffer with recurrent dropout).
template <typename T>
struct Backward {
  const FeedbackDims& d;
  const std::vector<Spec<T>>& specs;
  const AccLayout al;
  const bool proj, ln, lstm, gru;
  // dR in D_j's first G*H columns (they hold the same gradient) unless LN or GRU tell
  // the recurrent term's gradient from W u's
  const bool dr_in_d;
  at::Tensor F, GHM;
  std::vector<StepMatmul<T>> fb, inp, gates, project;
  StepMatmul<T> resets;
  int64_t gs0, gs1, gs2, LP;
  const T *go, *hs, *c, *pre, *ct, *hn, *g, *drop, *rd, *xh, *rh, *xc, *rc, *xx, *rx;
  T *dC, *DR, *DG, *Q, *DA, *du, *dht, *dr, *rr, *q, *dgs, *dxs, *dcn, *acc, *dHt;
  std::vector<T*> D;

  Backward(const FeedbackDims& d_, const std::vector<Spec<T>>& specs_, const at::Tensor& go_t,
           const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& w_hr,
           const at::Tensor& drop_m, const at::Tensor& rdrop, const at::Tensor& hs_t,
           const at::Tensor& cs, const at::Tensor& pre_t, const at::Tensor& ct_t,
           const at::Tensor& hn_t, const at::Tensor& gsave, const std::vector<at::Tensor>& lsv,
           GfvBwdBufs& bf, int64_t max_n)
      : d(d_), specs(specs_), al(d_.GH, d_.H), proj(d_.P != d_.H), ln(specs_[0].ln()),
        lstm(specs_[0].cell == LSTM), gru(specs_[0].cell == GRU), dr_in_d(!ln && !gru) {
    const int64_t H = d.H, P = d.P, L = d.L;
    LP = L * P;
    const auto opts = hs_t.options();
    // F_j = [U^{0->j} | ... | U^{L-1->j}] (H, L*P) and the reset-gate weights (L*L, L*P).
    F = at::empty({L, H, LP}, opts), GHM = at::empty({L * L, LP}, opts);
    for (int64_t i = 0; i < L; ++i) {
      const at::Tensor wi = w_rec.select(0, i);
      for (int64_t j = 0; j < L; ++j)
        F.select(0, j).narrow(1, i * P, P).copy_(wi.narrow(0, d.secU + j * H, H));
      GHM.narrow(1, i * P, P).copy_(wi.narrow(0, d.secG, L * L));
    }
    gs0 = go_t.stride(0), gs1 = go_t.stride(1), gs2 = go_t.stride(2);
    go = go_t.data_ptr<T>(), hs = hs_t.data_ptr<T>(), c = ptr_or_null<T>(cs);
    pre = pre_t.data_ptr<T>(), ct = ptr_or_null<T>(ct_t), hn = ptr_or_null<T>(hn_t);
    g = gsave.data_ptr<T>(), drop = ptr_or_null<T>(drop_m), rd = ptr_or_null<T>(rdrop);
    xh = ptr_or_null<T>(lsv[0]), rh = ptr_or_null<T>(lsv[1]);
    xc = ptr_or_null<T>(lsv[2]), rc = ptr_or_null<T>(lsv[3]);
    xx = ptr_or_null<T>(lsv[4]), rx = ptr_or_null<T>(lsv[5]);
    dC = ptr_or_null<T>(bf.dC), DR = ptr_or_null<T>(bf.DR), DG = ptr_or_null<T>(bf.DG);
    Q = bf.Q.data_ptr<T>(), DA = bf.DA.data_ptr<T>(), du = bf.du.data_ptr<T>();
    dht = bf.dht.data_ptr<T>(), dr = ptr_or_null<T>(bf.dr), rr = ptr_or_null<T>(bf.rr);
    q = bf.tmp.data_ptr<T>(), dgs = bf.dgs.data_ptr<T>(), dxs = ptr_or_null<T>(bf.dxs);
    dcn = ptr_or_null<T>(bf.dcn), acc = bf.acc.data_ptr<T>(), dHt = ptr_or_null<T>(bf.dHt);
    for (auto& dj : bf.D) D.push_back(dj.data_ptr<T>());
    int64_t held = hs_t.nbytes() + cs.nbytes() + pre_t.nbytes() + bf.DR.nbytes();
    for (const auto& dj : bf.D) held += dj.nbytes();
    PackBudget budget{held * 3 / 20}, none{0};
    for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), false, max_n, &budget);
    if (d.NG > 0)
      for (int64_t i = 0; i < L; ++i)
        gates.emplace_back(w_rec.select(0, i).narrow(0, 0, d.NG), false, max_n, &budget);
    for (int64_t j = 0; j < L; ++j) fb.emplace_back(F.select(0, j), false, max_n, &budget);
    if (proj)
      for (int64_t j = 0; j < L; ++j) project.emplace_back(w_hr.select(0, j), false, max_n, &budget);
    resets = StepMatmul<T>(GHM, false, max_n, &none);  // K = L*L: never worth packing
  }

  const T* hrow(int64_t j, int64_t t, int64_t b) const { return hs + ((j * (d.S + 1) + t) * d.B + b) * d.P; }
  // Row (j, t, b) of dR, the gradient of the recurrent term r^j before LN, and its stride.
  T* dR_row(int64_t j, int64_t t, int64_t b) const {
    return dr_in_d ? D[j] + (t * d.B + b) * d.GW : DR + ((j * d.S + t) * d.B + b) * d.GH;
  }
  int64_t dr_ld() const { return dr_in_d ? d.GW : d.GH; }
  // dh~ rows: kept (L, S, B, P) for dW_hr with a projection, else one (B, P) row each
  T* dht_row(int64_t j, int64_t t, int64_t b) const {
    return proj ? dht + ((j * d.S + t) * d.B + b) * d.P : dht + b * d.P;
  }

  // (1a) dh^j_t (+ the output gradient at the top) split into the zoneout carry, added
  // to dh_{t-1}, and dh~; padded rows pass dh through and zero their gradients.
  void split(int64_t j, int64_t t, int64_t r0, int64_t r1, T* dh, T* dhp) {
    const int64_t B = d.B, P = d.P, GH = d.GH, NG = d.NG;
    for (int64_t b = r0; b < r1; ++b) {
      const int64_t srow = (j * d.S + t) * B + b;
      T* __restrict__ dhb = dh + b * LP + j * P;
      T* __restrict__ dhpb = dhp + b * LP + j * P;
      T* __restrict__ dt = dht_row(j, t, b);
      if (t >= specs[j].L[b]) {
        std::fill(D[j] + (t * B + b) * d.GW, D[j] + (t * B + b + 1) * d.GW, T(0));
        if (!dr_in_d) std::fill(DR + srow * GH, DR + (srow + 1) * GH, T(0));
        if (DG) std::fill(DG + (j * B + b) * NG, DG + (j * B + b + 1) * NG, T(0));
        std::fill(dt, dt + P, T(0));
        if (rr) std::fill(rr + srow * d.H, rr + (srow + 1) * d.H, T(0));
      } else {
        split_dh<T>(specs[j], b, t, j == d.L - 1 ? go + t * gs0 + b * gs1 : nullptr, gs2, dhb, dt);
      }
#pragma omp simd
      for (int64_t k = 0; k < P; ++k) dhpb[k] += dhb[k];
    }
    if (proj) project[j](dht_row(j, t, r0), P, r1 - r0, T(0), dr + r0 * d.H, d.H);
  }

  // (1b) row b at a valid step: the gate derivatives (backward_row), the per-row sums,
  // LN's backward per gate block: dR (the recurrent term's gradient before LN), dX (W u's).
  void gate_grads(int64_t j, int64_t t, int64_t b, T* dhp) {
    const Spec<T>& sp = specs[j];
    const int64_t B = d.B, H = d.H, GH = d.GH, G = d.G, srow = (j * d.S + t) * B + b;
    const T* dd = proj ? dr + b * H : dht_row(j, t, b);
    const T* cp = lstm ? c + ((j * (d.S + 1) + t) * B + b) * H : nullptr;
    const T* ctr = ct ? ct + srow * H : nullptr;
    T* dR = dR_row(j, t, b);  // may be dX itself (dr_in_d)
    T* dX = D[j] + (t * B + b) * d.GW;
    T* dg = dr_in_d ? dR : dgs + b * GH;  // the recurrent term's gradient (after LN)
    T* dx = gru ? dxs + b * GH : dg;      // W u^j's (after LN)
    backward_row<T>(sp, b, t, dd, pre + srow * GH, cp, ctr, hn ? hn + srow * H : nullptr,
                    hrow(j, t, b), q + b * 12 * H, dg, dx, dhp + b * LP + j * d.P,
                    dC ? dC + (j * B + b) * H : nullptr, rr ? rr + srow * H : nullptr,
                    xc ? xc + srow * H : nullptr, rc ? rc[srow] : T(0),
                    dcn ? dcn + b * H : nullptr);
    T* ab = acc + (j * B + b) * al.width;
    add_row_sums<T>(sp, al, dg, dx, cp, ctr, ab);
    if (ln) {
      for (int64_t gb = 0; gb < G; ++gb) {
        const int64_t o = gb * H;
        ln_bwd<T>(dg + o, sp.lnh_g + o, xh + srow * GH + o, rh[srow * G + gb], H, dR + o);
        ln_bwd<T>(dx + o, sp.lnx_g + o, xx + srow * GH + o, rx[srow * G + gb], H, dX + o);
      }
      ln_sums<T>(sp, dg, xh + srow * GH, dx, xx + srow * GH, dcn ? dcn + b * H : nullptr,
                 xc ? xc + srow * H : nullptr, ab + al.ln);
    } else if (!dr_in_d) {  // GRU: dR = dG, dX = dx
      std::copy(dg, dg + GH, dR);
      std::copy(dx, dx + GH, dX);
    }
    for (int64_t qb = 0; qb < G - 1; ++qb) {
      const T* src = dR + d.block_of(qb) * H;
      std::copy(src, src + H, DG + (j * B + b) * d.NG + qb * H);
    }
  }

  // (2) feedback: Q = dcand_j F_j for all sources in one product, then per source i
  // d g^{i->j} = Q_i . h~^i (into D_j's reset-gate columns and DA) and dh~^i += g Q_i.
  void feedback(int64_t j, int64_t t, int64_t r0, int64_t r1, T* dtil) {
    const int64_t B = d.B, P = d.P, L = d.L, GH = d.GH;
    fb[j](dR_row(j, t, r0) + d.kc * d.H, dr_ld(), r1 - r0, T(0), Q + r0 * LP, LP);
    for (int64_t b = r0; b < r1; ++b) {
      T* __restrict__ da = DA + b * L * L + j * L;
      if (t >= specs[j].L[b]) {
        std::fill(da, da + L, T(0));
        continue;
      }
      T* __restrict__ Dj = D[j] + (t * B + b) * d.GW;
      const T* __restrict__ gg = g + ((j * d.S + t) * B + b) * L;
      for (int64_t i = 0; i < L; ++i) {
        const T* __restrict__ qi = Q + b * LP + i * P;
        const T* __restrict__ hp = hrow(i, t, b);
        const T* __restrict__ m = rd ? rd + (i * B + b) * P : nullptr;
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
  }

  // (3) the layer input u^j = drop * h^{j-1}_t: dh^{j-1}_t += drop * (D_j [W_ih_j; gate_u_j]).
  void layer_input(int64_t j, int64_t t, int64_t r0, int64_t r1, T* dh) {
    const int64_t B = d.B, P = d.P;
    inp[j - 1](D[j] + (t * B + r0) * d.GW, d.GW, r1 - r0, T(0), du + r0 * P, P);
    for (int64_t b = r0; b < r1; ++b) {
      if (t >= specs[j].L[b]) continue;
      T* __restrict__ dhb = dh + b * LP + (j - 1) * P;
      const T* __restrict__ db = du + b * P;
      const T* __restrict__ m = drop ? drop + (((j - 1) * d.S + t) * B + b) * P : nullptr;
      if (m) {
#pragma omp simd
        for (int64_t k = 0; k < P; ++k) dhb[k] += m[k] * db[k];
      } else {
#pragma omp simd
        for (int64_t k = 0; k < P; ++k) dhb[k] += db[k];
      }
    }
  }

  // (4) own gates per source layer, all reset gates in one product; then the masks.
  void sources(int64_t r0, int64_t r1, T* dtil, T* dhp) {
    const int64_t nr = r1 - r0, B = d.B, P = d.P, L = d.L;
    for (int64_t i = 0; i < static_cast<int64_t>(gates.size()); ++i)
      gates[i](DG + (i * B + r0) * d.NG, d.NG, nr, T(1), dtil + r0 * LP + i * P, LP);
    resets(DA + r0 * L * L, L * L, nr, T(1), dtil + r0 * LP, LP);
    if (!dHt) return;
    for (int64_t b = r0; b < r1; ++b)
      for (int64_t i = 0; i < L; ++i) {
        const T* __restrict__ m = rd + (i * B + b) * P;
        const T* __restrict__ src = dHt + b * LP + i * P;
        T* __restrict__ dst = dhp + b * LP + i * P;
#pragma omp simd
        for (int64_t k = 0; k < P; ++k) dst[k] += m[k] * src[k];
      }
  }
};

template <typename T>
void backward_loop(const FeedbackDims& d, const std::vector<Spec<T>>& specs, const at::Tensor& go,
                   const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& w_hr,
                   const at::Tensor& drop, const at::Tensor& rdrop, const at::Tensor& hs,
                   const at::Tensor& cs, const at::Tensor& pre, const at::Tensor& ct,
                   const at::Tensor& hn, const at::Tensor& gsave, const std::vector<at::Tensor>& lsv,
                   GfvBwdBufs& bf) {
  const int64_t blocks = row_blocks(d.B), LP = d.L * d.P;
  Backward<T> k(d, specs, go, w_in, w_rec, w_hr, drop, rdrop, hs, cs, pre, ct, hn, gsave, lsv,
                bf, (d.B + blocks - 1) / blocks);
  over_row_blocks(d.B, blocks, [&](int64_t r0, int64_t r1) {
    T* dh = bf.dH.data_ptr<T>();  // this block's rows of both buffers; swapped every step
    T* dhp = bf.dHp.data_ptr<T>();
    for (int64_t t = d.S - 1; t >= 0; --t) {
      std::fill(dhp + r0 * LP, dhp + r1 * LP, T(0));
      if (k.dHt) std::fill(k.dHt + r0 * LP, k.dHt + r1 * LP, T(0));
      T* dtil = k.dHt ? k.dHt : dhp;
      for (int64_t j = d.L - 1; j >= 0; --j) {
        k.split(j, t, r0, r1, dh, dhp);
        for (int64_t b = r0; b < r1; ++b)
          if (t < specs[j].L[b]) k.gate_grads(j, t, b, dhp);
        k.feedback(j, t, r0, r1, dtil);
        if (j > 0) k.layer_input(j, t, r0, r1, dh);
      }
      k.sources(r0, r1, dtil, dhp);
      std::swap(dh, dhp);
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
  // layer j's dR rows (TB, >= G*H): D_j's first columns unless saved apart (LN, GRU)
  auto dR = [&](int64_t j) {
    return bf.DR.numel() ? bf.DR.select(0, j).view({TB, GH}) : bf.D[j].view({TB, GW});
  };
  for (int64_t i = 0; i < L; ++i) {
    at::Tensor hprev = hs.select(0, i).narrow(0, 0, S);  // h~^i_{t-1} = m^i h^i_{t-1}
    if (rdrop.numel()) hprev = hprev * rdrop.select(0, i).unsqueeze(0);
    hprev = hprev.reshape({TB, P});
    source_weight_grads(
        d_w_rec.select(0, i), hprev, dR(i), gsave, i, d.G, H, L, d.kc, d.secU, d.secG,
        [&](int64_t j) { return dR(j).narrow(1, d.kc * H, H); },
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
  bf.DR = ln || cell == GRU ? at::empty({L, S, B, GH}, opts) : none;  // else in D
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
