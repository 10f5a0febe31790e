// rnnlab gated-feedback kernel: the lockstep time loop of an L-layer gated-feedback
// stack (Chung et al. 2015; docs/equations.md) with a hand-written backward.
//
// Everything is time-major so that each step's per-layer slices are contiguous (B, X)
// matrices the BLAS calls read and write in place. Python (kernels/gated_feedback.py)
// assembles the weights:
//   gx0   (T, B, G*H + L)   layer 0's [W_ih x + b_ih | gate_u x] for all steps (one matmul)
//   w_in  (L-1, G*H + L, H) [W_ih_j; gate_u_j] of layers j >= 1, b_in (L-1, G*H + L)
//   w_rec (L, N, H)         per SOURCE layer i: [W_hh_i without its candidate block;
//                           U^{i->0}; ...; U^{i->L-1}; gate_h_0[:, block i]; ...]
//                           N = (G-1)*H + L*H + L*L, so every product that reads
//                           h^i_{t-1} (own gates, feedback to all layers, all global
//                           reset gates) is ONE matmul per source layer and step
//   b_rec (L, G*H)          b_hh_j (its candidate block is the feedback bias)
//   drop  (L-1, T, B, H)    inverted-dropout masks between layers, or empty
// Forward per step: L products with w_rec, then per layer j >= 1 one product with w_in.
// Backward per step: per layer one product for the feedback (dcand_j F_j, whose
// per-source blocks also give d g^{i->j} = (F-block^T dcand) . h^i without saving the
// feedback terms), one for the layer input (j >= 1), and per source one for the own
// gates plus one for all reset gates. Weight gradients are large matmuls over the
// saved (T*B)-row tensors after the loop. Padded steps keep the state and emit zeros.
// As in recurrence.cpp: batch rows are independent recurrences, so the time loop runs
// on per-thread row blocks with no barrier between steps, and each per-step product
// uses a weight packed once per call (MKL packed GEMM, float32) where available.
#include <torch/library.h>

#include "gated_feedback_common.h"

