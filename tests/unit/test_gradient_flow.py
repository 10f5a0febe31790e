"""The gradient-flow probe measures the true ‖∂L/∂h_t‖ (through output and recurrence)."""

import json

import pytest
import torch

from rnnlab.callbacks.gradient_flow import GradientFlow
from rnnlab.tasks import TASKS

IO = {"input_kind": "features", "input_dim": 3, "output_dim": 1, "output_per": "sequence"}


def _task(cell: str, activation: str, **model):
    torch.manual_seed(0)
    cfg = {"cell": cell, "activation": activation, "hidden_size": 6, "num_layers": 2, **model}
    return TASKS["regression"](model=cfg, io=IO)


def _batch():
    g = torch.Generator().manual_seed(1)
    return {
        "inputs": torch.randn(4, 9, 3, generator=g),
        "lengths": torch.tensor([9, 5, 7, 2]),
        "targets": torch.randn(4, generator=g),
    }


def _reference_dh(task, batch):
    """∂L/∂h_t by a hand-unrolled loop through each layer's own cell (no hooks)."""
    from rnnlab.nn.cells import cell_step

    stack = task.net.stack
    recorded = []

    def manual_forward(x, lengths):
        batch_size, steps = x.shape[:2]
        mask = torch.arange(steps)[None, :] < lengths[:, None]
        inputs, finals = x, []
        for layer in stack.layers:
            w_ih, w_hh, b_ih, b_hh = layer.step_weights(0)
            h = torch.zeros(batch_size, layer.hidden_size)
            state = (h, torch.zeros_like(h)) if layer.cell == "lstm" else (h,)
            hs, outs = [], []
            for t in range(steps):
                gx = inputs[:, t] @ w_ih.T + b_ih
                gh = (state[0] @ w_hh.T if w_hh.dim() == 2 else state[0] * w_hh) + b_hh
                new = cell_step(layer.cell, layer.acts, gx, gh, state)
                keep = mask[:, t, None]
                state = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
                hs.append(state[0])
                outs.append(state[0] * keep)
            recorded.append(hs)
            inputs = torch.stack(outs, 1)
            finals.append(state)
        return inputs, finals

    original = stack.forward
    stack.forward = manual_forward
    try:
        loss, _ = task.loss_and_outputs(batch)
    finally:
        stack.forward = original
    flat = [h for hs in recorded for h in hs]
    grads = torch.autograd.grad(loss, flat)
    steps = batch["inputs"].shape[1]
    valid = torch.arange(steps)[None, :] < batch["lengths"][:, None]
    profiles = []
    for i in range(len(recorded)):
        dh = torch.stack(grads[i * steps : (i + 1) * steps], 1).norm(dim=-1) * valid
        profiles.append((dh.sum(0) / valid.sum(0)).tolist())
    return loss, profiles


