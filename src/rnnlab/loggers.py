"""Weights & Biases: one run per Hydra job, offline unless the machine is set up for W&B.

wandb with no API key and no ``WANDB_MODE`` stops at start to ask for a key; a sweep on
a cluster node would hang there. ``mode: auto`` therefore picks ``online`` only when the
machine has credentials (``WANDB_API_KEY``, an identity-token file or a netrc entry for
the W&B host) and ``offline`` otherwise; an explicit ``WANDB_MODE`` always wins. Offline
runs are complete runs on disk: ``wandb sync <output_dir>/wandb/offline-run-*`` uploads
them later.

Seeds: every job of one configuration gets the same ``job_type``,
``<job_type>-<config hash>`` (:func:`config_hash`: the composed config without any
``seed`` key and without run-specific paths), and the hash is in the run config as
``config_hash``, so the dashboard groups a sweep's runs (group = the sweep) by
configuration and shows the spread over seeds ("Group by: job_type").
"""

from __future__ import annotations

import hashlib
import json
import logging
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, WandbLogger

from rnnlab.metrics import class_labels, per_class

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials(env: Mapping[str, str] | None = None) -> bool:
    """True when wandb could authenticate without asking: key, token file or netrc."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    candidates = [env.get("NETRC")] if env.get("NETRC") else []
    home = Path(env.get("HOME", str(Path.home())))
    candidates += [str(home / ".netrc"), str(home / "_netrc")]
    for path in candidates:
        if not path or not Path(path).is_file():
            continue
        try:
            if netrc.netrc(path).authenticators(host):
                return True
        except (netrc.NetrcParseError, OSError) as err:
            log.warning("could not read %s (%s); ignoring it for W&B credentials", path, err)
    return False


def resolve_mode(mode: str, env: Mapping[str, str] | None = None) -> str:
    """The W&B mode to use: ``WANDB_MODE`` if set, else ``mode`` (``auto``: see module)."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise ValueError(f"logger.wandb.mode={mode!r}; valid: {', '.join(MODES)}")
    chosen = env.get("WANDB_MODE") or mode
    if chosen == "dryrun":  # wandb's old name for offline
        chosen = "offline"
    if chosen not in MODES:
        raise ValueError(f"WANDB_MODE={chosen!r}; valid: online, offline, disabled")
    if chosen == "auto":
        chosen = "online" if has_wandb_credentials(env) else "offline"
    return chosen


def _hydra_job() -> tuple[bool, Any] | None:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.get()
    except ImportError:
        return None
    return hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg


def sweep_run_name() -> str | None:
    """``<job num>:<overrides>`` for a multirun job, so the dashboard shows what varied."""
    job = _hydra_job()
    if job is None or not job[0]:
        return None
    hydra_cfg = job[1]
    return f"{hydra_cfg.job.num}:{hydra_cfg.job.override_dirname}"


def sweep_group() -> str | None:
    """The W&B group shared by every job of one Hydra multirun: the sweep directory name."""
    job = _hydra_job()
    if job is None or not job[0]:
        return None
    return f"sweep-{Path(job[1].sweep.dir).name}"


def wandb_logger(
    *,
    save_dir: str,
    project: str = "rnnlab",
    entity: str | None = None,
    group: str | None = None,
    job_type: str = "train",
    name: str | None = None,
    tags: Sequence[Any] = (),
    notes: str | None = None,
    mode: str = "auto",
) -> Logger | None:
    """A ``WandbLogger`` for this job, or None when W&B is disabled.

    Checkpoints are never uploaded (``log_model=False``): they are DVC outputs, and the
    run summary records their paths instead.
    """
    chosen = resolve_mode(mode)
    if chosen == "disabled":
        log.info("W&B disabled (logger.wandb.mode / WANDB_MODE)")
        return None
    if chosen == "offline" and mode == "auto" and not os.environ.get("WANDB_MODE"):
        log.info("no W&B credentials on this machine: logging offline (sync with `wandb sync`)")
    os.environ["WANDB_MODE"] = chosen  # rank processes and wandb-core see the same mode
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        group=group or sweep_group(),
        job_type=job_type,
        name=name or sweep_run_name(),
        tags=sorted({str(t) for t in tags if t is not None and str(t)}),
        notes=notes,
        offline=chosen == "offline",
        log_model=False,
        reinit="finish_previous",
    )
    # Lightning always passes anonymous=None, which wandb >= 0.19 answers on every run
    # with "The anonymous setting has no effect and will be removed": leave it unset.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