namespace {

using Dims = FeedbackDims;  // P = H: no projection here

template <typename T>
void forward_loop(const Dims& d, const at::Tensor& gx0, const at::Tensor& w_in,
                  const at::Tensor& b_in, const at::Tensor& w_rec, const at::Tensor& b_rec,
                  const at::Tensor& drop, const int64_t* Lb, int64_t cell, int64_t phi,
                  int64_t phi_c, int64_t sigma, bool save, at::Tensor& out, at::Tensor& hs,
                  at::Tensor& cs, at::Tensor& pre, at::Tensor& cand_all, at::Tensor& gsave) {
  const int64_t S = d.S, B = d.B, H = d.H, L = d.L, GH = d.GH, GW = d.GW, N = d.N;
  const bool has_drop = drop.numel() > 0;
  const auto opts = gx0.options();
  at::Tensor sbuf = at::empty({L, B, N}, opts);
  at::Tensor abuf = at::empty({B, GW}, opts);
  at::Tensor ubuf = at::empty({B, H}, opts);
  at::Tensor tmp = at::empty({B, 5 * H + L}, opts);
  const T* gx_p = gx0.data_ptr<T>();
  T* s_p = sbuf.data_ptr<T>();
  T* a_p = abuf.data_ptr<T>();
  T* u_p = ubuf.data_ptr<T>();
  const T* brec_p = b_rec.data_ptr<T>();
  const T* bin_p = L > 1 ? b_in.data_ptr<T>() : nullptr;
  const T* drop_p = has_drop ? drop.data_ptr<T>() : nullptr;
  T* out_p = out.data_ptr<T>();
  T* hs_p = hs.data_ptr<T>();
  T* c_p = cell == LSTM ? cs.data_ptr<T>() : nullptr;
  T* pre_p = pre.data_ptr<T>();
  T* cand_p = cell == GRU ? cand_all.data_ptr<T>() : nullptr;
  T* g_p = gsave.data_ptr<T>();
  T* tmp_p = tmp.data_ptr<T>();
  const int64_t blocks = row_blocks(B);
  const int64_t max_n = (B + blocks - 1) / blocks;
  std::vector<StepMatmul<T>> rec, inp;
  // Pack budget: half the saved activations in training (the forward then peaks
  // about where the backward does); unlimited for inference, which saves nothing.
  const int64_t saved = hs.nbytes() + cs.nbytes() + pre.nbytes() + cand_all.nbytes();
  PackBudget budget{save ? saved / 2 : INT64_MAX};
  for (int64_t i = 0; i < L; ++i) rec.emplace_back(w_rec.select(0, i), true, max_n, &budget);
  for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), true, max_n, &budget);

  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
  const int64_t nr = r1 - r0;
  for (int64_t t = 0; t < S; ++t) {
    const int64_t ts = save ? t : 0;
    for (int64_t i = 0; i < L; ++i)
      rec[i](hs_p + ((i * (S + 1) + t) * B + r0) * H, H, nr, T(0), s_p + (i * B + r0) * N, N);
    for (int64_t j = 0; j < L; ++j) {
      const T* A = gx_p + t * B * GW;
      if (j > 0) {
        const T* u = hs_p + (((j - 1) * (S + 1) + t + 1) * B + r0) * H;
        if (drop_p) {
          const T* __restrict__ m = drop_p + (((j - 1) * S + t) * B + r0) * H;
          T* __restrict__ ub = u_p + r0 * H;
#pragma omp simd
          for (int64_t k = 0; k < nr * H; ++k) ub[k] = m[k] * u[k];
          u = ub;
        }
        inp[j - 1](u, H, nr, T(0), a_p + r0 * GW, GW);
        const T* __restrict__ bias = bin_p + (j - 1) * GW;
        for (int64_t b = r0; b < r1; ++b) {
          T* __restrict__ ab = a_p + b * GW;
#pragma omp simd
          for (int64_t k = 0; k < GW; ++k) ab[k] += bias[k];
        }
        A = a_p;
      }
      const T* brec = brec_p + j * GH;
      {
        for (int64_t b = r0; b < r1; ++b) {
          T* __restrict__ hn = hs_p + ((j * (S + 1) + t + 1) * B + b) * H;
          const T* __restrict__ ho = hn - B * H;
          T* __restrict__ cn = c_p ? c_p + ((j * (S + 1) + t + 1) * B + b) * H : nullptr;
          if (t >= Lb[b]) {  // padded step: the state stays, the output is zero
            // The saved gates meet zero gradients in the batched weight products after
            // the backward loop: they must be finite (0 * garbage can be NaN).
            T* gs = g_p + ((j * (save ? S : 1) + ts) * B + b) * L;
            std::fill(gs, gs + L, T(0));
            std::copy(ho, ho + H, hn);
            if (cn) std::copy(cn - B * H, cn - B * H + H, cn);
            if (j == L - 1) std::fill(out_p + (t * B + b) * H, out_p + (t * B + b + 1) * H, T(0));
            continue;
          }
          const T* __restrict__ a = A + b * GW;
          T* __restrict__ q = tmp_p + b * (5 * H + L);
          T* __restrict__ cand = q + 4 * H;
          T* __restrict__ gg = q + 5 * H;
          // Global reset gates g^{i->j} = sigmoid(w . u^j + v . h*_{t-1}).
          for (int64_t i = 0; i < L; ++i) {
            T v = a[GH + i];
            for (int64_t src = 0; src < L; ++src) v += s_p[(src * B + b) * N + d.secG + j * L + i];
            gg[i] = sigm(v);
          }
          std::copy(gg, gg + L, g_p + ((j * (save ? S : 1) + ts) * B + b) * L);
          // Candidate recurrence: b_cand + sum_i g^{i->j} U^{i->j} h^i_{t-1}.
          const T* __restrict__ bc = brec + d.kc * H;
          std::copy(bc, bc + H, cand);
          for (int64_t i = 0; i < L; ++i) {
            const T gi = gg[i];
            const T* __restrict__ P = s_p + (i * B + b) * N + d.secU + j * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) cand[k] += gi * P[k];
          }
          T* __restrict__ p = pre_p + ((j * (save ? S : 1) + ts) * B + b) * GH;
          const T* __restrict__ own = s_p + (j * B + b) * N;
          for (int64_t qb = 0; qb < d.G - 1; ++qb) {
            const int64_t m = d.block_of(qb);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k)
              p[m * H + k] = a[m * H + k] + own[qb * H + k] + brec[m * H + k];
          }
          if (cell == RNN) {
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) p[k] = a[k] + cand[k];
            act_fwd<T>(phi, p, hn, H);
          } else if (cell == LSTM) {
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) p[2 * H + k] = a[2 * H + k] + cand[k];
            act_fwd<T>(sigma, p, q, 2 * H);
            act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
            act_fwd<T>(sigma, p + 3 * H, q + 3 * H, H);
            const T* __restrict__ co = cn - B * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) cn[k] = q[H + k] * co[k] + q[k] * q[2 * H + k];
            act_fwd<T>(phi_c, cn, q, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) hn[k] = q[3 * H + k] * q[k];
          } else {
            act_fwd<T>(sigma, p, q, 2 * H);
            std::copy(cand, cand + H, cand_p + ((j * (save ? S : 1) + ts) * B + b) * H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) p[2 * H + k] = a[2 * H + k] + q[k] * cand[k];
            act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
              const T z = q[H + k];
              hn[k] = (T(1) - z) * q[2 * H + k] + z * ho[k];
            }
          }
          if (j == L - 1) std::copy(hn, hn + H, out_p + (t * B + b) * H);
        }
      }
    }
  }
  });
}