@pytest.mark.parametrize(
    "cell,activation",
    [
        ("rnn", "tanh"),
        ("lstm", "tanh"),
        ("gru", "tanh"),
        ("rnn", "relu"),
        ("gru", "gelu"),
        ("indrnn", "relu"),
    ],
)
def test_probe_profile_equals_hand_unrolled_gradient(cell, activation, tmp_path):
    task = _task(cell, activation)
    batch = _batch()
    callback = GradientFlow(dirpath=tmp_path)
    record = callback.measure(task, batch)
    loss, reference = _reference_dh(task, batch)
    assert record["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    for name, expected in zip(["layer_0", "layer_1"], reference):
        assert record["layers"][name]["dh_norm"] == pytest.approx(expected, rel=1e-4, abs=1e-9)
    assert len(record["input"]["dx_norm"]) == 9
    assert record["probe"] == {"batch_size": 4, "time_steps": 9}
    # The probe leaves the model as it found it: no parameter gradients, same mode.
    assert all(p.grad is None for p in task.parameters())
    assert task.training


@pytest.mark.parametrize("variant", [{"peephole": True}, {"layer_norm": True}, {"proj_size": 3}])
def test_variant_layers_are_not_replayed_as_plain_cells(variant, tmp_path):
    # The replay runs the plain cell's equations: a peephole / layer-norm / projected
    # LSTM replayed that way would report another network's gradients (and loss).
    task = _task("lstm", "tanh", **variant)
    batch = _batch()
    with torch.no_grad():
        expected = float(task.loss_and_outputs(batch)[0])
    record = GradientFlow(dirpath=tmp_path).measure(task, batch)
    assert record["layers"] == {}
    assert record["loss"] == pytest.approx(expected, rel=1e-6)
    assert len(record["input"]["dx_norm"]) == 9 and max(record["input"]["dx_norm"]) > 0


def test_saturation_and_dead_units():
    # Huge input weights saturate tanh and sigmoid gates; a relu layer with all-negative
    # pre-activations has only dead units.
    lstm = _task("lstm", "tanh", num_layers=1)
    with torch.no_grad():
        lstm.net.stack.layers[0].weights(0)[0].mul_(1000.0)
    rec = GradientFlow(dirpath=".").measure(lstm, _batch())["layers"]["layer_0"]
    assert rec["saturated_frac"] > 0.8 and rec["gate_saturated_frac"] > 0.8

    relu = _task("rnn", "relu", num_layers=1)
    with torch.no_grad():
        for w in relu.net.stack.layers[0].weights(0):
            w.fill_(-1.0)
    rec = GradientFlow(dirpath=".").measure(relu, {**_batch(), "inputs": _batch()["inputs"].abs()})
    layer = rec["layers"]["layer_0"]
    assert layer["dead_frac"] == 1.0 and layer["saturated_frac"] is None


def test_bidirectional_and_gated_feedback_fall_back_to_input_profile(tmp_path):
    for model in ({"bidirectional": True}, {"connection": {"name": "gated_feedback"}}):
        task = _task("gru", "tanh", **model)
        record = GradientFlow(dirpath=tmp_path).measure(task, _batch())
        assert record["layers"] == {}
        assert len(record["input"]["dx_norm"]) == 9 and max(record["input"]["dx_norm"]) > 0


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="callbacks.gradient_flow.every_n_epochs=0"):
        GradientFlow(dirpath=".", every_n_epochs=0)
    with pytest.raises(ValueError, match="saturation_eps"):
        GradientFlow(dirpath=".", saturation_eps=0.7)


def test_probe_restores_the_layers_and_respects_max_probe_steps(tmp_path):
    # Beyond max_probe_steps the layer's own output is used: the loss is the model's.
    task = _task("lstm", "tanh")
    batch = _batch()
    record = GradientFlow(dirpath=tmp_path, max_probe_steps=4).measure(task, batch)
    task.eval()
    assert record["loss"] == pytest.approx(
        float(task.loss_and_outputs(batch)[0].detach()), rel=1e-5
    )
    assert all(len(layer["dh_norm"]) == 4 for layer in record["layers"].values())
    # The replay shadows each layer's forward for one pass only.
    assert not any("forward" in layer.__dict__ for layer in task.net.stack.layers)


class _Trainer:
    """The few Trainer attributes the callback reads."""

    is_global_zero, sanity_checking, loggers = True, False, []

    def __init__(self, batch):
        self.val_dataloaders = [[batch]]
        self.current_epoch = self.global_step = 0


def test_plot_is_rendered_first_then_at_most_every_plot_every_s_and_at_the_end(
    tmp_path, monkeypatch
):
    import rnnlab.callbacks.gradient_plot as gradient_plot

    rendered = []
    real = gradient_plot.plot_gradient_flow

    def counting(records, out_png):
        rendered.append(len(records))
        return real(records, out_png)

    monkeypatch.setattr(gradient_plot, "plot_gradient_flow", counting)
    task, trainer = _task("gru", "tanh"), _Trainer(_batch())
    callback = GradientFlow(dirpath=tmp_path, plot_every_s=3600)
    callback.on_train_start(trainer, task)
    for epoch in range(3):
        trainer.current_epoch, trainer.global_step = epoch, 2 * (epoch + 1)
        callback.on_train_epoch_end(trainer, task)
    doc = json.loads((tmp_path / "gradient_flow.json").read_text())
    assert len(doc["records"]) == 4  # the JSON follows every probe
    assert rendered == [1]  # the PNG only after the first, within plot_every_s
    callback.on_train_end(trainer, task)
    assert rendered == [1, 4]  # the end renders every record
    callback.on_train_end(trainer, task)
    assert rendered == [1, 4]  # nothing new: not rendered again
    assert (tmp_path / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"

    every = GradientFlow(dirpath=tmp_path / "every", plot_every_s=0)
    rendered.clear()
    trainer = _Trainer(_batch())
    every.on_train_start(trainer, task)
    every.on_train_epoch_end(trainer, task)
    assert rendered == [1, 2]
    with pytest.raises(ValueError, match="callbacks.gradient_flow.plot_every_s=-1"):
        GradientFlow(dirpath=".", plot_every_s=-1)


class _Logger:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, metrics))


