"""The payload's channel code: a 32-bit tag, a CRC-16 over it, and a rate-1/3 convolutional code.

The mark carries its payload as soft values accumulated over the whole clip, so the decoder is a
soft-decision Viterbi: a coded bit that a codec blurred counts for less than one it kept. The
CRC tells a decoded tag from noise that happened to decode (about 1 in 65,000 passes by chance; a
tag that also has to be in the generation log makes a false attribution rarer still).
"""
from __future__ import annotations

import numpy as np

TAG_BITS = 32
CRC_BITS = 16
DATA_BITS = TAG_BITS + CRC_BITS
#: Constraint length 7 with the generators of the NASA/3GPP rate-1/3 code (octal 133, 171, 165).
CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
TAIL = CONSTRAINT - 1
CODED_BITS = (DATA_BITS + TAIL) * len(GENERATORS)

_STATES = 1 << (CONSTRAINT - 1)


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (polynomial 0x1021, register starting at zero) of a bit vector, most significant bit first."""
    reg = 0
    for b in np.asarray(bits).tolist():  # Python ints: a loop over numpy scalars is several times slower
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return np.array([(reg >> (15 - i)) & 1 for i in range(16)], dtype=np.uint8)


def tag_bits(tag: int) -> np.ndarray:
    if not 0 <= tag < 1 << TAG_BITS:
        raise ValueError(f"a tag is {TAG_BITS} bits, got {tag}")
    return np.array([(tag >> (TAG_BITS - 1 - i)) & 1 for i in range(TAG_BITS)], dtype=np.uint8)


def _parity(v: int) -> int:
    return bin(v).count("1") & 1


# Output bits of each (state, input) transition; the state is the last CONSTRAINT-1 inputs.
_OUT = np.zeros((_STATES, 2, len(GENERATORS)), dtype=np.uint8)
_NEXT = np.zeros((_STATES, 2), dtype=np.int64)
for _s in range(_STATES):
    for _b in (0, 1):
        _reg = (_b << (CONSTRAINT - 1)) | _s
        _OUT[_s, _b] = [_parity(_reg & g) for g in GENERATORS]
        _NEXT[_s, _b] = _reg >> 1
_NEXT_LIST: list[list[int]] = _NEXT.tolist()


def encode(tag: int) -> np.ndarray:
    """The coded bits (0/1) the mark embeds for a tag."""
    data = tag_bits(tag)
    bits = np.concatenate([data, crc16(data), np.zeros(TAIL, dtype=np.uint8)])
    # The states are walked in Python ints and the outputs gathered at once: each stream's marker
    # encodes its tag before the engine starts, so this is part of the time to first audio.
    states = []
    state = 0
    for b in bits.tolist():
        states.append(state)
        state = _NEXT_LIST[state][b]
    return _OUT[states, bits].reshape(-1)


def decode(soft: np.ndarray) -> tuple[int, bool]:
    """The most likely tag for soft coded values (positive = 1), and whether its CRC holds."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, len(GENERATORS))
    if len(soft) != DATA_BITS + TAIL:
        raise ValueError(f"expected {CODED_BITS} soft values, got {soft.size}")
    signs = 2.0 * _OUT.astype(np.float64) - 1.0  # (state, input, generator)
    # Into state d comes input bit d's top bit, from states (d's low bits << 1) | 0 or 1.
    dest = np.arange(_STATES)
    bit = dest >> (CONSTRAINT - 2)
    prev = np.stack([(dest & (_STATES // 2 - 1)) << 1, ((dest & (_STATES // 2 - 1)) << 1) | 1])
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    back = np.zeros((len(soft), _STATES), dtype=np.int64)
    for i, s in enumerate(soft):
        gain = signs @ s  # (state, input): how well each branch matches what arrived
        cand = metric[prev] + gain[prev, bit]  # (2, destination)
        if i >= DATA_BITS:
            cand[:, bit == 1] = -np.inf  # the tail is zeros
        pick = np.argmax(cand, axis=0)
        back[i] = prev[pick, dest]
        metric = cand[pick, dest]
    state = 0
    bits = np.zeros(len(soft), dtype=np.uint8)
    for i in range(len(soft) - 1, -1, -1):
        bits[i] = state >> (CONSTRAINT - 2)
        state = back[i, state]
    data = bits[:TAG_BITS]
    ok = bool(np.array_equal(crc16(data), bits[TAG_BITS:DATA_BITS]))
    tag = 0
    for b in data:
        tag = (tag << 1) | int(b)
    return tag, ok