// Returns {out (T,B,H), hs (L,T+1,B,H), c (L,T+1,B,H) or empty, pre (L,T,B,GH),
// cand (L,T,B,H) GRU only, g (L,T,B,L)}; with save=false only the state history.
std::vector<at::Tensor> gf_forward(const at::Tensor& gx0, const at::Tensor& w_in,
                                   const at::Tensor& b_in, const at::Tensor& w_rec,
                                   const at::Tensor& b_rec, const at::Tensor& drop,
                                   const at::Tensor& lengths, int64_t cell, int64_t phi,
                                   int64_t phi_c, int64_t sigma, bool save) {
  TORCH_CHECK(gx0.dim() == 3 && gx0.is_contiguous(), "gx0 must be a contiguous (T, B, G*H+L) tensor");
  TORCH_CHECK(w_rec.dim() == 3 && w_rec.is_contiguous(), "w_rec must be contiguous (L, N, H)");
  const Dims d(cell, gx0.size(0), gx0.size(1), w_rec.size(2), w_rec.size(2), w_rec.size(0));
  TORCH_CHECK(gx0.size(2) == d.GW, "gx0 width ", gx0.size(2), " != G*H+L = ", d.GW);
  TORCH_CHECK(w_rec.size(1) == d.N, "w_rec rows ", w_rec.size(1), " != ", d.N);
  TORCH_CHECK(w_in.size(0) == d.L - 1 && b_rec.size(1) == d.GH, "w_in / b_rec shapes");
  TORCH_CHECK(drop.numel() == 0 || drop.numel() == (d.L - 1) * d.S * d.B * d.H, "drop shape");
  const int64_t S = d.S, B = d.B, H = d.H, L = d.L, ST = save ? S : 1;
  const auto opts = gx0.options();
  at::Tensor out = at::empty({S, B, H}, opts);
  at::Tensor hs = at::empty({L, S + 1, B, H}, opts);
  hs.select(1, 0).zero_();
  at::Tensor cs = cell == LSTM ? at::empty({L, S + 1, B, H}, opts) : empty0(gx0);
  if (cell == LSTM) cs.select(1, 0).zero_();
  at::Tensor pre = at::empty({L, ST, B, d.GH}, opts);
  at::Tensor cand_all = cell == GRU ? at::empty({L, ST, B, H}, opts) : empty0(gx0);
  at::Tensor gsave = at::empty({L, ST, B, L}, opts);
  at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor w_in_c = w_in.contiguous(), b_in_c = b_in.contiguous();
  const at::Tensor b_rec_c = b_rec.contiguous(), drop_c = drop.contiguous();
  AT_DISPATCH_FLOATING_TYPES(gx0.scalar_type(), "rnnlab_gf_forward", [&] {
    forward_loop<scalar_t>(d, gx0, w_in_c, b_in_c, w_rec, b_rec_c, drop_c, len.data_ptr<int64_t>(),
                           cell, phi, phi_c, sigma, save, out, hs, cs, pre, cand_all, gsave);
  });
  return {out, hs, cs, pre, cand_all, gsave};
}

