// Shared by the gated-feedback kernels, plain (gated_feedback.cpp) and with the cell
// variants (gated_feedback_variants*.cpp): their shapes and w_rec layout, the reset
// gates' sigmoid, and one source layer's recurrent weight gradients (products over the
// (S*B) saved rows after the backward loop).
#pragma once

#include <torch/library.h>  // before common.h: at::NoGradGuard

#include "common.h"

namespace {

// Shapes shared by forward and backward: S steps, B rows, H hidden, P the state width
// (proj_size with an LSTM projection, else H), L layers, G gate blocks. w_rec rows per
// SOURCE layer i (N of them, each P wide): its own-gate rows of W_hh without the
// candidate block (NG), U^{i->j} for j = 0..L-1 (L*H from secU), the reset-gate rows
// gate_h_j[:, block i] for j = 0..L-1 (L*L from secG).
struct FeedbackDims {
  int64_t S, B, H, P, L, G, GH, GW, N, NG, secU, secG, kc;
  FeedbackDims(int64_t cell, int64_t S_, int64_t B_, int64_t H_, int64_t P_, int64_t L_)
      : S(S_), B(B_), H(H_), P(P_), L(L_) {
    G = cell == LSTM ? 4 : (cell == GRU ? 3 : 1);
    GH = G * H;
    GW = GH + L;
    NG = (G - 1) * H;
    secU = NG;
    secG = NG + L * H;
    N = secG + L * L;
    kc = cell == RNN ? 0 : 2;  // the candidate block: g (LSTM), n (GRU), the whole (Elman)
  }
  // Row q of the own-gate section <- gate block m (skipping the candidate).
  int64_t block_of(int64_t q) const { return q < kc ? q : q + 1; }
};

template <typename T>
inline T sigm(T v) {
  return T(1) / (T(1) + fm::exp<T>(-v));
}

// dwi (N, P) <- own gates: dG_i^T h~ (the candidate block skipped: LSTM i,f | o, GRU r,z),
// U^{i->j}: dcand_j^T (g^{i->j} h~), gate_h_j[:, block i]: dA_j^T h~, for every target j.
// hprev (TB, P): h~^i_{t-1}; dgates (TB, >= G*H): layer i's gate gradients; gsave
// (L, S, B, L) the reset gates; dcand(j) (TB, H) and dreset(j) (TB, L): target j's
// candidate and reset-gate gradients.
template <typename Dcand, typename Dreset>
void source_weight_grads(at::Tensor dwi, const at::Tensor& hprev, const at::Tensor& dgates,
                         const at::Tensor& gsave, int64_t i, int64_t G, int64_t H, int64_t L,
                         int64_t kc, int64_t secU, int64_t secG, const Dcand& dcand,
                         const Dreset& dreset) {
  const int64_t TB = hprev.size(0);
  if (kc > 0) {
    at::Tensor dst = dwi.narrow(0, 0, kc * H);
    at::mm_out(dst, dgates.narrow(1, 0, kc * H).t(), hprev);
  }
  if (G - 1 > kc) {
    const int64_t n = (G - 1 - kc) * H;
    at::Tensor dst = dwi.narrow(0, kc * H, n);
    at::mm_out(dst, dgates.narrow(1, (kc + 1) * H, n).t(), hprev);
  }
  at::Tensor gh = at::empty_like(hprev);
  for (int64_t j = 0; j < L; ++j) {
    at::mul_out(gh, hprev, gsave.select(0, j).view({TB, L}).narrow(1, i, 1));
    at::Tensor dU = dwi.narrow(0, secU + j * H, H);
    at::mm_out(dU, dcand(j).t(), gh);
    at::Tensor dG = dwi.narrow(0, secG + j * L, L);
    at::mm_out(dG, dreset(j).t(), hprev);
  }
}

}  // namespace
