"""A deterministic load model of Singapore households: half-hourly energy in watt-hours.

Each household gets a dwelling type (HDB 3-room to landed), a daily consumption scale, a
weekday wake-up time, a daytime occupancy and an overnight air-conditioning habit. Each day
adds fleet-wide weather (hot days mean more air-con), household noise and a weekend shape
(later mornings, more midday use). Each half hour adds a little noise of its own.

Randomness comes from a counter-based hash (SplitMix64) of ``(seed, meter_id, day, slot)``,
so a reading is the same whatever order, batch or process it is computed in, and a whole
fleet is computed with a handful of array operations.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metermatrix.slots import SLOTS_PER_DAY

#: The seed the simulator and the demo master database use unless told otherwise.
DEFAULT_SEED = 2026
#: Dwelling types: (name, share of households, typical daily consumption [kWh]).
DWELLINGS: tuple[tuple[str, float, float], ...] = (
    ("HDB 3-room", 0.22, 9.5),
    ("HDB 4-room", 0.33, 12.5),
    ("HDB 5-room", 0.22, 15.0),
    ("HDB executive", 0.08, 17.5),
    ("condominium", 0.11, 20.0),
    ("landed", 0.04, 26.0),
)
#: Share of a day's energy drawn by always-on appliances (fridge, standby, router).
BASE_SHARE = 0.24
#: Weekend days use a little more energy in total.
WEEKEND_FACTOR = 1.06

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
# Independent streams drawn from one key.
_DWELLING, _SCALE, _AIRCON, _WAKE, _HOME, _BEDTIME, _AIRCON_OFF = range(1, 8)
_WEATHER, _DAY_NOISE, _WAKE_JITTER = range(11, 14)
_HOURS = (np.arange(SLOTS_PER_DAY) + 0.5) / 2  # midpoint of each slot [h]


def _splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser: a well-mixed 64-bit hash of each element (wrapping)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


def _mix(key: NDArray[np.uint64], value: int | NDArray[np.uint64]) -> NDArray[np.uint64]:
    """A new key from ``key`` and ``value`` (broadcasting)."""
    return _splitmix64(key ^ np.asarray(value, dtype=np.uint64))


def _uniform(key: NDArray[np.uint64], stream: int) -> NDArray[np.float64]:
    """Uniform numbers in (0, 1) from ``key`` and a stream number."""
    bits = _mix(key, stream) >> _U64(11)
    return (bits.astype(np.float64) + 0.5) * 2.0**-53


def _normal(key: NDArray[np.uint64], stream: int) -> NDArray[np.float64]:
    """Standard normal numbers from ``key`` and a stream number (Box-Muller)."""
    bits = _mix(key, stream)
    u1 = ((bits >> _U64(32)).astype(np.float64) + 0.5) * 2.0**-32
    u2 = ((bits & _U64(0xFFFFFFFF)).astype(np.float64) + 0.5) * 2.0**-32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _bump(centre_h: float | NDArray[np.float64], width_h: float) -> NDArray[np.float64]:
    """A Gaussian bump over the day's slots, normalised to sum to 1 per row."""
    shape = np.exp(-0.5 * ((_HOURS - centre_h) / width_h) ** 2)
    return np.asarray(shape / shape.sum(axis=-1, keepdims=True), dtype=np.float64)


def _aircon(start_h: NDArray[np.float64], duration_h: NDArray[np.float64]
            ) -> NDArray[np.float64]:
    """Overnight air-con: on from ``start_h`` for ``duration_h``, soft edges, rows sum to 1."""
    since_start = (_HOURS - start_h) % 24.0
    rising = 1.0 / (1.0 + np.exp(-(since_start - 0.25) / 0.2))
    falling = 1.0 / (1.0 + np.exp((since_start - duration_h) / 0.3))
    shape = np.where(since_start > 20.0, 0.0, rising * falling)
    return np.asarray(shape / shape.sum(axis=-1, keepdims=True), dtype=np.float64)


def _household_keys(meter_ids: ArrayLike, seed: int) -> NDArray[np.uint64]:
    """One hash key per household, shape (n, 1)."""
    ids = np.atleast_1d(np.asarray(meter_ids, dtype=np.int64)).astype(np.uint64)
    seed_key = _splitmix64(np.atleast_1d(np.asarray(seed % 2**64, dtype=np.uint64)))
    return _mix(seed_key, ids)[:, None]


