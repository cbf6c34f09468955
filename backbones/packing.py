"""Packed prompt rows: the real tokens of a padded prompt batch laid out one prompt after another.

Prompts of real lengths ``n_p`` (padded to ``T`` tokens) go, in order, into rows of at most
``max(PACK_FACTOR * max_p n_p, PACK_MIN_TOKENS)`` tokens (a new row starts when the next prompt does not
fit); each prompt keeps its own positions (0, 1, ...) and an attention mask that keeps it to its own tokens
(block diagonal). A tower run on the rows computes what it computes on the padded batch when padding is
masked out of the keys, without the padding's work. Short rows keep the attention kernel cheap (why the
factor is 2: benchmarks/README.md, "Packed prompts").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PACK_FACTOR = 2  # a packed row holds up to this many times the longest prompt's tokens ...
PACK_MIN_TOKENS = 32  # ... and at least this many


@dataclass
class Packing:
    """Where the real tokens of a padded (P, T) batch go in R packed rows of C tokens.

    ``padded[k]`` and ``packed[k]`` are the flat positions (p * T + t and r * C + c) of real token k;
    ``positions`` (R, C) restart at 0 for every prompt; ``mask`` (R, 1, C, C) is True where query and key
    belong to the same prompt (unused slots at the end of a row form one-token groups of their own, so no
    query row is fully masked); ``rows``/``width`` are R and C.

    For a last layer run on the first token of each prompt only (R rows of S query slots, S the most
    prompts in a row): ``first`` (R * S,) the packed flat position of each slot's first token (a spare
    slot: its row's first position), ``first_mask`` (R, 1, S, C) the keys of each slot's prompt (a spare
    slot: key 0 alone) and ``slot`` (P,) each prompt's slot."""

    padded: torch.Tensor
    packed: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    rows: int
    width: int
    first: torch.Tensor
    first_mask: torch.Tensor
    slot: torch.Tensor


def packing(lengths: Sequence[int], width: int, device: torch.device) -> Packing:
    """Pack prompts of real ``lengths`` (padded to ``width`` tokens) in order into rows of at most
    ``max(PACK_FACTOR * longest, PACK_MIN_TOKENS)`` tokens (a new row starts when the next prompt does
    not fit); the rows are as wide as the fullest one."""
    cap = max(PACK_FACTOR * max(lengths, default=1), PACK_MIN_TOKENS)
    rows: list[list[int]] = [[]]
    fill = 0
    for p, n in enumerate(lengths):
        if fill + n > cap and rows[-1]:
            rows.append([])
            fill = 0
        rows[-1].append(p)
        fill += n
    C = max(sum(lengths[p] for p in row) for row in rows)
    S = max(len(row) for row in rows)
    padded, packed, positions, groups = [], [], torch.zeros(len(rows), C, dtype=torch.long), []
    first = torch.arange(len(rows)).repeat_interleave(S) * C
    first_mask = torch.zeros(len(rows), 1, S, C, dtype=torch.bool)
    first_mask[..., 0] = True
    slot = torch.zeros(len(lengths), dtype=torch.long)
    for r, row in enumerate(rows):
        group = torch.arange(C)  # unused slots: a group each (never a query without any key)
        at = 0
        for g, p in enumerate(row):
            n = lengths[p]
            padded.append(torch.arange(n) + p * width)
            packed.append(torch.arange(n) + r * C + at)
            positions[r, at : at + n] = torch.arange(n)
            group[at : at + n] = -1 - g
            first[r * S + g] = r * C + at
            first_mask[r, 0, g] = False
            first_mask[r, 0, g, at : at + n] = True
            slot[p] = r * S + g
            at += n
        groups.append(group)
    g = torch.stack(groups)
    return Packing(
        padded=torch.cat(padded).to(device),
        packed=torch.cat(packed).to(device),
        positions=positions.to(device),
        mask=(g[:, :, None] == g[:, None, :]).unsqueeze(1).to(device),
        rows=len(rows),
        width=C,
        first=first.to(device),
        first_mask=first_mask.to(device),
        slot=slot.to(device),
    )