def test_gradient_norms_are_logged_and_explosions_warned(caplog):
    task, trainer = _task("lstm", "tanh"), _Trainer(_batch())
    trainer.loggers, trainer.log_every_n_steps = [_Logger()], 50
    task.loss_and_outputs(_batch())[0].backward()
    for p in task.parameters():
        p.grad.mul_(1e4)
    expected = float(torch.cat([p.grad.flatten() for p in task.parameters()]).norm())
    callback = GradientFlow(dirpath=".", explode_threshold=1.0)
    with caplog.at_level("WARNING", logger="rnnlab.callbacks.gradient_flow"):
        callback.on_before_optimizer_step(trainer, task, None)
    ((step, norms),) = trainer.loggers[0].logged
    assert step == 0 and norms["grad_norm/total"] == pytest.approx(expected, rel=1e-5)
    assert set(norms) == {"grad_norm/total", "grad_norm/layer_0", "grad_norm/layer_1"}
    assert "exploding gradients: total gradient norm" in caplog.text


def _length_batch(steps: int, batch: int = 2) -> dict:
    g = torch.Generator().manual_seed(steps)
    return {
        "inputs": torch.randn(batch, steps, 3, generator=g),
        "lengths": torch.full((batch,), steps),
        "targets": torch.randn(batch, generator=g),
    }


def test_probe_uses_the_longest_validation_batch_fixed_across_epochs(tmp_path):
    # length bucketing: the first validation batch is the shortest
    task, trainer = _task("gru", "tanh"), _Trainer(_batch())
    trainer.val_dataloaders = [[_length_batch(3), _length_batch(11), _length_batch(7)]]
    callback = GradientFlow(dirpath=tmp_path, plot_every_s=3600)
    callback.on_train_start(trainer, task)
    trainer.val_dataloaders = [[_length_batch(2)]]  # a later epoch's loader: not re-picked
    trainer.current_epoch, trainer.global_step = 0, 2
    callback.on_train_epoch_end(trainer, task)
    assert [r["probe"]["time_steps"] for r in callback.records] == [11, 11]


def test_tiny_gradients_do_not_underflow_to_zero(tmp_path):
    # a contracting tanh Elman RNN over 60 steps: ‖∂L/∂h_t‖ falls below float32's floor
    task = _task("rnn", "tanh", num_layers=1)
    with torch.no_grad():
        task.net.stack.layers[0].weights(0)[1].mul_(0.02)
    batch = _length_batch(60, batch=4)
    fp32 = GradientFlow(dirpath=tmp_path, probe_dtype="float32").measure(task, batch)
    assert 0.0 in fp32["layers"]["layer_0"]["dh_norm"]  # what today's probe records
    record = GradientFlow(dirpath=tmp_path).measure(task, batch)
    profile = record["layers"]["layer_0"]["dh_norm"]
    assert record["dtype"] == "float64" and all(v > 0 for v in profile)
    assert profile[0] < 1e-45 < profile[-1]
    # the trained weights are untouched (the probe ran on a float64 copy)
    assert all(p.dtype == torch.float32 and p.grad is None for p in task.parameters())


@pytest.mark.parametrize(
    "cell,expected,not_expected",
    [
        ("lstm", "model.forget_bias=1.0", "gated cells"),
        ("gru", "already gated (gru)", "gated cells (model/cell"),
        ("rnn", "gated cells (model/cell=lstm or gru)", "already gated"),
        ("indrnn", "model.init=identity", "gated cells"),
    ],
)
def test_vanishing_warning_gives_advice_that_fits_the_cell(cell, expected, not_expected, caplog):
    task = _task(cell, "tanh", num_layers=1)
    record = {
        "epoch": 0,
        "probe": {"time_steps": 9},
        "layers": {"layer_0": {"dh_norm": [1e-12] + [1.0] * 8}},
    }
    with caplog.at_level("WARNING", logger="rnnlab.callbacks.gradient_flow"):
        GradientFlow(dirpath=".")._warn_vanishing(record, task)
    assert "vanishing gradients in layer_0" in caplog.text
    assert expected in caplog.text and not_expected not in caplog.text
