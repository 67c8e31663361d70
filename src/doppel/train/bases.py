"""Base face models doppel ships in the package (``doppel/train/bases/NAME/``), and which one a run starts from.

A shipped base is a model folder like any other (``config.json``, ``train.json``, ``model.safetensors``;
weights stored in half precision to stay small, loaded into a float32 model) plus a ``DATA_CARD.md``
naming every person it was pretrained on. A new pair model whose architecture and capacity equal a
shipped base's starts from that base unless the user asks otherwise (``doppel train --no-base``):
starting from faces already learned is worth hundreds of steps, which is most of a CPU budget
(``research/ablation.md``, "base model").
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from doppel.io.atomic import write_text_atomic
from doppel.train import checkpoint
from doppel.train.config import ModelConfig

log = logging.getLogger(__name__)

BASES_DIR = Path(__file__).with_name("bases")
PREFIX = "doppel:"  # how train.json names a shipped base (it moves with the installed package)
SHIPPED_TRAIN_KEYS = ("train", "src", "preset", "doppel_version", "steps", "images", "seconds", "threads",
                      "held_out", "commit", "faces_per_identity", "last_metrics")


def shipped() -> dict[str, Path]:
    """Shipped base model folders by name."""
    if not BASES_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BASES_DIR.iterdir()) if (p / checkpoint.CONFIG).is_file()
            and (p / checkpoint.WEIGHTS).is_file()}


def for_config(cfg: ModelConfig) -> tuple[str, Path] | None:
    """The shipped base (name, folder) whose architecture and capacity are exactly ``cfg``'s, if any."""
    for name, path in shipped().items():
        if checkpoint.read_config(path) == cfg:
            return name, path
    return None


def resolve(ref: str) -> Path | None:
    """The folder of a shipped base named ``doppel:NAME`` (as :func:`label` writes it), else None."""
    if not ref.startswith(PREFIX):
        return None
    return shipped().get(ref[len(PREFIX):])


def label(path: Path) -> str:
    """How a run records the base it started from: ``doppel:NAME`` for a shipped one, else the path."""
    return f"{PREFIX}{path.name}" if path.parent.resolve() == BASES_DIR.resolve() else str(path)


def export(model_dir: Path, out: Path, extra: dict[str, object]) -> Path:
    """Write ``model_dir``'s inference weights as a shippable base in ``out``: float16 tensors with
    their checksum, its ``config.json``, and a ``train.json`` of what it was trained on (``extra`` adds
    steps, timing, held-out people)."""
    cfg = checkpoint.read_config(model_dir)
    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v
               for k, v in load_file(str(model_dir / checkpoint.WEIGHTS)).items()}
    meta = json.loads((model_dir / checkpoint.TRAIN).read_text())
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.write_weights(out, tensors, {"arch": cfg.arch})
    checkpoint.write_config(out, cfg)
    info = {k: v for k, v in {**meta, **extra}.items() if k in SHIPPED_TRAIN_KEYS}
    write_text_atomic(out / checkpoint.TRAIN, json.dumps({**info, "pretrain": True}, indent=2, sort_keys=True) + "\n")
    log.info("wrote base model %s (%d tensors)", out, len(tensors))
    return out
