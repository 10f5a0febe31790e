// rnnlab variant kernel, backward: the forward's phases in reverse (variant_recurrence.cpp
// describes the algorithm): dh~ and the zoneout carries, the projection's transposed
// product, the gate derivatives (and LN's backward per row), W_hh's product; the weight,
// peephole and layer-norm gradients as reductions after the loop.
#include "variant_rows.h"

namespace {

struct BwdBufs {
  // with layer norm dR: dL/d(U h), dX: dL/d(W u) (LN's input), dcn: dL/dLN(c~) of the
  // step (B, H), lnacc: per row, the sums over its steps that give LN's gain and bias
  // gradients (B, 2 G*H + 2 H): dY x^ of LN(U h), of LN(W u), and dY x^, dY of LN(c~);
  // xxs: the step's x^ of LN(W u) per row (B, G*H), rebuilt from W u
  at::Tensor dh, dc, dgh, dgx, dht, dr, rr, mm, tmp, dR, dcn, dX, lnacc, xxs;
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
  T *dX_p = ptr_or_null<T>(buf.dX), *acc_p = ptr_or_null<T>(buf.lnacc);
  const int64_t acc_w = 2 * GH + 2 * H;
  const T *xx_p = ptr_or_null<T>(ln.xx), *rx_p = ptr_or_null<T>(ln.rx);
  const T* mx_p = ptr_or_null<T>(ln.mx);
  T* xxs_p = ptr_or_null<T>(buf.xxs);
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
                        dcn_p ? dcn_p + b * H : nullptr);
        if (s.ln()) {  // dR, dX: LN's backward of dG (GRU: of dx), block by block
          const T* dxs = dgx_p + bt * GH;  // = dgh for all cells but GRU
          T* xxh = xxs_p + b * GH;  // x^ of LN(W u_t), rebuilt from W u_t
          for (int64_t g = 0; g < G; ++g) {
            const int64_t o = bt * GH + g * H;
            const T rx = rx_p[bt * G + g];
            ln_xhat<T>(xx_p + o, mx_p[bt * G + g], rx, H, xxh + g * H);
            ln_bwd<T>(dgh_p + o, s.lnh_g + g * H, xh_p + o, rh_p[bt * G + g], H, dR_p + o);
            ln_bwd<T>(dxs + g * H, s.lnx_g + g * H, xxh + g * H, rx, H, dX_p + o);
          }
          ln_sums<T>(s, dgh_p + bt * GH, xh_p + bt * GH, dxs, xxh,
                     dcn_p ? dcn_p + b * H : nullptr, xc_p ? xc_p + bt * H : nullptr,
                     acc_p + b * acc_w);
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

}  // namespace

namespace rnnlab_variant {

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
  buf.dcn = ln && lstm ? at::empty({B, H}, opts) : empty0(out);
  buf.lnacc = ln ? at::zeros({B, 2 * GH + 2 * H}, opts) : empty0(out);
  buf.xxs = ln ? at::empty({B, GH}, opts) : empty0(out);
  buf.dX = ln ? at::empty({B, S, GH}, opts) : empty0(out);
  const LnSaved lns{ln_saved.at(0), ln_saved.at(1), ln_saved.at(2), ln_saved.at(3),
                    ln ? ln_saved.at(4).contiguous() : ln_saved.at(4), ln_saved.at(5),
                    ln_saved.at(6)};
  const at::Tensor h0c = h0.contiguous(), c0c = lstm ? c0.contiguous() : empty0(out);
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor whh = w_hh.contiguous(), whr = w_hr.contiguous();
  const at::Tensor pe = peep.contiguous(), dr = drop.contiguous();
  const at::Tensor khc = kh.contiguous(), kcc = kc.contiguous();
  const at::Tensor zrow = at::full({std::max(H, Hh)}, kh.numel() ? 0.0 : z, opts);
  const at::Tensor kscr = kh.numel() ? at::empty({B, 2 * std::max(H, Hh)}, opts) : empty0(out);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnlab_var_backward", [&] {
    const Spec<scalar_t> s = make_spec<scalar_t>(B, S, GH, H, Hh, cell, phi, phi_c, sigma, variant,
                                                 len.data_ptr<int64_t>(), pe, dr, khc, kcc, z, proj,
                                                 ln_params, zrow, kscr);
    backward_loop<scalar_t>(s, grad_out, out, pre, ct_all, cs_all, hn_all, h0c, c0c, whh, whr, lns,
                            buf);
  });
  // dW_hh = sum_{b,t} dG^T (m * h_{t-1}) as one product over the (B*T) rows; without a
  // dropout mask on the outputs themselves (recurrent_weight_grad's pairing, no copy).
  const at::Tensor dg_flat = buf.dgh.view({B * S, GH});
  const at::Tensor& dprod = ln ? buf.dR : buf.dgh;  // the gradient of U h (of LN's input)
  at::Tensor dw;
  if (drop.numel()) {
    const at::Tensor h_prev =
        at::cat({h0c.unsqueeze(1), out.narrow(1, 0, S - 1)}, 1) * dr.unsqueeze(1);
    dw = cell == IND ? (dprod * h_prev).sum({0, 1})
                     : at::mm(dprod.view({B * S, GH}).t(), h_prev.reshape({B * S, Hh}));
  } else {
    dw = recurrent_weight_grad(dprod, out, h0c, cell == IND);
  }
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
    const at::Tensor sums = buf.lnacc.sum(0);  // ln_sums' rows
    dln[0] = sums.narrow(0, 0, GH).view({G, H}).clone();
    dln[1] = db.view({G, H}).clone();
    if (lstm) {
      dln[2] = sums.narrow(0, 2 * GH, H).clone();
      dln[3] = sums.narrow(0, 2 * GH + H, H).clone();
    }
    dln[4] = sums.narrow(0, GH, GH).view({G, H}).clone();
    dln[5] = db_ih.view({G, H}).clone();
  }
  return {ln ? buf.dX : buf.dgx, dw, db_ih, db, buf.dh, buf.dc, dw_hr, dpeep,
          dln[0], dln[1], dln[2], dln[3], dln[4], dln[5]};
}

}  // namespace rnnlab_variant
