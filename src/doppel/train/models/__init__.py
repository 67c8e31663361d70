"""Face-model architectures, one self-contained file each, registered explicitly by name.

Every architecture is an ``nn.Module`` built from a :class:`~doppel.train.config.ModelConfig`
and offers the same contract (see :class:`FaceModel`): ``forward(src, dst)`` for training and
``swap(dst)`` for merging. Tensors are float32 NCHW RGB in [0, 1] at ``config.resolution``.
``detail.py`` is not an architecture: it holds the optional per-identity detail network that follows
a face model (:mod:`doppel.train.detail`).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, cast

import torch
from torch import nn

from doppel.core.registry import Registry
from doppel.train.config import ModelConfig


class Outputs(NamedTuple):
    """Reconstructions ``(N, 3, R, R)`` and masks ``(N, 1, R, R)``, all in [0, 1]."""

    src: torch.Tensor
    src_mask: torch.Tensor
    dst: torch.Tensor
    dst_mask: torch.Tensor


class FaceModel(Protocol):
    config: ModelConfig

    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> Outputs: ...

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def parts(self) -> dict[str, nn.Module]: ...


ARCHS: Registry[nn.Module] = Registry("architecture")


def _register() -> None:
    from doppel.train.models import df, liae

    ARCHS.register("liae")(liae.LIAE)
    ARCHS.register("df")(df.DF)


_register()


def config_of(model: nn.Module) -> ModelConfig:
    """The :class:`ModelConfig` a built model carries (every architecture stores it as ``config``)."""
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"{type(model).__name__} carries no ModelConfig")
    return cfg


def as_face_model(model: nn.Module) -> FaceModel:
    """``model`` seen through the architecture contract (every registered architecture meets it)."""
    config_of(model)
    return cast(FaceModel, model)


def build_model(config: ModelConfig) -> nn.Module:
    """The architecture named by ``config.arch``, freshly initialised."""
    return ARCHS.create(config.arch, config=config)


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameter count per named part (encoder, inter, decoder, ...) and in total."""
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in as_face_model(model).parts().items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
