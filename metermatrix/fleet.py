"""The meters of a fleet: who owns each one and where it is, from a file or made up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

#: Singapore's five planning regions, the management dashboard's unit.
REGIONS: tuple[str, ...] = ("Central", "East", "North", "North-East", "West")
#: Roughly each region's share of Singapore's resident households.
REGION_WEIGHTS: tuple[float, ...] = (0.21, 0.17, 0.15, 0.24, 0.23)
#: Smallest and largest meter id: always nine digits.
FIRST_METER_ID = 100_000_000
LAST_METER_ID = 999_999_999
FIN_PREFIXES = "FGM"
FIN_CHECK_LETTERS = "KLJNPQRTUWX"

_CHINESE_SURNAMES = (
    "Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua", "Chan", "Koh", "Teo", "Ang",
    "Yeo", "Tay", "Ho", "Low", "Toh", "Sim", "Chong", "Chia", "Seah", "Foo", "Leong", "Yap",
)
_CHINESE_GIVEN = (
    "Wei Ling", "Jun Jie", "Mei Ling", "Zhi Hao", "Hui Min", "Kai Wen", "Xin Yi", "Jia Hui",
    "Wen Jie", "Li Ting", "Yong Sheng", "Shu Fen", "Boon Keng", "Siew Lan", "Ah Kow",
    "Ee Ling", "Jian Hong", "Pei Shan", "Guo Liang", "Hui Ying",
)
_MALAY_MALE = ("Muhammad Faizal", "Ahmad", "Hafiz", "Iskandar", "Rizwan", "Syafiq", "Azman",
               "Khairul", "Firdaus", "Zulkifli")
_MALAY_FEMALE = ("Nur Aisyah", "Siti Nurhaliza", "Farah", "Aishah", "Nurul Huda", "Zarina",
                 "Hidayah", "Liyana", "Sabrina", "Norhayati")
_MALAY_FATHERS = ("Rahman", "Ismail", "Hassan", "Osman", "Yusof", "Salleh", "Ibrahim",
                  "Abdullah", "Jamal", "Kassim")
_INDIAN_GIVEN = ("Priya", "Arjun", "Kavitha", "Rajesh", "Divya", "Suresh", "Anitha", "Vikram",
                 "Lakshmi", "Ganesh", "Meena", "Karthik", "Deepa", "Ravi", "Aashima")
_INDIAN_SURNAMES = ("Nair", "Pillai", "Menon", "Ramasamy", "Krishnan", "Subramaniam", "Singh",
                    "Raj", "Kumar", "Naidu")
_OTHER_GIVEN = ("Carlos", "Maria", "Daniel", "Sarah", "Joseph", "Angela", "Marcus", "Chloe",
                "Ryan", "Natalie", "Adrian", "Sophia")
_OTHER_SURNAMES = ("Fernandez", "De Souza", "Pereira", "Smith", "Santos", "Oliveira",
                   "Rodrigues", "Carvalho", "Martin", "Lopez")
#: Rough shares of Singapore's communities, used only to vary the made-up names.
_COMMUNITY_WEIGHTS = (0.74, 0.135, 0.09, 0.035)


class FleetError(ValueError):
    """A fleet file that cannot be read as meters."""


@dataclass(frozen=True, slots=True)
class Meter:
    """A meter: its nine-digit id, the resident's name and FIN, and its region (if known)."""

    meter_id: int
    name: str
    fin_no: str
    region: str | None


def load_fleet(path: Path) -> list[Meter]:
    """The meters of a master-database JSON file (seed 1.4, ``region`` optional), by id."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise FleetError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise FleetError(f"{path} must hold a JSON object keyed by meter id")
    return sorted((_meter_from_record(key, record) for key, record in data.items()),
                  key=lambda meter: meter.meter_id)


def _meter_from_record(key: str, record: object) -> Meter:
    """One meter from its master-database key and record."""
    if not (key.isascii() and key.isdigit() and len(key) == 9):
        raise FleetError(f"meter id {key!r} is not nine digits")
    if not isinstance(record, dict):
        raise FleetError(f"meter {key}: the record must be a JSON object")
    fields = {}
    for field in ("name", "fin_no"):
        value = record.get(field)
        if not isinstance(value, str) or not value:
            raise FleetError(f"meter {key}: {field!r} must be a non-empty string")
        fields[field] = value
    region = record.get("region")
    if region is not None and region not in REGIONS:
        raise FleetError(f"meter {key}: region {region!r} is not one of {REGIONS}")
    return Meter(int(key), fields["name"], fields["fin_no"], region)


def synthetic_fleet(n: int, seed: int) -> list[Meter]:
    """``n`` made-up meters with unique nine-digit ids, names, FINs and weighted regions."""
    if n < 0:
        raise ValueError("the number of meters must not be negative")
    rng = np.random.default_rng(seed)
    population = LAST_METER_ID - FIRST_METER_ID + 1
    ids = np.sort(rng.choice(population, size=n, replace=False)) + FIRST_METER_ID
    regions = rng.choice(len(REGIONS), size=n, p=REGION_WEIGHTS)
    names, fins = make_names(rng, n), make_fins(rng, n)
    return [
        Meter(meter_id, name, fin_no, REGIONS[region])
        for meter_id, name, fin_no, region
        in zip(ids.tolist(), names, fins, regions.tolist(), strict=True)
    ]


def make_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` plausible names of Singapore residents."""
    communities = rng.choice(len(_COMMUNITY_WEIGHTS), size=n, p=_COMMUNITY_WEIGHTS)
    firsts, seconds = rng.integers(0, 2**31, size=(2, n)).tolist()
    names = []
    for community, first, second in zip(communities.tolist(), firsts, seconds, strict=True):
        if community == 0:
            name = f"{_at(_CHINESE_SURNAMES, first)} {_at(_CHINESE_GIVEN, second)}"
        elif community == 1 and first % 2:
            name = f"{_at(_MALAY_MALE, first // 2)} bin {_at(_MALAY_FATHERS, second)}"
        elif community == 1:
            name = f"{_at(_MALAY_FEMALE, first // 2)} binte {_at(_MALAY_FATHERS, second)}"
        elif community == 2:
            name = f"{_at(_INDIAN_GIVEN, first)} {_at(_INDIAN_SURNAMES, second)}"
        else:
            name = f"{_at(_OTHER_GIVEN, first)} {_at(_OTHER_SURNAMES, second)}"
        names.append(name)
    return names


def make_fins(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` FIN-shaped identifiers: F, G or M, seven digits, a letter (not checksummed)."""
    prefixes = rng.integers(0, len(FIN_PREFIXES), size=n).tolist()
    numbers = rng.integers(0, 10_000_000, size=n).tolist()
    checks = rng.integers(0, len(FIN_CHECK_LETTERS), size=n).tolist()
    return [
        f"{FIN_PREFIXES[prefix]}{number:07d}{FIN_CHECK_LETTERS[check]}"
        for prefix, number, check in zip(prefixes, numbers, checks, strict=True)
    ]


def _at(table: tuple[str, ...], index: int) -> str:
    """The element of ``table`` at ``index``, wrapping around."""
    return table[index % len(table)]
