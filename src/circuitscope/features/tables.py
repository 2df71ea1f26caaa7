"""A table of kept entries per slot ([slots, capacity]) with each entry's context window.

An entry is one token where one feature fired: its selection key (int64, see
`selection`), its global token position, the feature's activation there, and the
window around it (the feature's activations and the token ids, `before` tokens
before and `after` after; padding is token -1). Empty places have position -1 and
the largest key; their window is undefined.

While the pass runs, a slot's entries sit in no particular order: a new entry takes
the place of the one it evicts (or an empty place), so kept windows never move.
`in_order` sorts every slot by (key, position) once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features.selection import POSITION_BITS, keep_smallest, runs

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
        return self.key.amax(dim=1)

    def in_order(self) -> None:
        """Sort every slot's entries by (key, position), empty places last (in place)."""
        kept = self.position >= 0
        composite = torch.where(kept, (self.key << 31) | self.position, torch.iinfo(torch.long).max)
        order = torch.argsort(composite, dim=1)
        rows = torch.arange(self.n_slots).unsqueeze(1)
        for name in ("key", "position", "value", "acts", "tokens"):
            setattr(self, name, getattr(self, name)[rows, order])

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
    ) -> None:
        """Add new entries ([m] each) in place; windows are made only for new survivors.

        rows: the rows to re-select, sorted (default: the slots offered to). Kept
        entries stay where they are; a new survivor takes the place of an evicted
        entry or an empty one.
        """
        touched, local = _rows_of(slot, rows)
        if len(touched) == 0:
            return
        composite = (key << POSITION_BITS) | position
        old_row, old_place, room = self._contested(touched, local, composite)
        old_slot = touched[old_row]
        n_old = len(old_slot)
        all_key = torch.cat([self.key[old_slot, old_place], key])
        all_position = torch.cat([self.position[old_slot, old_place], position])
        all_slot = torch.cat([old_slot, slot])
        room_of_entry = room[torch.cat([old_row, local])]
        kept, _ = keep_smallest(all_slot, all_key, all_position, room_of_entry)
        new = kept[kept >= n_old] - n_old  # in slot order, as keep_smallest returns them
        if len(new) == 0:
            return
        evicted = torch.ones(n_old, dtype=torch.bool)
        evicted[kept[kept < n_old]] = False
        at = (old_slot[evicted], old_place[evicted])
        self.key[at], self.position[at] = EMPTY_KEY, -1
        dst = (slot[new], self._free_places(slot[new]))
        self.key[dst], self.position[dst] = key[new], position[new]
        acts, tokens = windows(new)
        self.value[dst] = value[new].float()
        self.acts[dst], self.tokens[dst] = acts.float(), tokens.int()

    def _contested(
        self, rows: Tensor, local: Tensor, composite: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The kept entries of `rows` ([R], sorted) that new entries could evict, and room.

        local: [m] each new entry's index in rows; composite: [m] its (key, position).
        An entry that precedes every new entry of its slot stays whatever they are, so
        only the others compete. Returns (row index, place) of the competing entries and
        [R] the places left to the competition in each row."""
        best_new = torch.full((len(rows),), torch.iinfo(torch.long).max)
        best_new.scatter_reduce_(0, local, composite, "amin")
        position = self.position[rows]
        kept = position >= 0
        contested = kept & (((self.key[rows] << POSITION_BITS) | position) > best_new[:, None])
        room = self.capacity - (kept & ~contested).sum(dim=1)
        row, place = contested.nonzero(as_tuple=True)
        return row, place, room

    def _free_places(self, slot: Tensor) -> Tensor:
        """[m] a distinct empty place for each entry of `slot` (sorted; each slot must have
        as many empty places as it appears)."""
        starts, rank = runs(slot)
        target = torch.cumsum(starts, 0) - 1  # each entry's index among the distinct slots
        row, place = (self.position[slot[starts]] < 0).nonzero(as_tuple=True)
        n_free = torch.bincount(row, minlength=int(starts.sum()))
        first_free = torch.cumsum(n_free, 0) - n_free
        return place[first_free[target] + rank]

    def move(self, rows: Tensor, new_slot: Tensor) -> None:
        """Move the kept entries of `rows` to `new_slot` ([S, c], within `rows`) and keep
        each slot's smallest (bins merged); the rows are rewritten in (key, position) order."""
        at = self.filled(rows)
        target, key, position = new_slot[at], self.key[at], self.position[at]
        value, acts, tokens = self.value[at], self.acts[at], self.tokens[at]
        kept, rank = keep_smallest(target, key, position, self.capacity)
        self.key[rows], self.position[rows] = EMPTY_KEY, -1
        dst = (target[kept], rank)
        self.key[dst], self.position[dst] = key[kept], position[kept]
        self.value[dst], self.acts[dst], self.tokens[dst] = value[kept], acts[kept], tokens[kept]

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


def _rows_of(slot: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
    """(the rows to re-select, sorted; each entry's index among them): `rows` when given
    (sorted, holding every slot offered to), else the distinct slots offered to."""
    if rows is None:
        unique = torch.unique(slot, return_inverse=True)
        return unique[0], unique[1]
    return rows, torch.searchsorted(rows, slot)
