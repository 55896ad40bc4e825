"""The figures a consumption page and its JSON show beside the totals of ``queries``.

What each total covers, the fair comparison with the neighbours: built here from a
``MeterConsumption`` and the instant ``now``, so the handlers only pass them on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from metermatrix.comparison import compare_with_neighbours, compared_until, total_until, until_text
from metermatrix.emissions import emissions_kg, factor_source
from metermatrix.lateness import late_readings_note
from metermatrix.projection import METHOD, project_month
from metermatrix.queries import MeterConsumption
from metermatrix.settings import Settings
from metermatrix.storage import Storage

#: How often today's page reloads itself where JavaScript runs [s].
REFRESH_S = 300


def refresh_figures(result: MeterConsumption, now: datetime, settings: Settings
                    ) -> dict[str, Any]:
    """When an open period's page was drawn ("14:32", local time), and how often today's
    page reloads itself [s] (None for any other period)."""
    if not result.is_open:
        return {"updated_at": None, "refresh_s": None}
    today = now.astimezone(settings.tz).date()
    is_today = result.period.first_day == result.period.last_day == today
    return {"updated_at": f"{now.astimezone(settings.tz):%H:%M}",
            "refresh_s": REFRESH_S if is_today else None}


def month_projection(storage: Storage, result: MeterConsumption, now: datetime,
                     settings: Settings) -> Any:
    """This month's projection on the current-month page and JSON, else None."""
    if result.period.name != "current-month":
        return None
    return project_month(storage, result.meter_id, now, settings.tz)


def page_figures(result: MeterConsumption, now: datetime, settings: Settings,
                 previous_name: str, storage: Storage) -> dict[str, Any]:
    """Template values of the consumption page beyond the totals."""
    previous_until = compared_until(result.period, result.previous, now)
    previous_label = previous_name
    if result.is_open:
        previous_label = f"{previous_name} up to {until_text(result.previous, previous_until)}"
    return {"neighbours": compare_with_neighbours(result, now),
            "previous_label": previous_label,
            "late_note": late_readings_note(result, now, settings.late_days),
            "co2_kg": emissions_kg(result.total_kwh, settings.grid_emission_factor_kg_per_kwh),
            "co2_source": factor_source(settings.grid_emission_factor_kg_per_kwh),
            "projection": month_projection(storage, result, now, settings),
            "projection_method": METHOD, **refresh_figures(result, now, settings)}


def add_document_figures(document: dict[str, Any], result: MeterConsumption, now: datetime,
                         settings: Settings, storage: Storage) -> dict[str, Any]:
    """Add to the JSON answer what each total covers and the fair neighbour comparison."""
    until = total_until(result.period, now)
    document["total_covers"] = {"start": result.period.start.isoformat(),
                                "end": until.isoformat()}
    previous_until = compared_until(result.period, result.previous, now)
    document["previous"]["total_covers"] = {"start": result.previous.start.isoformat(),
                                            "end": previous_until.isoformat()}
    document["previous"]["total_is"] = (
        "the previous period up to the same offset into it as total_kwh"
        if result.is_open else "the whole previous period")
    factor = settings.grid_emission_factor_kg_per_kwh
    co2_kg = emissions_kg(result.total_kwh, factor)
    document["estimated_co2_kg"] = None if co2_kg != co2_kg else round(co2_kg, 3)
    document["emission_factor_kg_co2_per_kwh"] = factor
    document["region_average"]["comparison"] = compare_with_neighbours(result, now).as_record()
    projection = month_projection(storage, result, now, settings)
    if projection is not None:
        document["projection"] = projection.as_record(settings.tariff_sgd_per_kwh)
    return document
