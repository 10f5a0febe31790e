"""CTC recognition: greedy decoding and a model that learns to transcribe."""

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
