"""``python -m rnnlab.evaluate ckpt_path=…``: test a checkpoint on its data's test split.

The checkpoint is loaded with ``weights_only=True`` (no pickled code runs), its stored
config is upgraded through :func:`rnnlab.compat.upgrade_targets` (``_target_``\\ s that
moved) and checked so only allowed ``_target_``\\ s are instantiated. The test set is
run once (``trainer.test``); everything written comes from that pass. To
``<output_dir>/`` (every file atomically, through :mod:`rnnlab.io`):

* ``metrics.json``: the test metrics and the checkpoint path;
* for whole-sequence classification, from the task's test confusion matrix and
  predictions: ``per_class.json`` (precision/recall/F1/support per class,
  :func:`rnnlab.metrics.per_class`, plus the matrix and labels), ``predictions.csv``
  (``actual,predicted`` per test sequence, for ``dvc plots``) and
  ``confusion_matrix.png``;
* for CTC recognition, ``hypotheses.csv`` (:func:`recognition_report`): per test
  utterance the reference, the greedy and the beam-search hypotheses and their CER and
  WER; the test pass decodes both ways (``test/cer``, ``test/wer`` greedy,
  ``test/cer_beam``, ``test/wer_beam`` beam, the beam being the run's ``task.decoder``
  with this config's non-null ``decoder.*`` over it) and ``test/ser``/``test/ser_beam``
  (utterances not exactly right) come from the same rows;
* ``learning_curves.png`` when the run's ``csv/metrics.csv`` sits next to the
  checkpoint directory.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import load_checkpoint
from rnnlab.compat import upgrade_targets
from rnnlab.config import config_dir, register_resolvers
from rnnlab.io import atomic_write_json, atomic_write_text
from rnnlab.loggers import quiet_lightning_tips
from rnnlab.metrics import class_labels, per_class
from rnnlab.plots import plot_confusion_matrix, plot_learning_curves
from rnnlab.resume import check_same_data as same_data_or_refuse
from rnnlab.safety import check_targets
from rnnlab.train import _floats, build_datamodule, build_task

log = logging.getLogger(__name__)
register_resolvers()

# The prepare keys that say where a bring-your-own dataset came from (named in the fix).
SOURCE_KEYS = (
    "path",
    "train_path",
    "val_path",
    "test_path",
    "root",
    "manifest",
    "librispeech_root",
    "commonvoice_tsv",
)


def check_same_data(
    ckpt: dict[str, Any], datamodule: L.LightningDataModule, ckpt_path: Path, run_cfg: DictConfig
) -> None:
    """Refuse prepared data that is not what the checkpoint was trained on.

    Checkpoints record the split files' sha256 (``ProcessedDataModule`` state). When the
    directory was prepared again differently (another CSV under the same name, other
    ``prepare.*`` settings), its vocabulary or labels no longer fit the weights: say so
    with both checksums and the fix, instead of a raw ``size mismatch`` from PyTorch
    (the rule is :func:`rnnlab.resume.check_same_data`'s, which resume uses too).
    """
    name = run_cfg.data.get("name", "?")
    settings = " ".join(
        f"prepare.{k}={v}"
        for k, v in sorted((run_cfg.get("prepare") or {}).items())
        if k in SOURCE_KEYS and v is not None
    )
    fix = (
        f"Prepare it again as the run did (its prepare settings are in the checkpoint's run "
        f"config: python -m rnnlab.data.prepare data=<data> data.name={name} "
        f"{settings or 'prepare.<key>=…'}), or point evaluate at that data with "
        "data.data_dir=<dir>"
    )
    now = getattr(datamodule, "meta", {}).get("checksums")
    # generated data (adding, copy) has no directory and no checksums: nothing to compare
    where = getattr(datamodule, "data_dir", None) or name
    same_data_or_refuse(ckpt, now, ckpt_path, data_dir=where, fix=fix)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run from ``cfg.ckpt_path``, test it once, write every output."""
    ckpt_path = Path(cfg.ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    run_config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not run_config:
        raise ValueError(f"{ckpt_path}: no rnnlab run config in the checkpoint's hyper_parameters")
    run_cfg = OmegaConf.create(upgrade_targets(run_config, "checkpoint"))
    run_cfg.data = OmegaConf.merge(run_cfg.data, cfg.get("data") or {})
    if run_cfg.task.get("name") == "ctc":
        run_cfg.task.decoder = beam_settings(run_cfg.task.get("decoder"), cfg.get("decoder"))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(run_cfg.data)
    check_same_data(ckpt, datamodule, ckpt_path, run_cfg)
    task = build_task(run_cfg, datamodule)
    task.load_state_dict(ckpt["state_dict"])
    check_targets(cfg.trainer, "trainer")
    quiet_lightning_tips()
    trainer: L.Trainer = instantiate(cfg.trainer)
    out_dir = Path(cfg.paths.output_dir)
    metrics = run_test_pass(trainer, task, datamodule, out_dir)
    curves = ckpt_path.parent.parent / "csv" / "metrics.csv"
    if curves.is_file():
        plot_learning_curves(
            curves, out_dir / "learning_curves.png", title=str(ckpt_path.parent.parent.name)
        )
    out = out_dir / "metrics.json"
    atomic_write_json(out, {"ckpt_path": str(ckpt_path), **metrics})
    log.info("metrics written to %s", out)
    return metrics


def beam_settings(run_decoder: Any, overrides: Any) -> dict[str, Any]:
    """The run's ``task.decoder`` with ``overrides``' non-null keys over it, and
    ``test_beam`` on: evaluate always decodes with the beam search too."""

    def plain(cfg: Any) -> dict[str, Any]:
        if cfg is None:
            return {}
        return dict(OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg)

    merged, extra = plain(run_decoder), plain(overrides)
    merged.update({k: v for k, v in extra.items() if v is not None})
    merged["test_beam"] = True
    return merged


def run_test_pass(
    trainer: L.Trainer, task: L.LightningModule, datamodule: L.LightningDataModule, out_dir: Path
) -> dict[str, float]:
    """``trainer.test`` (the only pass over the test set) and, from what that pass kept,
    the per-class report of a whole-sequence classifier or the hypotheses of a CTC one."""
    trainer.test(task, datamodule=datamodule)
    metrics = _floats(trainer.callback_metrics)
    confusion = getattr(task, "test_confusion", None)
    if confusion is not None and task.io.output_per == "sequence":
        names = getattr(datamodule, "class_names", None) or task.class_names
        metrics.update(classification_report(confusion, task.test_predictions, names, out_dir))
    hypotheses = getattr(task, "test_hypotheses", None)
    if hypotheses is not None:
        metrics.update(recognition_report(hypotheses, out_dir))
    return metrics


HYPOTHESES_COLUMNS = (
    "utterance",
    "reference",
    "greedy",
    "beam",
    "cer_greedy",
    "wer_greedy",
    "cer_beam",
    "wer_beam",
)


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(CER, WER) of one utterance: edit distance over characters / words divided by the
    reference's length (an empty reference: 0 when the hypothesis is empty too, else 1)."""
    from torchmetrics.functional.text import char_error_rate, word_error_rate

    if not reference.strip():
        wrong = float(bool(hypothesis.strip()))
        return wrong, wrong
    return (
        float(char_error_rate(hypothesis, reference)),
        float(word_error_rate(hypothesis, reference)),
    )


def recognition_report(
    rows: Sequence[tuple[str, str, str | None]], out_dir: Path
) -> dict[str, float]:
    """``hypotheses.csv`` (:data:`HYPOTHESES_COLUMNS`, one row per test utterance; beam
    columns empty when the beam search did not run) and the utterance error rates
    ``test/ser`` (greedy) and ``test/ser_beam``: the share of utterances whose hypothesis
    is not exactly the reference."""
    buf = StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HYPOTHESES_COLUMNS)
    wrong: dict[str, int] = {"greedy": 0, "beam": 0}
    has_beam = bool(rows) and all(beam is not None for _, _, beam in rows)
    for k, (ref, greedy, beam) in enumerate(rows):
        cer_g, wer_g = error_rates(ref, greedy)
        wrong["greedy"] += greedy != ref
        line: list[Any] = [k, ref, greedy, "" if beam is None else beam, cer_g, wer_g, "", ""]
        if beam is not None:
            line[6:8] = error_rates(ref, beam)
            wrong["beam"] += beam != ref
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in line])
    atomic_write_text(out_dir / "hypotheses.csv", buf.getvalue())
    out = {"test/ser": wrong["greedy"] / max(len(rows), 1)}
    if has_beam:
        out["test/ser_beam"] = wrong["beam"] / len(rows)
    log.info("hypotheses of %d test utterances written to %s", len(rows), out_dir)
    return out


def classification_report(
    confusion, predictions, class_names: list[str] | None, out_dir: Path
) -> dict[str, float]:
    """``per_class.json``, ``predictions.csv`` and ``confusion_matrix.png`` from the test
    pass: ``confusion`` ``(C, C)`` (rows the true class), ``predictions`` ``(N, 2)`` true and
    predicted class per test sequence (None: an empty predictions.csv)."""
    matrix = confusion.tolist()
    names = class_labels(len(matrix), class_names)
    record = {"per_class": per_class(matrix, names), "confusion_matrix": matrix, "labels": names}
    atomic_write_text(out_dir / "per_class.json", json.dumps(record, indent=2, ensure_ascii=False))
    pairs = predictions.tolist() if predictions is not None else []
    total = sum(map(sum, matrix))
    if len(pairs) != total:
        log.warning(
            "predictions.csv holds %d test sequences, the confusion matrix %d: with several "
            "processes each keeps only its own share of the predictions",
            len(pairs),
            total,
        )
    lines = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in pairs]
    atomic_write_text(out_dir / "predictions.csv", "\n".join(lines) + "\n")
    plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png")
    correct = sum(matrix[k][k] for k in range(len(matrix)))
    return {"test/acc_from_confusion": correct / max(total, 1)}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
