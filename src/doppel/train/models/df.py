"""DF: one shared encoder and intermediate, one decoder per identity (source and destination).

The swap decodes a destination face's code with the source decoder. Layout follows
DeepFaceLab's SAEHD ``df-ud`` so capacities are comparable. Self-contained: the building blocks
below are repeated from ``liae.py`` on purpose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from doppel.train.config import ModelConfig
from doppel.train.models import Outputs


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Down(nn.Module):
    """5x5 stride-2 convolution and leaky ReLU: halves the resolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 5, stride=2, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.1)


class Up(nn.Module):
    """3x3 convolution to 4x channels, leaky ReLU, depth-to-space: doubles the resolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.leaky_relu(self.conv(x), 0.1), 2)


class Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        return F.leaky_relu(x + y, 0.2)


class Encoder(nn.Module):
    """``(N, 3, R, R)`` -> ``(N, 8 e_dims * (R/16)^2)``: four halvings, flattened."""

    def __init__(self, e_dims: int, pixel_norm: bool) -> None:
        super().__init__()
        self.down = nn.Sequential(Down(3, e_dims), Down(e_dims, e_dims * 2), Down(e_dims * 2, e_dims * 4),
                                  Down(e_dims * 4, e_dims * 8))
        self.pixel_norm = pixel_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x).flatten(1)
        if self.pixel_norm:
            x = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + 1e-6)
        return x


class Inter(nn.Module):
    """Dense bottleneck: code -> ``ae_dims`` -> ``(N, out_ch, 2 low, 2 low)``."""

    def __init__(self, in_features: int, ae_dims: int, out_ch: int, low: int) -> None:
        super().__init__()
        self.dense1 = nn.Linear(in_features, ae_dims)
        self.dense2 = nn.Linear(ae_dims, low * low * out_ch)
        self.up = Up(out_ch, out_ch)
        self.out_ch, self.low = out_ch, low

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x)).view(-1, self.out_ch, self.low, self.low)
        return self.up(x)


class Decoder(nn.Module):
    """Latent ``(N, in_ch, R/16, R/16)`` -> face ``(N, 3, R, R)`` and mask ``(N, 1, R, R)`` in [0, 1]."""

    def __init__(self, in_ch: int, d_dims: int, d_mask_dims: int, double_res: bool) -> None:
        super().__init__()
        d, m = d_dims, d_mask_dims
        self.up0, self.up1, self.up2 = Up(in_ch, d * 8), Up(d * 8, d * 4), Up(d * 4, d * 2)
        self.res0, self.res1, self.res2 = Res(d * 8), Res(d * 4), Res(d * 2)
        self.double_res = double_res
        self.out = nn.Conv2d(d * 2, 12 if double_res else 3, 3, padding=1)
        mask_ups = [Up(in_ch, m * 8), Up(m * 8, m * 4), Up(m * 4, m * 2)]
        if double_res:
            mask_ups.append(Up(m * 2, m))
        self.mask_up = nn.Sequential(*mask_ups)
        self.mask_out = nn.Conv2d(m if double_res else m * 2, 1, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.res2(self.up2(self.res1(self.up1(self.res0(self.up0(z))))))
        x = self.out(x)
        if self.double_res:
            x = F.pixel_shuffle(x, 2)
        m = self.mask_out(self.mask_up(z))
        return torch.sigmoid(x), torch.sigmoid(m)


class DF(nn.Module):
    """DF face model. Inputs and outputs are NCHW RGB in [0, 1] at ``config.resolution``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        r = config.resolution
        low = r // 32 if config.double_res else r // 16
        code = config.e_dims * 8 * (r // 16) ** 2
        self.encoder = Encoder(config.e_dims, config.pixel_norm)
        self.inter = Inter(code, config.ae_dims, config.ae_dims, low)
        self.decoder_src = Decoder(config.ae_dims, config.d_dims, config.d_mask_dims, config.double_res)
        self.decoder_dst = Decoder(config.ae_dims, config.d_dims, config.d_mask_dims, config.double_res)
        _init(self)

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "inter": self.inter, "decoder_src": self.decoder_src,
                "decoder_dst": self.decoder_dst}

    def forward(self, src: torch.Tensor, dst: torch.Tensor) -> Outputs:
        """Encoder and inter batched over src+dst, then each identity's own decoder."""
        n = src.shape[0]
        z = self.inter(self.encoder(torch.cat([src, dst])))
        src_face, src_mask = self.decoder_src(z[:n])
        dst_face, dst_mask = self.decoder_dst(z[n:])
        return Outputs(src_face, src_mask, dst_face, dst_mask)

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Destination faces ``(N, 3, R, R)`` -> source-identity faces and masks."""
        return self.decoder_src(self.inter(self.encoder(dst)))