template <typename T>
void backward_loop(const Dims& d, const at::Tensor& go, const at::Tensor& w_in,
                   const at::Tensor& w_rec, const at::Tensor& drop, const at::Tensor& hs,
                   const at::Tensor& cs, const at::Tensor& pre, const at::Tensor& cand_all,
                   const at::Tensor& gsave, const int64_t* Lb, int64_t cell, int64_t phi,
                   int64_t phi_c, int64_t sigma, at::Tensor& dH, at::Tensor& dC,
                   std::vector<at::Tensor>& D, at::Tensor& DC) {
  const int64_t S = d.S, B = d.B, H = d.H, L = d.L, GH = d.GH, GW = d.GW, NG = d.NG;
  const int64_t LH = L * H;
  const bool has_drop = drop.numel() > 0;
  const auto opts = hs.options();
  // F_j = [U^{0->j} | ... | U^{L-1->j}] (H, L*H) and the stacked reset-gate weights
  // GHM (L*L, L*H), rebuilt once from w_rec so each step uses one product for each.
  at::Tensor F = at::empty({L, H, LH}, opts);
  at::Tensor GHM = at::empty({L * L, LH}, opts);
  for (int64_t i = 0; i < L; ++i) {
    const at::Tensor wi = w_rec.select(0, i);
    for (int64_t j = 0; j < L; ++j)
      F.select(0, j).narrow(1, i * H, H).copy_(wi.narrow(0, d.secU + j * H, H));
    GHM.narrow(1, i * H, H).copy_(wi.narrow(0, d.secG, L * L));
  }
  at::Tensor dHp = at::empty({B, LH}, opts);
  at::Tensor Q = at::empty({B, LH}, opts);
  at::Tensor DG = at::empty({L, B, std::max<int64_t>(NG, 1)}, opts);
  at::Tensor DA = at::empty({B, L * L}, opts);
  at::Tensor du = at::empty({B, H}, opts);
  at::Tensor tmp = at::empty({B, 6 * H}, opts);
  const int64_t gs0 = go.stride(0), gs1 = go.stride(1), gs2 = go.stride(2);
  const T* go_p = go.data_ptr<T>();
  const T* hs_p = hs.data_ptr<T>();
  const T* c_p = cell == LSTM ? cs.data_ptr<T>() : nullptr;
  const T* pre_p = pre.data_ptr<T>();
  const T* cand_p = cell == GRU ? cand_all.data_ptr<T>() : nullptr;
  const T* g_p = gsave.data_ptr<T>();
  const T* drop_p = has_drop ? drop.data_ptr<T>() : nullptr;
  T* q_p = Q.data_ptr<T>();
  T* du_p = du.data_ptr<T>();
  T* dC_p = cell == LSTM ? dC.data_ptr<T>() : nullptr;
  T* DG_p = DG.data_ptr<T>();
  T* DA_p = DA.data_ptr<T>();
  T* DC_p = cell == GRU ? DC.data_ptr<T>() : nullptr;
  T* tmp_p = tmp.data_ptr<T>();
  const int64_t ldg = DG.size(2);
  const int64_t blocks = row_blocks(B);
  const int64_t max_n = (B + blocks - 1) / blocks;
  std::vector<StepMatmul<T>> fb, inp, gates;
  // Pack budget: 15% of what the backward holds (saved activations and D); the
  // largest step weights first. The reset-gate product (K = L*L) is never worth it.
  int64_t held = hs.nbytes() + cs.nbytes() + pre.nbytes() + cand_all.nbytes() + DC.nbytes();
  for (const auto& dj : D) held += dj.nbytes();
  PackBudget budget{held * 3 / 20}, none{0};
  for (int64_t j = 1; j < L; ++j) inp.emplace_back(w_in.select(0, j - 1), false, max_n, &budget);
  if (NG > 0)
    for (int64_t i = 0; i < L; ++i)
      gates.emplace_back(w_rec.select(0, i).narrow(0, 0, NG), false, max_n, &budget);
  for (int64_t j = 0; j < L; ++j) fb.emplace_back(F.select(0, j), false, max_n, &budget);
  const StepMatmul<T> resets(GHM, false, max_n, &none);

  over_row_blocks(B, blocks, [&](int64_t r0, int64_t r1) {
  const int64_t nr = r1 - r0;
  T* dH_p = dH.data_ptr<T>();  // this block's rows of both buffers; swapped every step
  T* dHp_p = dHp.data_ptr<T>();
  for (int64_t t = S - 1; t >= 0; --t) {
    std::fill(dHp_p + r0 * LH, dHp_p + r1 * LH, T(0));
    for (int64_t j = L - 1; j >= 0; --j) {
      T* D_p = D[j].data_ptr<T>();
      // (1) the cell: d(pre-activations), d(candidate), the direct carry.
      {
        for (int64_t b = r0; b < r1; ++b) {
          T* __restrict__ dh = dH_p + b * LH + j * H;
          T* __restrict__ dhp = dHp_p + b * LH + j * H;
          T* __restrict__ Dj = D_p + (t * B + b) * GW;
          T* __restrict__ dgate = DG_p + (j * B + b) * ldg;
          T* __restrict__ dcand = DC_p ? DC_p + ((j * S + t) * B + b) * H : nullptr;
          if (t >= Lb[b]) {  // padded: the unchanged state passes its gradient through
            std::fill(Dj, Dj + GW, T(0));
            std::fill(dgate, dgate + ldg, T(0));
            if (dcand) std::fill(dcand, dcand + H, T(0));
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) dhp[k] += dh[k];
            continue;
          }
          if (j == L - 1) {
            const T* gob = go_p + t * gs0 + b * gs1;
            if (gs2 == 1) {
#pragma omp simd
              for (int64_t k = 0; k < H; ++k) dh[k] += gob[k];
            } else {  // e.g. the stride-0 gradient of out.sum()
              for (int64_t k = 0; k < H; ++k) dh[k] += gob[k * gs2];
            }
          }
          const int64_t row = (j * S + t) * B + b;
          const T* __restrict__ p = pre_p + row * GH;
          const T* __restrict__ hprev = hs_p + ((j * (S + 1) + t) * B + b) * H;
          T* __restrict__ q = tmp_p + b * 6 * H;
          if (cell == RNN) {
            act_bwd<T>(phi, p, dh, Dj, H);
          } else if (cell == LSTM) {
            const T* __restrict__ cb = c_p + ((j * (S + 1) + t + 1) * B + b) * H;
            const T* __restrict__ cprev = cb - B * H;
            T* __restrict__ dcb = dC_p + (j * B + b) * H;
            act_fwd<T>(sigma, p, q, 2 * H);
            act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
            act_fwd<T>(sigma, p + 3 * H, q + 3 * H, H);
            T* __restrict__ tc = q + 4 * H;
            T* __restrict__ u = q + 5 * H;
            act_fwd<T>(phi_c, cb, tc, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) u[k] = dh[k] * q[3 * H + k];
            act_bwd<T>(phi_c, cb, u, u, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
              const T dct = dcb[k] + u[k];
              Dj[k] = dct * q[2 * H + k];
              Dj[H + k] = dct * cprev[k];
              Dj[2 * H + k] = dct * q[k];
              Dj[3 * H + k] = dh[k] * tc[k];
              dcb[k] = dct * q[H + k];
            }
            act_bwd<T>(sigma, p, Dj, Dj, 2 * H);
            act_bwd<T>(phi, p + 2 * H, Dj + 2 * H, Dj + 2 * H, H);
            act_bwd<T>(sigma, p + 3 * H, Dj + 3 * H, Dj + 3 * H, H);
            std::copy(Dj, Dj + 2 * H, dgate);
            std::copy(Dj + 3 * H, Dj + 4 * H, dgate + 2 * H);
          } else {
            const T* __restrict__ hn = cand_p + row * H;
            act_fwd<T>(sigma, p, q, 2 * H);
            act_fwd<T>(phi, p + 2 * H, q + 2 * H, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
              const T z = q[H + k];
              Dj[2 * H + k] = dh[k] * (T(1) - z);
              Dj[H + k] = dh[k] * (hprev[k] - q[2 * H + k]);
              dhp[k] += dh[k] * z;
            }
            act_bwd<T>(phi, p + 2 * H, Dj + 2 * H, Dj + 2 * H, H);
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
              Dj[k] = Dj[2 * H + k] * hn[k];
              dcand[k] = Dj[2 * H + k] * q[k];
            }
            act_bwd<T>(sigma, p, Dj, Dj, 2 * H);
            std::copy(Dj, Dj + 2 * H, dgate);
          }
        }
      }
      // (2) feedback: Q = dcand_j [U^{0->j} | ... ], one product for all sources.
      if (cell == GRU) {
        fb[j](DC_p + ((j * S + t) * B + r0) * H, H, nr, T(0), q_p + r0 * LH, LH);
      } else {
        fb[j](D_p + (t * B + r0) * GW + d.kc * H, GW, nr, T(0), q_p + r0 * LH, LH);
      }
      {
        for (int64_t b = r0; b < r1; ++b) {
          T* __restrict__ Dj = D_p + (t * B + b) * GW;
          T* __restrict__ da = DA_p + b * L * L + j * L;
          if (t >= Lb[b]) {
            std::fill(da, da + L, T(0));
            continue;
          }
          const T* __restrict__ gg = g_p + ((j * S + t) * B + b) * L;
          for (int64_t i = 0; i < L; ++i) {
            const T* __restrict__ qi = q_p + b * LH + i * H;
            const T* __restrict__ hp = hs_p + ((i * (S + 1) + t) * B + b) * H;
            T* __restrict__ dhp = dHp_p + b * LH + i * H;
            const T gi = gg[i];
            T dg = 0;
#pragma omp simd reduction(+ : dg)
            for (int64_t k = 0; k < H; ++k) {
              dg += qi[k] * hp[k];
              dhp[k] += gi * qi[k];
            }
            da[i] = dg * gi * (T(1) - gi);
            Dj[GH + i] = da[i];
          }
        }
      }
      // (3) layer input u^j = drop * h^{j-1}_t: one product for W_ih_j and gate_u_j.
      if (j > 0) {
        inp[j - 1](D_p + (t * B + r0) * GW, GW, nr, T(0), du_p + r0 * H, H);
        {
          for (int64_t b = r0; b < r1; ++b) {
            if (t >= Lb[b]) continue;
            T* __restrict__ dh = dH_p + b * LH + (j - 1) * H;
            const T* __restrict__ db = du_p + b * H;
            if (drop_p) {
              const T* __restrict__ m = drop_p + (((j - 1) * S + t) * B + b) * H;
#pragma omp simd
              for (int64_t k = 0; k < H; ++k) dh[k] += m[k] * db[k];
            } else {
#pragma omp simd
              for (int64_t k = 0; k < H; ++k) dh[k] += db[k];
            }
          }
        }
      }
    }
    // (4) own gates per source layer, then all reset gates in one product.
    for (int64_t i = 0; i < static_cast<int64_t>(gates.size()); ++i)
      gates[i](DG_p + (i * B + r0) * ldg, ldg, nr, T(1), dHp_p + r0 * LH + i * H, LH);
    resets(DA_p + r0 * L * L, L * L, nr, T(1), dHp_p + r0 * LH, LH);
    std::swap(dH_p, dHp_p);
  }
  });
}

