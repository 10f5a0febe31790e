"""Train/val/test assignment, one rule for every dataset source.

* **Fractions**: ``val_fraction`` and ``test_fraction`` each in [0, 1) with a sum < 1
  (:func:`check_fractions`); a split that ends up empty is refused by
  :func:`require_nonempty`, naming the sizes.
* **Hash splits**: an item's split comes from sha256 of a key (the normalised text, or
  ``label/file name`` for audio) alone, so it is identical on every machine, identical
  keys always share a split, and adding items never moves existing ones.
* **Group-disjoint splits**: whole speakers (or voices) go to one split, seeded
  (:func:`split_groups`), or as given by explicit val/test lists.
* **Carving**: when a source gives train and test but no val, val is carved from train
  by the same hash rule (or by group when groups are known).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rnnlab.errors import DataError

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def check_fractions(val_fraction: float, test_fraction: float, where: str) -> None:
    """Each fraction in [0, 1) and their sum < 1, or a DataError naming ``where``."""
    ok = 0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
    if not ok:
        raise DataError(
            f"{where}: val_fraction={val_fraction!r}, test_fraction={test_fraction!r}; each "
            "must be in [0, 1) and their sum < 1"
        )


def canonical_split(value: object) -> str | None:
    """'train'/'val'/'test' for any accepted spelling (dev, valid, testing, ...), else None."""
    return SPLIT_ALIASES.get(str(value).strip().lower()) if value is not None else None


def hash_unit(key: str) -> float:
    """A stable number in [0, 1) from ``key`` (sha256), independent of seed and platform."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16) / float(16**15)


def hash_split(key: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """'train'/'val'/'test' from ``key`` alone: [0, test) test, [test, test+val) val."""
    u = hash_unit(key)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_groups(
    groups: Iterable[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    val_groups: Sequence[str] | None = None,
    test_groups: Sequence[str] | None = None,
    kind: str = "speaker",
) -> dict[str, list[str]]:
    """Assign whole groups (speakers, voices) to train/val/test.

    Explicit ``val_groups``/``test_groups`` win; otherwise a seeded permutation puts
    ``round(fraction * n)`` groups (at least one) in val and test, and at least one in
    train. ``kind`` names the groups in error messages.
    """
    all_groups = sorted(set(groups))
    for name, given in ((f"val_{kind}s", val_groups), (f"test_{kind}s", test_groups)):
        unknown = sorted(set(given or ()) - set(all_groups))
        if unknown:
            raise DataError(f"{name}: unknown {kind}(s) {unknown}; valid: {', '.join(all_groups)}")
    if val_groups or test_groups:
        if not (val_groups and test_groups):
            raise DataError(f"val_{kind}s and test_{kind}s must be given together (or neither)")
        overlap = sorted(set(val_groups) & set(test_groups))
        if overlap:
            raise DataError(f"{kind}s {overlap} are in both val_{kind}s and test_{kind}s")
        held = set(val_groups) | set(test_groups)
        return {
            "train": [s for s in all_groups if s not in held],
            "val": sorted(val_groups),
            "test": sorted(test_groups),
        }
    check_fractions(val_fraction, test_fraction, f"{kind}-disjoint split")
    if len(all_groups) < 3:
        raise DataError(f"need at least 3 {kind}s for a {kind}-disjoint split, got {all_groups}")
    order = [all_groups[i] for i in np.random.default_rng(seed).permutation(len(all_groups))]
    n_test = max(1, round(test_fraction * len(order)))
    n_val = max(1, round(val_fraction * len(order)))
    n_test = min(n_test, len(order) - 2)
    n_val = min(n_val, len(order) - n_test - 1)
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def shared_groups(groups_by_split: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Groups present in two splits, as {'train/val': [...], ...} (only non-empty pairs)."""
    sets = {k: set(v) for k, v in groups_by_split.items()}
    out = {}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(sets.get(a, set()) & sets.get(b, set()))
        if both:
            out[f"{a}/{b}"] = both
    return out


def name_list(names: Sequence[str], limit: int = 5) -> str:
    """'a, b, c' — or the first ``limit`` and 'and N more' — for warnings and errors."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(map(str, names))
    return ", ".join(map(str, names[:limit])) + f" and {len(names) - limit} more"


def require_nonempty(sizes: Mapping[str, int], where: str, hint: str = "") -> None:
    """Refuse a dataset with an empty split, naming every split's size."""
    empty = [k for k in SPLITS if sizes.get(k, 0) == 0]
    if empty:
        raise DataError(
            f"{where}: split(s) {empty} are empty (sizes {dict(sizes)})"
            + (f"; {hint}" if hint else "; add data, or change val_fraction/test_fraction")
        )