class _DropLitLoggerTip(logging.Filter):
    """Lightning 2.6 logs an advertisement for its LitLogger on every Trainer without one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "try installing [litlogger]" not in record.getMessage()


def quiet_lightning_tips() -> None:
    """Install the filter once on Lightning's rank-zero info logger (idempotent)."""
    target = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in target.filters):
        target.addFilter(_DropLitLoggerTip())


def wandb_loggers(loggers: Sequence[Logger]) -> list[WandbLogger]:
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def finish_wandb(exit_code: int = 0, summary: Mapping[str, Any] | None = None) -> None:
    """Finish the live wandb run (if any) so the next Hydra job starts a new one."""
    import wandb

    run = wandb.run
    if run is None:
        return
    for key, value in (summary or {}).items():
        run.summary[key] = value
    run.finish(exit_code=exit_code)


def log_classification_report(
    logger: WandbLogger, confusion: Any, class_names: Sequence[str] | None
) -> None:
    """Test-set confusion matrix (W&B's chart) and a per-class precision/recall/F1 table
    (:func:`rnnlab.metrics.per_class`, the numbers of ``rnnlab.evaluate``'s per_class.json)."""
    import wandb

    counts = confusion.tolist()
    n = len(counts)
    names = class_labels(n, class_names)
    cells = [[names[i], names[j], counts[i][j]] for i in range(n) for j in range(n)]
    matrix = wandb.plot_table(
        "wandb/confusion_matrix/v1",
        wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=cells),
        {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
        {"title": "test confusion matrix"},
    )
    rows = [
        [name, s["precision"], s["recall"], s["f1"], s["support"]]
        for name, s in per_class(counts, names).items()
    ]
    table = wandb.Table(columns=["class", "precision", "recall", "f1", "support"], data=rows)
    logger.experiment.log({"test/confusion_matrix": matrix, "test/per_class": table})


# Top-level keys that describe where and how a run is recorded, not what it computes.
RUN_ONLY_KEYS = frozenset(
    {"paths", "hydra", "logger", "ckpt_path", "print_config", "auto_prepare", "params_file"}
)


def _without_seed(value: Any, output_dir: str | None) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _without_seed(v, output_dir) for k, v in value.items() if k != "seed"}
    if isinstance(value, (list, tuple)):
        return [_without_seed(v, output_dir) for v in value]
    if output_dir and isinstance(value, str) and value.startswith(output_dir):
        return "<output_dir>" + value[len(output_dir) :]
    return value


def config_hash(config: Mapping[str, Any], length: int = 8) -> str:
    """sha256 (first ``length`` hex digits) of the resolved config without every ``seed``
    key (``seed``, ``data.seed``, ...), the run-only top-level keys (paths, logger,
    hydra, ...) and the job's output directory inside any value: equal for the seeds of
    one configuration, different as soon as anything else differs."""
    output_dir = str((config.get("paths") or {}).get("output_dir") or "") or None
    kept = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
    text = json.dumps(_without_seed(kept, output_dir), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def log_full_config(loggers: Sequence[Logger], config: Mapping[str, Any]) -> None:
    """The whole composed config at the top level of the W&B run config (filterable),
    plus ``config_hash``; a run not started yet gets ``job_type=<job_type>-<hash>``
    so the seeds of one configuration share a job type (see the module docstring)."""
    digest = config_hash(config)
    for logger in wandb_loggers(loggers):
        init = getattr(logger, "_wandb_init", None)  # WandbLogger's wandb.init kwargs
        if getattr(logger, "_experiment", None) is None and isinstance(init, dict):
            base = init.get("job_type") or "train"
            init["job_type"] = f"{base}-{digest}"
        else:
            log.info("W&B run already started: job_type stays, config_hash=%s", digest)
        logger.experiment.config.update(
            {**dict(config), "config_hash": digest}, allow_val_change=True
        )
