"""Block-wise weight quantization in onnxruntime's MatMulNBits layout (numpy only).

A MatMul weight W is [K, N] (y = x @ W). MatMulNBits (domain com.microsoft) takes it per output
column n, cut along K into blocks of `block` values, each block with one scale and one zero point:

    W[k, n] = (q[n, k] - zero_point[n, k // block]) * scale[n, k // block]

- B           uint8 [N, ceil(K / block), block * bits / 8]: the codes q, packed low bits first
              (4 bits: element 2j in the low nibble, 2j+1 in the high one; K padded with zeros);
- scales      [N * ceil(K / block)], the type of the activations (float32, or float16 in an fp16
              graph);
- zero_points uint8 [N * ceil(ceil(K / block) * bits / 8)], packed like B per column; absent for
              symmetric weights, where it is 2^(bits-1) (8 for 4 bits, 128 for 8 bits).

Symmetric scales follow llama.cpp's Q4_0: the value of largest magnitude m maps to code 0
(scale = m / -2^(bits-1)), so all 2^bits codes are used. Asymmetric scales span [min(block, 0),
max(block, 0)] in 2^bits - 1 steps, so that 0 stays exact. Rounding is numpy's (to even).

Large tensors are quantized in column chunks, so the peak is the input plus a few chunk-sized
temporaries, not several copies of the tensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

CHUNK_VALUES = 1 << 24  # values per column chunk (64 MB of float32 temporaries)


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 4
    block: int = 32
    symmetric: bool = True

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, not {self.bits}")
        if self.block < 16 or self.block & (self.block - 1):
            raise ValueError(f"block size must be a power of two >= 16, not {self.block}")


@dataclass
class QuantizedWeight:
    K: int
    N: int
    spec: QuantSpec
    b: np.ndarray  # uint8 [N, blocks, block * bits / 8]
    scales: np.ndarray  # [N * blocks], float32 (cast by the caller for fp16 graphs)
    zero_points: Optional[np.ndarray]  # uint8 [N * packed bytes per column], None when symmetric

    @property
    def blocks(self) -> int:
        return self.b.shape[1]


def n_blocks(K: int, block: int) -> int:
    return -(-K // block)


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 codes [..., n] (n even for 4 bits) -> packed bytes [..., n * bits / 8], low bits first."""
    if bits == 8:
        return codes
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def _unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return packed
    out = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), dtype=np.uint8)
    out[..., 0::2] = packed & 0x0F
    out[..., 1::2] = packed >> 4
    return out


def _quantize_columns(wt: np.ndarray, spec: QuantSpec):
    """wt: float32 [n, blocks, block] -> (codes uint8, scales float32 [n, blocks], zero points uint8 [n, blocks] or None)."""
    top = (1 << spec.bits) - 1
    mid = 1 << (spec.bits - 1)
    if spec.symmetric:
        idx = np.abs(wt).argmax(axis=2)
        m = np.take_along_axis(wt, idx[..., None], axis=2)[..., 0]
        scale = (m / -mid).astype(np.float32)
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
        q = np.rint(wt * inv[..., None]) + mid
        return np.clip(q, 0, top).astype(np.uint8), scale, None
    lo = np.minimum(wt.min(axis=2), 0)
    hi = np.maximum(wt.max(axis=2), 0)
    scale = ((hi - lo) / top).astype(np.float32)
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
    zp = np.clip(np.rint(-lo * inv), 0, top)
    q = np.rint(wt * inv[..., None]) + zp[..., None]
    return np.clip(q, 0, top).astype(np.uint8), scale, zp.astype(np.uint8)


def quantize(w: np.ndarray, spec: QuantSpec) -> QuantizedWeight:
    """Quantize a MatMul weight w [K, N] (float32 or float16) block-wise along K."""
    if w.ndim != 2:
        raise ValueError(f"expected a 2-D weight, got shape {list(w.shape)}")
    K, N = w.shape
    nb = n_blocks(K, spec.block)
    blob = spec.block * spec.bits // 8
    b = np.empty((N, nb, blob), dtype=np.uint8)
    scales = np.empty((N, nb), dtype=np.float32)
    zps = None if spec.symmetric else np.empty((N, nb), dtype=np.uint8)
    step = max(1, CHUNK_VALUES // max(1, K))
    for n0 in range(0, N, step):
        n1 = min(N, n0 + step)
        cols = np.zeros((n1 - n0, nb * spec.block), dtype=np.float32)
        cols[:, :K] = w[:, n0:n1].T  # pads K with zeros up to whole blocks
        codes, s, zp = _quantize_columns(cols.reshape(n1 - n0, nb, spec.block), spec)
        b[n0:n1] = _pack(codes, spec.bits)
        scales[n0:n1] = s
        if zps is not None:
            zps[n0:n1] = zp
    zero_points = None
    if zps is not None:
        if spec.bits == 4 and nb % 2:
            zps = np.concatenate([zps, np.full((N, 1), 8, dtype=np.uint8)], axis=1)  # a whole byte per column
        zero_points = _pack(zps, spec.bits).reshape(-1)
    return QuantizedWeight(K, N, spec, b, scales.reshape(-1), zero_points)


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    """The float32 weight [K, N] that qw stands for: (q - zero_point) * scale, the padding cut off."""
    N, nb, spec = qw.N, qw.blocks, qw.spec
    codes = _unpack(qw.b, spec.bits).astype(np.float32)  # [N, nb, block]
    if qw.zero_points is None:
        zp = np.full((N, nb), 1 << (spec.bits - 1), dtype=np.float32)
    else:
        zp = _unpack(qw.zero_points.reshape(N, -1), spec.bits)[:, :nb].astype(np.float32)
    w = (codes - zp[..., None]) * qw.scales.astype(np.float32).reshape(N, nb)[..., None]
    return np.ascontiguousarray(w.reshape(N, nb * spec.block)[:, : qw.K].T)


def fake_quantize(w: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """w quantized and dequantized again (what the quantized graph computes with), float32 [K, N]."""
    return dequantize(quantize(w, spec))
