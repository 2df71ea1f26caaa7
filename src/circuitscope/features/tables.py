"""A table of kept entries per slot ([slots, capacity]) with each entry's context window.

An entry is one token where one feature fired: its selection key, its global token
position, the feature's activation there, and the window around it (the
feature's activations and the token ids, `before` tokens before and `after`
after; padding is token -1). Empty places have key +inf and position -1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features.selection import keep_smallest

WindowFn = Callable[[Tensor], tuple[Tensor, Tensor]]
"""Given indices of new entries [m], their windows: (acts [m, W], token ids [m, W])."""


@dataclass
class SlotTable:
    key: Tensor  # [S, c] float64
    position: Tensor  # [S, c] int64
    value: Tensor  # [S, c] float32
    acts: Tensor  # [S, c, W] float32
    tokens: Tensor  # [S, c, W] int32

    @classmethod
    def empty(cls, n_slots: int, capacity: int, width: int) -> SlotTable:
        return cls(
            key=torch.full((n_slots, capacity), float("inf"), dtype=torch.float64),
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
        """[S] the largest kept key (+inf while a slot has room): a new entry must not exceed it."""
        return self.key[:, -1]

    def filled(self) -> tuple[Tensor, Tensor]:
        """(slot, place) of every kept entry."""
        slot, place = (self.position >= 0).nonzero(as_tuple=True)
        return slot, place

    def merged(
        self,
        slot: Tensor,
        key: Tensor,
        position: Tensor,
        value: Tensor,
        windows: WindowFn,
        slot_of_kept: Tensor | None = None,
    ) -> SlotTable:
        """This table with new entries offered ([m] each); windows are made for new survivors.

        slot_of_kept: [S, c] the slot each kept entry moves to (when bins merge);
        by default each stays in its own slot.
        """
        old_slot, old_place = self.filled()
        old_new_slot = old_slot if slot_of_kept is None else slot_of_kept[old_slot, old_place]
        n_old = len(old_slot)
        all_slot = torch.cat([old_new_slot, slot])
        all_key = torch.cat([self.key[old_slot, old_place], key])
        all_position = torch.cat([self.position[old_slot, old_place], position])
        kept, rank = keep_smallest(all_slot, all_key, all_position, self.capacity)
        table = SlotTable.empty(self.n_slots, self.capacity, self.acts.shape[2])
        at = (all_slot[kept], rank)
        table.key[at] = all_key[kept]
        table.position[at] = all_position[kept]
        from_old = kept < n_old
        src = (old_slot[kept[from_old]], old_place[kept[from_old]])
        dst = (all_slot[kept[from_old]], rank[from_old])
        table.value[dst] = self.value[src]
        table.acts[dst] = self.acts[src]
        table.tokens[dst] = self.tokens[src]
        new = kept[~from_old] - n_old
        if len(new):
            dst = (slot[new], rank[~from_old])
            table.value[dst] = value[new].float()
            acts, tokens = windows(new)
            table.acts[dst] = acts.float()
            table.tokens[dst] = tokens.int()
        return table

    def reslotted(self, slot_of_kept: Tensor) -> SlotTable:
        """The kept entries moved to new slots ([S, c] each one's slot), re-selected."""
        none = torch.zeros(0, dtype=torch.long)
        return self.merged(none, none.double(), none, none.float(), _no_windows, slot_of_kept)

    def absorb(self, other: SlotTable, slot_of_kept: Tensor | None = None) -> SlotTable:
        """The union of two tables, re-selected (the merge of two processes' tables)."""
        o_slot, o_place = other.filled()
        return self.merged(
            o_slot,
            other.key[o_slot, o_place],
            other.position[o_slot, o_place],
            other.value[o_slot, o_place],
            lambda i: (other.acts[o_slot[i], o_place[i]], other.tokens[o_slot[i], o_place[i]]),
            slot_of_kept,
        )


def _no_windows(index: Tensor) -> tuple[Tensor, Tensor]:
    raise AssertionError("no new entries were offered")
