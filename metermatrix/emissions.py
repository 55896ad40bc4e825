"""CO2 estimates of a resident's consumption at the grid emission factor setting."""

from __future__ import annotations

import math

#: Where the default factor (0.408 kg CO2/kWh) comes from, as the pages say it.
DEFAULT_FACTOR_SOURCE = ("the Energy Market Authority's grid average operating margin for "
                         "2020 (Singapore Energy Statistics 2021, table T2.4)")
DEFAULT_FACTOR_KG_PER_KWH = 0.408


def emissions_kg(energy_kwh: float, factor_kg_per_kwh: float) -> float:
    """Estimated emissions [kg CO2] of ``energy_kwh`` [kWh]; NaN when the energy is NaN."""
    return math.nan if math.isnan(energy_kwh) else energy_kwh * factor_kg_per_kwh


def factor_source(factor_kg_per_kwh: float) -> str:
    """What the factor is, for the page: the EMA source for the default, else a setting."""
    if math.isclose(factor_kg_per_kwh, DEFAULT_FACTOR_KG_PER_KWH):
        return DEFAULT_FACTOR_SOURCE
    return "the grid emission factor this utility has set"
