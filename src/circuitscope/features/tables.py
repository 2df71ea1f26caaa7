"""A table of kept entries per slot ([slots, capacity]) with each entry's context window.

An entry is one token where one feature fired: its selection key (int64, see
`selection`), its global token position, the feature's activation there, and the
window around it (the feature's activations and the token ids, `before` tokens
before and `after` after; padding is token -1). Empty places have position -1 and
the largest key; their window is undefined. Updates rewrite only the rows they touch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features.selection import keep_smallest

WindowFn = Callable[[Tensor], tuple[Tensor, Tensor]]
"""Given indices of new entries [m], their windows: (acts [m, W], token ids [m, W])."""
EMPTY_KEY = (1 << 32) - 1


@dataclass
class SlotTable:
    key: Tensor  # [S, c] int64
    position: Tensor  # [S, c] int64
    value: Tensor  # [S, c] float32
    acts: Tensor  # [S, c, W] float32
    tokens: Tensor  # [S, c, W] int32

    @classmethod
    def empty(cls, n_slots: int, capacity: int, width: int) -> SlotTable:
        return cls(
            key=torch.full((n_slots, capacity), EMPTY_KEY, dtype=torch.long),
            position=torch.full((n_slots, capacity), -1, dtype=torch.long),
            value=torch.zeros(n_slots, capacity),
            acts=torch.zeros(n_slots, capacity, width),
            tokens=torch.full((n_slots, capacity, width), -1, dtype=torch.int32),
        )

    @property
    def n_slots(self) -> int:
        return self.key.shape[0]

    @property
    def capacity(self) -> int:
        return self.key.shape[1]

    def threshold(self) -> Tensor:
        """[S] the largest kept key (EMPTY_KEY while a slot has room): a new entry must not
        exceed it to have a chance."""
        return self.key[:, -1]

    def filled(self, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(slot, place) of every kept entry (of `rows` only, when given)."""
        if rows is None:
            slot, place = (self.position >= 0).nonzero(as_tuple=True)
            return slot, place
        row, place = (self.position[rows] >= 0).nonzero(as_tuple=True)
        return rows[row], place

    def offer(
        self,
        slot: Tensor,
        key: Tensor,
        position: Tensor,
        value: Tensor,
        windows: WindowFn,
        rows: Tensor | None = None,
        new_slot: Tensor | None = None,
    ) -> None:
        """Add new entries ([m] each) in place; windows are made only for new survivors.

        rows: the rows to rewrite (default: the slots offered to). new_slot: [S, c]
        the slot each kept entry of those rows moves to (when bins merge); it must
        lie within `rows`. By default kept entries stay where they are.
        """
        rows = torch.unique(slot) if rows is None else rows
        if len(rows) == 0:
            return
        old_slot, old_place = self.filled(rows)
        old_target = old_slot if new_slot is None else new_slot[old_slot, old_place]
        n_old = len(old_slot)
        all_slot = torch.cat([old_target, slot])
        all_key = torch.cat([self.key[old_slot, old_place], key])
        all_position = torch.cat([self.position[old_slot, old_place], position])
        kept, rank = keep_smallest(all_slot, all_key, all_position, self.capacity)
        from_old = kept < n_old
        src = (old_slot[kept[from_old]], old_place[kept[from_old]])
        old_value, old_acts, old_tokens = self.value[src], self.acts[src], self.tokens[src]
        self.key[rows], self.position[rows] = EMPTY_KEY, -1
        at = (all_slot[kept], rank)
        self.key[at], self.position[at] = all_key[kept], all_position[kept]
        dst = (all_slot[kept[from_old]], rank[from_old])
        self.value[dst], self.acts[dst], self.tokens[dst] = old_value, old_acts, old_tokens
        new = kept[~from_old] - n_old
        if len(new):
            dst = (slot[new], rank[~from_old])
            acts, tokens = windows(new)
            self.value[dst] = value[new].float()
            self.acts[dst], self.tokens[dst] = acts.float(), tokens.int()

    def move(self, rows: Tensor, new_slot: Tensor) -> None:
        """Move the kept entries of `rows` to `new_slot` ([S, c]), re-selecting (bins merged)."""
        none = torch.zeros(0, dtype=torch.long)
        self.offer(none, none, none, none.float(), _no_windows, rows, new_slot)

    def absorb(self, other: SlotTable) -> None:
        """Add another table's entries (the merge of two processes' tables)."""
        o_slot, o_place = other.filled()
        at = (o_slot, o_place)
        self.offer(
            o_slot,
            other.key[at],
            other.position[at],
            other.value[at],
            lambda i: (other.acts[o_slot[i], o_place[i]], other.tokens[o_slot[i], o_place[i]]),
            rows=torch.arange(self.n_slots),
        )


def _no_windows(index: Tensor) -> tuple[Tensor, Tensor]:
    raise AssertionError("no new entries were offered")
