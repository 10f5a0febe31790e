"""model.time_reduction: k frames stacked into one before the recurrent stack."""

import pytest
import torch

from rnnlab.nn.model import FrameStack, ModelIO, build_model, check_model_config
from rnnlab.tasks import TASKS

FEATURES_STEP = ModelIO("features", 3, 5, "step")
FEATURES_SEQ = ModelIO("features", 3, 4, "sequence")


def test_frame_stack_concatenates_k_frames_and_ceil_divides_lengths():
    x = torch.arange(2 * 7 * 3, dtype=torch.float).reshape(2, 7, 3)
    out = FrameStack(3)(x)
    assert out.shape == (2, 3, 9)  # ceil(7 / 3) frames of 3 * 3 features
    torch.testing.assert_close(out[0, 0], x[0, 0:3].reshape(-1))
    torch.testing.assert_close(out[1, 1], x[1, 3:6].reshape(-1))
    # the last group: frame 6 then two zero frames
    torch.testing.assert_close(out[0, 2], torch.cat([x[0, 6], torch.zeros(6)]))
    lengths = FrameStack(3).reduce_lengths(torch.tensor([7, 6, 4, 1]))
    assert lengths.tolist() == [3, 2, 2, 1]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_step_outputs_and_output_lengths_follow_the_reduction(k):
    torch.manual_seed(0)
    model = build_model({"hidden_size": 6, "time_reduction": k}, FEATURES_STEP)
    lengths = torch.tensor([11, 7, 2])
    logits = model(torch.randn(3, 11, 3), lengths)
    assert logits.shape == (3, -(-11 // k), 5)
    assert model.output_lengths(lengths).tolist() == [-(-n // k) for n in lengths.tolist()]


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_a_sequence_gives_the_same_output_alone_or_padded_in_a_batch(pooling):
    torch.manual_seed(0)
    cfg = {"hidden_size": 6, "time_reduction": 3, "bidirectional": True, "pooling": pooling}
    model = build_model(cfg, FEATURES_SEQ).eval()
    seq = torch.randn(1, 7, 3)
    alone = model(seq, torch.tensor([7]))
    batch = torch.zeros(2, 12, 3)
    batch[0, :7], batch[1] = seq[0], torch.randn(12, 3)
    torch.testing.assert_close(model(batch, torch.tensor([7, 12]))[0], alone[0])


def test_state_dict_names_do_not_depend_on_the_reduction():
    """Old checkpoints (no time_reduction) load: the stacking has no parameters."""
    plain = build_model({"hidden_size": 6}, FEATURES_STEP)
    stacked = build_model({"hidden_size": 6, "time_reduction": 2}, FEATURES_STEP)
    assert list(plain.state_dict()) == list(stacked.state_dict())
    first = next(k for k in plain.state_dict() if k.endswith("weight_ih_l0"))
    assert stacked.state_dict()[first].shape[1] == 2 * plain.state_dict()[first].shape[1]
    assert "reduction" not in repr(plain) and "FrameStack(k=2)" in repr(stacked)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_time_reduction_is_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match=r"model.time_reduction=.* must be an integer >= 1"):
        check_model_config({"time_reduction": bad})


def test_per_step_classification_refuses_time_reduction():
    """Per-step targets (the copy probe) need one output per input step."""
    io = {"input_kind": "tokens", "input_dim": 6, "output_dim": 6, "output_per": "step"}
    with pytest.raises(ValueError, match=r"model.time_reduction=2 .* one target per input step"):
        TASKS["classification"](model={"hidden_size": 4, "time_reduction": 2}, io=io)
    # whole-sequence outputs and token inputs compose with it
    io = {**io, "output_per": "sequence"}
    task = TASKS["classification"](model={"hidden_size": 4, "time_reduction": 2}, io=io)
    assert task(torch.randint(1, 6, (2, 5)), torch.tensor([5, 3])).shape == (2, 6)
