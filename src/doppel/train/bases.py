"""Base face models doppel ships in the package (``doppel/train/bases/NAME/``), and which one a run starts from.

A shipped base is a model folder like any other (``config.json``, ``train.json``, ``model.safetensors``;
weights stored in half precision to stay small, loaded into a float32 model) plus a ``DATA_CARD.md``
naming every person it was pretrained on. A new pair model whose architecture and capacity equal a
shipped base's starts from that base unless the user asks otherwise (``doppel train --no-base``):
starting from faces already learned is worth hundreds of steps, which is most of a CPU budget
(``research/ablation.md``, "base model").

A base also lists who it learned (``people.json``: each person's mean identity embedding). A pair run onto,
or from, a person the base already knows is warned (:func:`known_people`): fine-tuned for a CPU budget,
such a model keeps drawing that person as the base learned them, so a swap onto them keeps their
identity (measured: ``research/ablation.md``, d3 -> s18).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from doppel.io.atomic import write_text_atomic
from doppel.store.records import FaceRecord
from doppel.train import checkpoint
from doppel.train.config import ModelConfig

log = logging.getLogger(__name__)

BASES_DIR = Path(__file__).with_name("bases")
PREFIX = "doppel:"  # how train.json names a shipped base (it moves with the installed package)
PEOPLE = "people.json"
# Distance between two people's *mean* identity embeddings (dlib's 128-d) under which they are taken for one
# person. Halves of one clip's faces measured 0.13-0.35 apart, different people 0.43-0.87 (the six shared
# clips): means sit closer than single faces, so dlib's 0.6 for a pair of faces would join different people.
SAME_PERSON = 0.38
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
    if (model_dir / PEOPLE).is_file():
        write_text_atomic(out / PEOPLE, (model_dir / PEOPLE).read_text())
    log.info("wrote base model %s (%d tensors)", out, len(tensors))
    return out


def mean_embeddings(faces: Mapping[str, Sequence[FaceRecord]]) -> dict[str, np.ndarray]:
    """Each identity's mean identity embedding over its faces that have one (identities without any left out)."""
    out = {}
    for name, records in faces.items():
        vecs = [np.asarray(r.embedding, np.float64) for r in records if r.embedding is not None]
        if vecs:
            out[name] = np.mean(vecs, axis=0)
    return out


def write_people(model_dir: Path, faces: Mapping[str, Sequence[FaceRecord]]) -> Path:
    """Record in ``model_dir/people.json`` who a base model was pretrained on: each identity's mean embedding."""
    means = mean_embeddings(faces)
    doc = {"embedding": "dlib-resnet 128-d, mean over the identity's faces",
           "people": {name: [round(float(v), 5) for v in vec] for name, vec in means.items()}}
    path = model_dir / PEOPLE
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    return path


@dataclass(frozen=True)
class Known:
    """``identity`` of the run looks like ``person`` of the base (mean embeddings ``distance`` apart)."""

    identity: str
    person: str
    distance: float


def known_people(base_dir: Path, faces: Mapping[str, Sequence[FaceRecord]],
                 threshold: float = SAME_PERSON) -> list[Known]:
    """The run's identities (``faces``: name -> faces) that the base in ``base_dir`` was pretrained on, by
    identity embedding; empty when the base does not say who it learned (no ``people.json``)."""
    try:
        people = json.loads((base_dir / PEOPLE).read_text())["people"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found = []
    for name, mean in mean_embeddings(faces).items():
        dists = {p: float(np.linalg.norm(mean - np.asarray(v, np.float64))) for p, v in people.items()
                 if len(v) == len(mean)}
        if dists:
            person = min(dists, key=lambda k: dists[k])
            if dists[person] < threshold:
                found.append(Known(name, person, round(dists[person], 3)))
    return found