// Returns {d_gx0 (T,B,GW), d_w_in, d_b_in, d_w_rec, d_b_rec}.
std::vector<at::Tensor> gf_backward(const at::Tensor& grad_out, const at::Tensor& grad_h,
                                    const at::Tensor& grad_c, const at::Tensor& w_in,
                                    const at::Tensor& w_rec, const at::Tensor& drop,
                                    const at::Tensor& hs, const at::Tensor& cs,
                                    const at::Tensor& pre, const at::Tensor& cand_all,
                                    const at::Tensor& gsave, const at::Tensor& lengths,
                                    int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma) {
  const Dims d(cell, hs.size(1) - 1, hs.size(2), hs.size(3), hs.size(3), hs.size(0));
  const int64_t S = d.S, B = d.B, H = d.H, L = d.L, GH = d.GH, GW = d.GW, TB = S * B;
  const auto opts = hs.options();
  // dH: gradient w.r.t. every layer's state h^j_t, (B, L*H) so the reset-gate product
  // of step t lands on all layers at once.
  at::Tensor dH = grad_h.permute({1, 0, 2}).reshape({B, L * H}).clone();
  at::Tensor dC = cell == LSTM ? grad_c.contiguous().clone() : empty0(hs);
  std::vector<at::Tensor> D;
  for (int64_t j = 0; j < L; ++j) D.push_back(at::empty({S, B, GW}, opts));
  at::Tensor DC = cell == GRU ? at::empty({L, S, B, H}, opts) : empty0(hs);
  at::Tensor len = lengths.to(at::kLong).contiguous();
  const at::Tensor w_in_c = w_in.contiguous(), drop_c = drop.contiguous();
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "rnnlab_gf_backward", [&] {
    backward_loop<scalar_t>(d, grad_out, w_in_c, w_rec, drop_c, hs, cs, pre, cand_all, gsave,
                            len.data_ptr<int64_t>(), cell, phi, phi_c, sigma, dH, dC, D, DC);
  });
  // Weight gradients: one large product over the (T*B) saved rows per weight block.
  at::Tensor d_w_in = at::empty({L - 1, GW, H}, opts);
  at::Tensor d_b_in = at::empty({L - 1, GW}, opts);
  for (int64_t j = 1; j < L; ++j) {
    const at::Tensor Dj = D[j].view({TB, GW});
    at::Tensor u = hs.select(0, j - 1).narrow(0, 1, S).reshape({TB, H});
    if (drop.numel()) u = u * drop_c.select(0, j - 1).reshape({TB, H});
    at::Tensor dw = d_w_in.select(0, j - 1);
    at::mm_out(dw, Dj.t(), u);
    d_b_in.select(0, j - 1).copy_(Dj.sum(0));
  }
  at::Tensor d_w_rec = at::empty({L, d.N, H}, opts);
  at::Tensor d_b_rec = at::empty({L, GH}, opts);
  for (int64_t i = 0; i < L; ++i) {
    const at::Tensor hprev = hs.select(0, i).narrow(0, 0, S).reshape({TB, H});
    const at::Tensor Di = D[i].view({TB, GW});
    source_weight_grads(
        d_w_rec.select(0, i), hprev, Di, gsave, i, d.G, H, L, d.kc, d.secU, d.secG,
        [&](int64_t j) {
          return cell == GRU ? DC.select(0, j).view({TB, H})
                             : D[j].view({TB, GW}).narrow(1, d.kc * H, H);
        },
        [&](int64_t j) { return D[j].view({TB, GW}).narrow(1, GH, L); });
    d_b_rec.select(0, i).copy_(Di.narrow(1, 0, GH).sum(0));
    if (cell == GRU)
      d_b_rec.select(0, i).narrow(0, d.kc * H, H).copy_(DC.select(0, i).view({TB, H}).sum(0));
  }
  return {D[0], d_w_in, d_b_in, d_w_rec, d_b_rec};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab_kernels, m) {
  m.def("gf_forward", &gf_forward);
  m.def("gf_backward", &gf_backward);
}
