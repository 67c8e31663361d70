"""The watermark's payload coding, shared by both layouts: a 32-bit payload and its CRC-16 through a
rate-1/2, K=7 convolutional code (generators 171/133 octal, the usual NASA code), decoded by soft-decision
Viterbi. Coded bits are ±1 float32, ``CODE_BITS`` of them (payload + CRC + zero tail, times 2)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

PAYLOAD_BITS = 32
CRC_BITS = 16
INFO_BITS = PAYLOAD_BITS + CRC_BITS
CONV_K = 7
"""Constraint length of the rate-1/2 convolutional code (generators 171, 133 octal)."""
CONV_POLYS = (0o171, 0o133)
CODE_BITS = 2 * (INFO_BITS + CONV_K - 1)
"""Coded bits carried by the frame: (payload + CRC + zero tail) x 2."""


def render_payload(render_uid: str) -> int:
    """The 32-bit watermark payload of a render: the first 4 bytes of SHA-256 of its uid."""
    return int.from_bytes(hashlib.sha256(render_uid.encode("utf-8")).digest()[:4], "big")


def crc16(payload: int) -> int:
    """CRC-16/CCITT-FALSE of the payload's 4 big-endian bytes."""
    crc = 0xFFFF
    for byte in payload.to_bytes(4, "big"):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


def encode(payload: int) -> np.ndarray:
    """Payload -> ``CODE_BITS`` coded bits as ±1 float32: payload (MSB first) + CRC-16 + zero tail,
    through the rate-1/2, K=7 convolutional code."""
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError(f"watermark payload must be an integer in [0, 2**32), got {payload}")
    word = (payload << CRC_BITS) | crc16(payload)
    info = [(word >> (INFO_BITS - 1 - i)) & 1 for i in range(INFO_BITS)] + [0] * (CONV_K - 1)
    state, out = 0, []
    for bit in info:
        reg = (bit << (CONV_K - 1)) | state
        out += [_parity(reg & g) for g in CONV_POLYS]
        state = reg >> 1
    return np.array([1.0 if b else -1.0 for b in out], dtype=np.float32)


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each (state, input bit): next state and the ±1 output pair."""
    n = 1 << (CONV_K - 1)
    nxt = np.zeros((n, 2), dtype=np.int64)
    out = np.zeros((n, 2, 2), dtype=np.float32)
    for state in range(n):
        for bit in (0, 1):
            reg = (bit << (CONV_K - 1)) | state
            nxt[state, bit] = reg >> 1
            out[state, bit] = [1.0 if _parity(reg & g) else -1.0 for g in CONV_POLYS]
    return nxt, out


def decode(soft: np.ndarray) -> tuple[int, bool]:
    """Soft coded bits (positive = 1, magnitude = reliability) -> (payload, crc_ok), by Viterbi decoding."""
    nxt, out = _trellis()
    n_states = nxt.shape[0]
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    steps = len(soft) // 2
    back = np.zeros((steps, n_states), dtype=np.int64)     # predecessor state
    bits = np.zeros((steps, n_states), dtype=np.int8)      # input bit on the surviving branch
    pair = np.asarray(soft, dtype=np.float64).reshape(steps, 2)
    for t in range(steps):
        branch = metric[:, None] + (out * pair[t]).sum(axis=2)
        if t >= steps - (CONV_K - 1):
            branch[:, 1] = -np.inf                           # the tail is known to be zeros
        new = np.full(n_states, -np.inf)
        for bit in (0, 1):
            cand = branch[:, bit]
            dest = nxt[:, bit]
            better = cand > new[dest]
            # Several states can reach the same destination: resolve in order (numpy has no scatter-max).
            for s_idx in np.flatnonzero(better):
                d = dest[s_idx]
                if cand[s_idx] > new[d]:
                    new[d] = cand[s_idx]
                    back[t, d] = s_idx
                    bits[t, d] = bit
        metric = new
    state, info = 0, []
    for t in range(steps - 1, -1, -1):
        info.append(int(bits[t, state]))
        state = int(back[t, state])
    info.reverse()
    word = 0
    for b in info[:INFO_BITS]:
        word = (word << 1) | b
    payload = word >> CRC_BITS
    return payload, (word & 0xFFFF) == crc16(payload)


