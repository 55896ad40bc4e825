"""Which region each meter belongs to, as small integer codes for today's region sums.

Read once from the database at start (one column of ids per region); a meter first seen
later (a new meter, or one added after the start) is looked up once and remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from metermatrix.arrays import sorted_unique
from metermatrix.storage.base import UNASSIGNED, Storage

#: Looks up the regions of meters not known yet, in the order given.
Lookup = Callable[[npt.NDArray[np.int64]], list[str]]


class MeterRegions:
    """Meter id -> region code; ``names[code]`` is the region (codes are only appended)."""

    def __init__(self, groups: Mapping[str, npt.NDArray[np.int64]],
                 lookup: Lookup | None = None) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        parts = [(np.asarray(ids, np.int64), self.code(name)) for name, ids in groups.items()]
        ids = np.concatenate([part for part, _ in parts] or [np.zeros(0, np.int64)])
        codes = np.concatenate([np.full(len(part), code, np.int16) for part, code in parts]
                               or [np.zeros(0, np.int16)])
        order = np.argsort(ids, kind="stable")
        self._ids, self._by_id = ids[order], codes[order]
        self._later: dict[int, int] = {}
        self._lookup = lookup

    @classmethod
    def from_storage(cls, storage: Storage) -> MeterRegions:
        """Every meter of the database; meters added later are looked up there."""
        return cls(storage.meters_by_region(), storage.region_of_meters)

    def code(self, region: str) -> int:
        """The code of a region name (a new name gets the next code)."""
        code = self._codes.get(region)
        if code is None:
            code = self._codes[region] = len(self.names)
            self.names.append(region)
        return code

    def codes_of(self, meter_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
        """The region code of each meter, in the order given."""
        ids = np.asarray(meter_ids, np.int64)
        at = np.minimum(np.searchsorted(self._ids, ids), max(len(self._ids) - 1, 0))
        known = (self._ids[at] == ids) if len(self._ids) else np.zeros(len(ids), bool)
        codes = np.where(known, self._by_id[at] if len(self._ids) else 0, -1).astype(np.int16)
        unknown = np.flatnonzero(~known)
        if len(unknown):
            codes[unknown] = self._later_codes(ids[unknown])
        return codes

    def _later_codes(self, meter_ids: npt.NDArray[np.int64]) -> list[int]:
        new = sorted_unique(np.array([m for m in meter_ids.tolist() if m not in self._later],
                                      np.int64))
        if len(new):
            regions = self._lookup(new) if self._lookup else [UNASSIGNED] * len(new)
            for meter_id, region in zip(new.tolist(), regions, strict=True):
                self._later[meter_id] = self.code(region)
        return [self._later[m] for m in meter_ids.tolist()]

    def assign(self, meter_id: int, region: str) -> int:
        """Record a meter's (new) region; returns its code."""
        code = self.code(region)
        at = int(np.searchsorted(self._ids, meter_id))
        if at < len(self._ids) and self._ids[at] == meter_id:
            self._by_id[at] = code
        else:
            self._later[meter_id] = code
        return code
