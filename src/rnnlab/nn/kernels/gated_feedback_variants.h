// Shared by gated_feedback_variants.cpp (forward, op registration) and
// gated_feedback_variants_backward.cpp: the per-layer inputs and Spec the kernel hands to
// the variant kernels' row math (variant_rows.h); shapes in gated_feedback_common.h.
#pragma once

#include "gated_feedback_common.h"
#include "variant_rows.h"

namespace {

// The stacked per-layer inputs of the kernel's forward and backward: peepholes (L, 3, H),
// recurrent-dropout masks (L, B, P), zoneout keep masks (L, S, B, P) / (L, S, B, H), the
// six layer-norm parameters (L, G, H) / (L, H) (each empty when absent).
struct GfvInputs {
  at::Tensor peep, rdrop, kh, kc, zrow, kscr;
  std::vector<at::Tensor> ln;
};

// Layer j's Spec: variant_rows.h's row math reads its parameters and masks through it.
// drop stays null: the loops apply the recurrent-dropout masks to h* themselves.
template <typename T>
Spec<T> layer_spec(const FeedbackDims& d, const GfvInputs& in, int64_t j, int64_t cell, int64_t phi,
                   int64_t phi_c, int64_t sigma, int64_t variant, double z, const int64_t* L) {
  const int64_t H = d.H, GH = d.GH, P = d.P;
  auto at_layer = [&](const at::Tensor& t, int64_t width) -> const T* {
    return t.numel() ? t.data_ptr<T>() + j * width : nullptr;
  };
  const uint8_t* kh = mask_or_null(in.kh);
  const uint8_t* kc = mask_or_null(in.kc);
  Spec<T> s{d.B, d.S, GH, H, P, cell, phi, phi_c, sigma, variant, L,
            at_layer(in.peep, 3 * H), nullptr,
            kh ? kh + j * d.S * d.B * P : nullptr, kc ? kc + j * d.S * d.B * H : nullptr,
            static_cast<T>(kh ? 0.0 : z), P != H,
            at_layer(in.ln[0], GH), at_layer(in.ln[1], GH), at_layer(in.ln[2], H),
            at_layer(in.ln[3], H), at_layer(in.ln[4], GH), at_layer(in.ln[5], GH),
            in.zrow.data_ptr<T>(), ptr_or_null<T>(in.kscr)};
  return s;
}

inline GfvInputs gfv_inputs(const at::Tensor& peep, const at::Tensor& rdrop, const at::Tensor& kh,
                            const at::Tensor& kc, double z, std::vector<at::Tensor> ln,
                            int64_t B, int64_t H, int64_t P, const at::TensorOptions& opts) {
  for (auto& t : ln) t = t.contiguous();
  const int64_t w = std::max(H, P);
  return {peep.contiguous(), rdrop.contiguous(), kh.contiguous(), kc.contiguous(),
          at::full({w}, kh.numel() ? 0.0 : z, opts),
          kh.numel() ? at::empty({B, 2 * w}, opts) : at::empty({0}, opts), ln};
}

}  // namespace

namespace rnnlab_gfv {

std::vector<at::Tensor> gfv_forward(const at::Tensor& gx0, const at::Tensor& w_in,
                                    const at::Tensor& w_rec, const at::Tensor& b_ih,
                                    const at::Tensor& b_hh, const at::Tensor& peep,
                                    const at::Tensor& w_hr, const at::Tensor& drop,
                                    const at::Tensor& rdrop, const at::Tensor& kh,
                                    const at::Tensor& kc, double z, const at::Tensor& lengths,
                                    int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
                                    int64_t variant, std::vector<at::Tensor> ln_params,
                                    bool save);

std::vector<at::Tensor> gfv_backward(
    const at::Tensor& grad_out, const at::Tensor& grad_h, const at::Tensor& grad_c,
    const at::Tensor& w_in, const at::Tensor& w_rec, const at::Tensor& peep,
    const at::Tensor& w_hr, const at::Tensor& drop, const at::Tensor& rdrop, const at::Tensor& kh,
    const at::Tensor& kc, double z, const at::Tensor& hs, const at::Tensor& cs,
    const at::Tensor& pre, const at::Tensor& ct, const at::Tensor& hn, const at::Tensor& g,
    const at::Tensor& lengths, int64_t cell, int64_t phi, int64_t phi_c, int64_t sigma,
    int64_t variant, std::vector<at::Tensor> ln_params, std::vector<at::Tensor> ln_saved);

}  // namespace rnnlab_gfv
