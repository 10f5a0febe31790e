// rnnlab recurrent kernels: the time loop of Elman / LSTM / GRU layers in C++.
//
// The Python side computes the input projection gx = x W_ih^T for all steps (one
// matmul, without bias: both biases are added in the elementwise pass, which saves a
// full-size broadcast copy) and hands it here. Forward: one matmul per step for the recurrence and
// one fused, vectorised elementwise pass per batch row. Backward: one matmul per step to
// carry dh through W_hh, fused elementwise gate derivatives, and the weight gradient
// dW_hh = dGates^T H_prev as ONE matmul after the loop.
// Lengths: rows with t >= length keep their state and emit zeros (no per-sequence loop).
// Activations are chosen at run time by code (enum Act in common.h, the same numbers as
// rnnlab.nn.activations.KERNEL_CODES).
// IndRNN (cell IND) is the Elman loop with w_hh a vector u (H): the per-step product is
// u * h elementwise (no matmul), dh_{t-1} = u * dG, and du = sum_{b,t} dG * h_{t-1}.
//
// Where the time goes at RNN sizes (perf, T=200 B=32 H=128): the per-step matmul is
// small, so three things dominate that a naive loop pays every step: (1) the BLAS
// re-packing the weight on each call, (2) fork/join barriers, (3) scalar or narrow
// transcendental functions. Hence: (1) W_hh is packed once per call with MKL's packed
// GEMM API when the torch build exports it (falls back to at::mm otherwise);
// (2) independent batch rows are split into per-thread blocks that run the whole time
// loop without synchronising; (3) float32 exp/tanh/erf are inline polynomials the
// compiler vectorises at full width.
#include <torch/library.h>

#include "common.h"

namespace {

int64_t gates_of(int64_t cell) { return cell == LSTM ? 4 : (cell == GRU ? 3 : 1); }

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
  // MKL's packed copy of W_hh costs ~8 MiB whatever the layer's size. In training, pack
  // only when that is no more than the pre-activations the step saves anyway, so a small
  // layer's training-step memory stays near nn.*'s (it then uses at::mm, ~10-25% slower
  // per product); inference always packs.
  PackBudget budget{save ? B * S * GH * static_cast<int64_t>(sizeof(T)) : INT64_MAX};
  const StepMatmul<T> recur = cell == IND ? StepMatmul<T>()  // no product: u * h below
      : StepMatmul<T>(w_hh, /*transpose=*/true, (B + blocks - 1) / blocks, &budget);
  const T* u_p = cell == IND ? w_hh.data_ptr<T>() : nullptr;
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
        } else if (cell == IND) {
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) p[k] = x[k] + u_p[k] * hb[k] + bs[k];
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
  const int64_t B = gx.size(0), S = gx.size(1), GH = gx.size(2);
  const int64_t H = cell == IND ? w_hh.size(0) : w_hh.size(1);
  TORCH_CHECK(cell != IND || (w_hh.dim() == 1 && w_hh.is_contiguous()), "IndRNN u must be a contiguous (H,) vector");
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
  PackBudget budget{B * S * GH * static_cast<int64_t>(sizeof(T))};  // as in the forward
  const StepMatmul<T> recur = cell == IND ? StepMatmul<T>()  // no product: u * dG below
      : StepMatmul<T>(w_hh, /*transpose=*/false, (B + blocks - 1) / blocks, &budget);
  const T* u_p = cell == IND ? w_hh.data_ptr<T>() : nullptr;
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
        T* __restrict__ q = tmp_p + b * 11 * H;
        if (cell == RNN) {
          act_bwd<T>(phi, p, dhb, dg, H);
          std::fill(dhb, dhb + H, T(0));
        } else if (cell == IND) {
          act_bwd<T>(phi, p, dhb, dg, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) dhb[k] = u_p[k] * dg[k];
        } else if (cell == LSTM) {
          const T* __restrict__ cb = call_p + bt * H;
          const T* __restrict__ cprev = t ? call_p + (bt - 1) * H : c0_p + b * H;
          T* __restrict__ dcb = dc_p + b * H;
          // Gate values and their derivatives in one pass each (q: i f g o, dq: i' f' g' o').
          T* __restrict__ dq = q + 4 * H;
          T* __restrict__ tc = q + 8 * H;
          T* __restrict__ dtc = q + 9 * H;
          act_both<T>(sigma, p, q, dq, 2 * H);
          act_both<T>(phi, p + 2 * H, q + 2 * H, dq + 2 * H, H);
          act_both<T>(sigma, p + 3 * H, q + 3 * H, dq + 3 * H, H);
          act_both<T>(phi_c, cb, tc, dtc, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            const T dct = dcb[k] + dhb[k] * q[3 * H + k] * dtc[k];
            dg[k] = dct * q[2 * H + k] * dq[k];
            dg[H + k] = dct * cprev[k] * dq[H + k];
            dg[2 * H + k] = dct * q[k] * dq[2 * H + k];
            dg[3 * H + k] = dhb[k] * tc[k] * dq[3 * H + k];
            dcb[k] = dct * q[H + k];
            dhb[k] = T(0);
          }
        } else {
          const T* __restrict__ hn = hn_p + bt * H;
          const T* __restrict__ hprev = t ? out_p + (bt - 1) * H : h0_p + b * H;
          T* __restrict__ dx = dgx_p + bt * GH;
          T* __restrict__ dq = q + 3 * H;  // q: r z n, dq: r' z' n'
          act_both<T>(sigma, p, q, dq, 2 * H);
          act_both<T>(phi, p + 2 * H, q + 2 * H, dq + 2 * H, H);
#pragma omp simd
          for (int64_t k = 0; k < H; ++k) {
            const T z = q[H + k];
            const T dn = dhb[k] * (T(1) - z) * dq[2 * H + k];
            dx[k] = dn * hn[k] * dq[k];
            dx[H + k] = dhb[k] * (hprev[k] - q[2 * H + k]) * dq[H + k];
            dx[2 * H + k] = dn;
            dg[k] = dx[k];
            dg[H + k] = dx[H + k];
            dg[2 * H + k] = dn * q[k];
            dhb[k] = dhb[k] * z;
          }
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
  at::Tensor tmp = at::empty({B, 11 * H}, opts);
  at::Tensor h0c = h0.contiguous();
  at::Tensor c0c = cell == LSTM ? c0.contiguous() : empty0(out);
  at::Tensor len = lengths.to(at::kLong).contiguous();
  const int64_t* L = len.data_ptr<int64_t>();

  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnlab_rec_backward", [&] {
    backward_loop<scalar_t>(go, out, pre, c_all, hn_all, h0c, c0c, dh, dc, dgh, dgx, tmp, w_hh,
                            L, B, S, GH, H, cell, phi, phi_c, sigma);
  });
  const at::Tensor dg_flat = dgh.view({B * S, GH});
  at::Tensor dw = recurrent_weight_grad(dgh, out, h0c, cell == IND);
  at::Tensor db = dg_flat.sum(0);
  at::Tensor db_ih = cell == GRU ? dgx.view({B * S, GH}).sum(0) : db;
  return {dgx, dw, db_ih, db, dh, dc};
}

}  // namespace

TORCH_LIBRARY(rnnlab_kernels, m) {
  m.def("rec_forward", &rec_forward);
  m.def("rec_backward", &rec_backward);
}
