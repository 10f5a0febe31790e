// The per-row step math of the variant kernels, shared by the single-layer variant kernel
// (variant_recurrence.cpp, variant_backward.cpp) and the gated-feedback variant kernel
// (gated_feedback_variants*.cpp): one row's gate math forward, the split of its state
// gradient into the zoneout carry and dh~, its gate derivatives backward, and LN's
// per-row gain-gradient sums. The loops around them (products, masks, lengths) are the
// kernels' own.
#pragma once

#include "variant_recurrence.h"

namespace {

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
      const T* __restrict__ kc = s.keep_c(t, b);
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) cb[k] = kc[k] * cb[k] + (T(1) - kc[k]) * ct[k];
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

// Backward phase A for row b at step t < L[b]: add the output gradient, split dh into
// the zoneout carry (left in dh) and dh~ (written to dht); gob may be null.
template <typename T>
void split_dh(const Spec<T>& s, int64_t b, int64_t t, const T* gob, int64_t gs2,
              T* __restrict__ dhb, T* __restrict__ dht) {
  const int64_t Hh = s.Hh;
  if (!gob) {  // no output gradient at this row (a lower layer of a stack)
  } else if (gs2 == 1) {
#pragma omp simd
    for (int64_t k = 0; k < Hh; ++k) dhb[k] += gob[k];
  } else {  // e.g. the stride-0 gradient of out.sum(): never materialised
    for (int64_t k = 0; k < Hh; ++k) dhb[k] += gob[k * gs2];
  }
  if (s.zoned()) {
    const T* __restrict__ kh = s.keep_h(t, b);
#pragma omp simd
    for (int64_t k = 0; k < Hh; ++k) {
      dht[k] = (T(1) - kh[k]) * dhb[k];
      dhb[k] = kh[k] * dhb[k];
    }
  } else {
    std::copy(dhb, dhb + Hh, dht);
    std::fill(dhb, dhb + Hh, T(0));
  }
}

// Backward phase B for row b at step t < L[b]: d is dL/dh~ (dL/dr with a projection);
// writes the gate gradients dg (and GRU's dx), updates dc and adds the carries to dh.
template <typename T>
void backward_row(const Spec<T>& s, int64_t b, int64_t t, const T* __restrict__ d,
                  const T* __restrict__ p, const T* __restrict__ cp, const T* __restrict__ ct,
                  const T* __restrict__ hn, const T* __restrict__ hprev,
                  T* __restrict__ q, T* __restrict__ dg, T* __restrict__ dx,
                  T* __restrict__ dhb, T* __restrict__ dcb, T* __restrict__ r_save,
                  const T* xc, T rc, T* dcn_row) {
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
      std::copy(dcl, dcl + H, dcn_row);  // dL/dLN(c~) of this step, for ln_sums
      ln_bwd<T>(dcl, s.lnc_g, xc, rc, H, dcl);
    }
    const T cf = s.variant == CIFG ? T(1) : T(0);
    const bool peep = s.peep != nullptr;
    const T* pi = s.peep;
    const T* pf = peep ? s.peep + H : nullptr;
    const T* po = peep ? s.peep + 2 * H : nullptr;
    const T* __restrict__ kc = s.zoned() ? s.keep_c(t, b) : nullptr;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      T dct = dcl[k];
      if (kc) {
        dct += (T(1) - kc[k]) * dcb[k];
        dcb[k] = kc[k] * dcb[k];
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

// LN's gain gradients dgamma = sum_{b,t} dY * x^ (and LN(c~)'s bias, sum dY), summed per
// row while its step is in cache: the same sums as reductions over the saved (B, T, .)
// tensors after the loop, without reading them again.
template <typename T>
void ln_sums(const Spec<T>& s, const T* __restrict__ dgh, const T* __restrict__ xh,
             const T* __restrict__ dgx, const T* __restrict__ xx, const T* __restrict__ dcn,
             const T* __restrict__ xc, T* __restrict__ acc) {
  const int64_t GH = s.GH, H = s.H;
#pragma omp simd
  for (int64_t k = 0; k < GH; ++k) {
    acc[k] += dgh[k] * xh[k];
    acc[GH + k] += dgx[k] * xx[k];
  }
  if (dcn) {
    T* __restrict__ ac = acc + 2 * GH;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      ac[k] += dcn[k] * xc[k];
      ac[H + k] += dcn[k];
    }
  }
}

}  // namespace
