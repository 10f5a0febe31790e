"""CTC recognition: greedy decoding and a model that learns to transcribe."""

import pytest
import torch

from rnnlab.tasks.ctc import CTCRecognitionTask, greedy_decode


def test_greedy_decode_merges_repeats_and_drops_blanks():
    # frames: a a _ a b b _ _ (blank=0, label k is output k+1)
    frames = torch.tensor([1, 1, 0, 1, 2, 2, 0, 0])
    logits = torch.nn.functional.one_hot(frames, 3).float().unsqueeze(0)
    assert greedy_decode(logits, torch.tensor([8])) == [[0, 0, 1]]
    assert greedy_decode(logits, torch.tensor([3])) == [[0]]


def test_ctc_task_learns_to_transcribe_a_small_batch():
    torch.manual_seed(0)
    names = ["zero", "one", "two"]
    task = CTCRecognitionTask(
        model={"cell": "gru", "hidden_size": 32, "bidirectional": True},
        io={"input_kind": "features", "input_dim": 4, "output_dim": 4, "output_per": "step"},
        class_names=names,
    )
    # each label is a 3-frame burst on its own channel, separated by silence frames
    targets = [[0, 1], [2, 2, 1], [1], [2, 0, 1]]
    inputs, lengths = [], []
    for t in targets:
        frames = []
        for k in t:
            frames += [torch.nn.functional.one_hot(torch.tensor(k), 4).float()] * 3
            frames += [torch.tensor([0, 0, 0, 1.0])]
        inputs.append(torch.stack(frames))
        lengths.append(len(frames))
    batch = {
        "inputs": torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True),
        "lengths": torch.tensor(lengths),
        "targets": torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(t) for t in targets], batch_first=True
        ),
        "target_lengths": torch.tensor([len(t) for t in targets]),
    }
    opt = torch.optim.Adam(task.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        loss, _ = task.loss_and_outputs(batch)
        loss.backward()
        opt.step()
    _, logits = task.loss_and_outputs(batch)
    assert greedy_decode(logits, batch["lengths"]) == targets
    assert task.spell([2, 0]) == "two zero"


# --- CTC composes with every cell, activation, connection, direction and reduction -----
COMBOS = [
    {"cell": "lstm", "bidirectional": True, "num_layers": 2, "time_reduction": 2},
    {"cell": "gru", "activation": "relu", "connection": {"name": "residual"}, "num_layers": 2},
    {"cell": "rnn", "activation": "tanh", "connection": {"name": "highway"}, "num_layers": 2},
    {"cell": "indrnn", "activation": "relu", "init": "identity", "time_reduction": 3},
    {"cell": "gru", "connection": {"name": "gated_feedback"}, "num_layers": 2, "time_reduction": 2},
    {"cell": "lstm", "connection": {"name": "dense"}, "num_layers": 2, "bidirectional": True},
    {"cell": "lstm", "activation": "gelu", "connection": {"name": "stack"}, "fused": False},
    {
        "connection": {
            "name": "parallel",
            "branches": [{"cell": "lstm", "activation": "tanh"}, {"cell": "gru"}],
        },
        "bidirectional": True,
        "time_reduction": 4,
    },
]


def _ctc_task(model, names=("zero", "one", "two")):
    return CTCRecognitionTask(
        model={"hidden_size": 8, **model},
        io={"input_kind": "features", "input_dim": 4, "output_dim": 4, "output_per": "step"},
        class_names=list(names),
    )


def _random_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([24, 17, 9])
    return {
        "inputs": torch.randn(3, 24, 4, generator=g),
        "lengths": lengths,
        "targets": torch.tensor([[0, 1, 2], [2, 2, 0], [1, 0, 0]]),
        "target_lengths": torch.tensor([3, 3, 1]),
    }


@pytest.mark.parametrize("model", COMBOS, ids=lambda m: "-".join(map(str, m.values()))[:60])
def test_ctc_composes_with_cells_connections_directions_and_time_reduction(model):
    torch.manual_seed(0)
    task = _ctc_task(model)
    batch = _random_batch()
    loss, logits = task.loss_and_outputs(batch)
    k = model.get("time_reduction", 1)
    assert logits.shape[:2] == (3, -(-24 // k))
    assert task.net.output_lengths(batch["lengths"]).tolist() == [-(-n // k) for n in (24, 17, 9)]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in task.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt = torch.optim.Adam(task.parameters(), lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        step_loss, _ = task.loss_and_outputs(batch)
        step_loss.backward()
        opt.step()
    assert task.loss_and_outputs(batch)[0] < loss


def test_test_pass_keeps_greedy_and_beam_hypotheses():
    import lightning as L

    torch.manual_seed(0)
    task = _ctc_task({"time_reduction": 2})
    task.beam_config = type(task.beam_config).from_mapping({"beam_size": 1, "test_beam": True})
    batch = _random_batch()

    class Data(L.LightningDataModule):
        def test_dataloader(self):
            return torch.utils.data.DataLoader([batch], batch_size=None)

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.test(task, datamodule=Data(), verbose=False)
    rows = task.test_hypotheses
    assert [r[0] for r in rows] == ["zero one two", "two two zero", "one"]
    assert all(greedy == beam for _, greedy, beam in rows)  # beam 1 = greedy
    m = trainer.callback_metrics
    assert float(m["test/cer_beam"]) == pytest.approx(float(m["test/cer"]))
    assert float(m["test/wer_beam"]) == pytest.approx(float(m["test/wer"]))


# --- the task must fit the data ---------------------------------------------------------
class FakeData:
    """What create_task reads from a DataModule."""

    def __init__(self, task_type, io, labels):
        self.name, self.data_dir, self.task_type = "mine", "data/processed/mine", task_type
        self.io, self.class_names, self.class_weights = io, labels, None
        self.meta = {"task": task_type, "labels": labels}


def test_ctc_on_classification_data_fails_naming_the_mismatch():
    from rnnlab.nn.model import ModelIO
    from rnnlab.tasks import create_task

    data = FakeData("classification", ModelIO("features", 4, 2, "sequence"), ["no", "yes"])
    with pytest.raises(ValueError) as err:
        create_task("ctc", data, model={}, class_weights="auto", label_smoothing=0.0)
    message = str(err.value)
    assert "task.name='ctc' does not fit data 'mine'" in message
    assert "data/processed/mine/meta.json" in message and "'classification'" in message
    assert "task.name=classification" in message and "speech_transcripts" in message
    with pytest.raises(ValueError, match="task.name='nope' is not known; valid: classification"):
        create_task("nope", data, model={})


def test_task_keys_another_task_takes_are_refused_naming_the_key():
    from rnnlab.nn.model import ModelIO
    from rnnlab.tasks import create_task, task_keys

    data = FakeData("ctc", ModelIO("features", 4, 3, "step"), ["a", "▁"])
    data.meta["decode"] = {"join": "", "word_boundary": "▁"}
    with pytest.raises(ValueError, match=r"task.class_weights is not a setting of task.name=ctc"):
        create_task("ctc", data, model={"hidden_size": 4}, class_weights="auto")
    assert "decoder" in task_keys("ctc") and "class_weights" in task_keys("classification")
    task = create_task("ctc", data, model={"hidden_size": 4}, monitor="val/loss")
    assert task.spell([0, 1, 0]) == "a a"  # the data's decode record: chars, ▁ a space
