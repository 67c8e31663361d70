"""Frozen configs for the face model and its training, and the named presets.

:class:`ModelConfig` says what network to build (saved as ``config.json`` beside the weights and
read back by merge); :class:`TrainConfig` says how to train it (saved as ``train.json``). Both
are merged once, in :func:`doppel.workflow.train.resolve_configs`, from a preset (or a base model,
or the saved run) then flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from doppel.core.config import Settings
from doppel.core.errors import ConfigError

FORMAT_VERSION = 1

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class ModelConfig(Settings):
    """The network: architecture name and capacity.

    ``resolution`` is the aligned crop size (a multiple of 32 in [64, 512]); ``e_dims`` the
    encoder's base width, ``ae_dims`` the bottleneck width, ``d_dims`` / ``d_mask_dims`` the face
    and mask decoder base widths. ``double_res`` (DeepFaceLab's "d") decodes at half resolution
    and finishes with a depth-to-space x2; ``pixel_norm`` (DeepFaceLab's "u") normalises the code.
    """

    FLAGS: ClassVar[Mapping[str, str]] = {k: "--" + k.replace("_", "-") for k in (
        "arch", "resolution", "face_type", "ae_dims", "e_dims", "d_dims", "d_mask_dims")}

    format_version: int = FORMAT_VERSION
    arch: str = "liae"
    resolution: int = 128
    face_type: Literal["full", "whole", "head"] = "full"
    e_dims: int = Field(64, ge=8, le=512)
    ae_dims: int = Field(256, ge=16, le=2048)
    d_dims: int = Field(64, ge=8, le=512)
    d_mask_dims: int = Field(22, ge=4, le=256)
    double_res: bool = True
    pixel_norm: bool = True

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: int) -> int:
        if not 64 <= v <= 512 or v % 32:
            raise ValueError(f"resolution {v} must be a multiple of 32 in [64, 512]")
        return v


class DetailConfig(Settings):
    """The per-identity detail network (:mod:`doppel.train.models.detail`), saved in ``detail.json``.

    ``scale``: output side over input side; ``channels``/``blocks``: width and depth of the
    low-resolution trunk; ``hr_channels``: width at the output resolution. The ``cpu`` preset trains one
    on the last quarter of a pair model's budget (``Preset.detail``; ``doppel train --no-detail`` opts out):
    at an equal 30 CPU-minutes it doubled the swap's sharpness and improved every full-reference figure of
    the held-out self-swap (``research/ablation.md``).
    """

    format_version: int = FORMAT_VERSION
    scale: int = Field(3, ge=2, le=4)
    channels: int = Field(32, ge=8, le=128)
    blocks: int = Field(3, ge=1, le=16)
    hr_channels: int = Field(12, ge=4, le=64)


class TrainConfig(Settings):
    """How to train: batch, optimiser, loss weights, augmentation and runtime switches."""

    FLAGS: ClassVar[Mapping[str, str]] = {k: "--" + k.replace("_", "-") for k in (
        "batch", "accum", "lr", "gan_power", "precision", "workers", "compile", "seed", "checkpoint_minutes",
        "preview_minutes")}

    batch: int = Field(8, ge=1, le=1024)          # faces per identity per step (per process)
    accum: int = Field(1, ge=1, le=64)            # gradient accumulation steps per optimiser step
    lr: float = Field(5e-5, gt=0, le=1.0)
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    ssim_weight: float = Field(1.0, ge=0)
    pixel_loss: Literal["l1", "mse"] = "mse"
    pixel_weight: float = Field(1.0, ge=0)
    eyes_mouth_weight: float = Field(3.0, ge=0)   # extra pixel-loss weight inside eye/mouth hulls
    grad_weight: float = Field(0.0, ge=0)         # image-gradient L1 (0: none)
    spectrum_weight: float = Field(0.0, ge=0)     # top-octave amplitude-spectrum L1 (losses.spectrum_loss; 0: none)
    mask_weight: float = Field(1.0, ge=0)
    gan_power: float = Field(0.0, ge=0)            # 0 disables the patch-GAN
    random_warp: bool = True
    flip: bool = True
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False
    workers: int | None = Field(None, ge=0, le=64)  # loader processes; None: 0 on CPU, up to 4 on GPU
    seed: int = 0
    checkpoint_minutes: float = Field(5.0, gt=0)
    preview_minutes: float = Field(5.0, gt=0)


class Preset(Settings):
    description: str
    model: ModelConfig
    batch: int
    lr: float = 5e-5
    ema_decay: float = 0.999
    min_steps: int = 0  # below this many steps a swap is not yet usable (a time budget is warned about)
    detail: bool = False  # a pair model's run then trains the source's detail network (DetailConfig)
    late: float = Field(0.0, ge=0.0, lt=1.0)  # last share of a pair model's face budget without random warp

    def train_defaults(self) -> dict[str, Any]:
        """The training settings this preset starts from (flags override them)."""
        return {"batch": self.batch, "lr": self.lr, "ema_decay": self.ema_decay}


PRESETS: dict[str, Preset] = {
    # Small enough to learn a recognisable swap in ~30 minutes on two CPU cores.
    "cpu": Preset(description="2 CPU cores: 96 px, narrow widths",
                  model=ModelConfig(resolution=96, e_dims=32, ae_dims=128, d_dims=32, d_mask_dims=16), batch=8,
                  # A 30-minute budget is a few thousand steps: a higher rate and an EMA window of
                  # ~100 steps (DFL's long-run defaults would leave the swap a blur by then).
                  lr=2e-4, ema_decay=0.99, min_steps=2000,
                  # Its 96 px face is upscaled 2-4x in a 720p plate: a detail network on the last quarter
                  # of the budget puts back the source's own texture (research/ablation.md).
                  detail=True,
                  # DeepFaceLab's late stage, random warp off for the last quarter of the face model's
                  # budget: better self-swap fidelity and eyes on both pairs measured (research/ablation.md).
                  late=0.25),
    # DeepFaceLab SAEHD's default capacity (liae-ud, 128 px, ae 256, e 64, d 64, mask 22).
    "gpu-128": Preset(description="SAEHD default capacity, 128 px",
                      model=ModelConfig(resolution=128, e_dims=64, ae_dims=256, d_dims=64, d_mask_dims=22),
                      batch=8),
    "gpu-256": Preset(description="SAEHD-class capacity, 256 px",
                      model=ModelConfig(resolution=256, e_dims=64, ae_dims=256, d_dims=64, d_mask_dims=22),
                      batch=8),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def model_config(base: ModelConfig | None = None, **overrides: Any) -> ModelConfig:
    """A model config from ``base`` (default: the ``cpu`` preset) with non-None ``overrides``."""
    data = (base or PRESETS["cpu"].model).model_dump()
    data.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig.validated(data)


def train_config(**overrides: Any) -> TrainConfig:
    return TrainConfig.validated({k: v for k, v in overrides.items() if v is not None})