def _daily_energy_kwh(households: NDArray[np.uint64], seed: int, day: date
                      ) -> NDArray[np.float64]:
    """Each household's energy for ``day`` before half-hour noise [kWh], shape (n, 1)."""
    shares = np.array([share for _, share, _ in DWELLINGS])
    typical_kwh = np.array([kwh for _, _, kwh in DWELLINGS])
    dwelling = np.searchsorted(np.cumsum(shares), _uniform(households, _DWELLING) * shares.sum())
    scale_kwh = typical_kwh[np.minimum(dwelling, len(DWELLINGS) - 1)]
    scale_kwh = scale_kwh * np.exp(0.15 * _normal(households, _SCALE))
    weather = _weather(seed, day)
    season = 1.0 + 0.04 * np.cos(2.0 * np.pi * (day.timetuple().tm_yday - 135) / 365.25)
    weekend = WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
    day_key = _mix(households, day.toordinal())
    noise = np.exp(0.10 * _normal(day_key, _DAY_NOISE) + 0.06 * weather)
    return np.asarray(scale_kwh * noise * season * weekend, dtype=np.float64)


def _weather(seed: int, day: date) -> float:
    """The fleet-wide heat of ``day``: a standard normal number shared by all households."""
    key = _mix(_splitmix64(np.atleast_1d(np.asarray(seed % 2**64, dtype=np.uint64))),
               day.toordinal())
    return float(_normal(key, _WEATHER)[0])


def _day_profile(households: NDArray[np.uint64], seed: int, day: date) -> NDArray[np.float64]:
    """Each household's share of the day's energy per slot, shape (n, 48), rows sum to 1."""
    weekend = day.weekday() >= 5
    day_key = _mix(households, day.toordinal())
    wake_h = 5.75 + 1.75 * _uniform(households, _WAKE) + (1.5 if weekend else 0.0)
    wake_h = wake_h + 0.25 * _normal(day_key, _WAKE_JITTER)
    home = 0.1 + 0.9 * _uniform(households, _HOME)
    aircon = (0.10 + 0.25 * _uniform(households, _AIRCON)) * np.exp(0.15 * _weather(seed, day))
    bedtime_h = 20.5 + 2.0 * _uniform(households, _BEDTIME)
    aircon_h = 2.5 + 3.5 * _uniform(households, _AIRCON_OFF)
    morning, evening = 0.14, 0.26
    midday = 0.12 * home * (1.6 if weekend else 1.0)
    total = BASE_SHARE + morning + midday + evening + aircon
    profile = (
        BASE_SHARE / SLOTS_PER_DAY
        + morning * _bump(wake_h + 0.75, 0.8)
        + midday * _bump(13.0, 2.5)
        + evening * _bump(20.0, 1.6)
        + aircon * _aircon(bedtime_h, aircon_h)
    )
    return np.asarray(profile / total, dtype=np.float64)


def fleet_day_energy_wh(meter_ids: ArrayLike, day: date, seed: int) -> NDArray[np.int64]:
    """Half-hourly energy of many meters on ``day`` [Wh], shape (n, 48), slot order."""
    households = _household_keys(meter_ids, seed)
    energy_kwh = _daily_energy_kwh(households, seed, day) * _day_profile(households, seed, day)
    slot_keys = _mix(_mix(households, day.toordinal()), np.arange(SLOTS_PER_DAY, dtype=np.uint64))
    energy_kwh = energy_kwh * np.exp(0.18 * _normal(slot_keys, 0) - 0.5 * 0.18**2)
    energy_wh: NDArray[np.int64] = np.maximum(np.rint(energy_kwh * 1000.0), 1).astype(np.int64)
    return energy_wh


def day_energy_wh(meter_id: int, day: date, seed: int) -> NDArray[np.int64]:
    """One meter's 48 half-hourly readings for ``day`` [Wh], slot order."""
    readings_wh: NDArray[np.int64] = fleet_day_energy_wh(np.array([meter_id]), day, seed)[0]
    return readings_wh


def half_hour_energy_wh(meter_id: int, day: date, slot: int, seed: int) -> int:
    """One meter's reading for ``slot`` (0..47) of ``day`` [Wh]."""
    if not 0 <= slot < SLOTS_PER_DAY:
        raise ValueError(f"slot must be 0..{SLOTS_PER_DAY - 1}, not {slot}")
    return int(day_energy_wh(meter_id, day, seed)[slot])
