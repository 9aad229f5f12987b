"""Energy and CO2 of a training run, measured with codecarbon (``track_emissions``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from radiologynet._optional import require


def start_emissions(out_dir: Path | None) -> Any:
    """Start an offline codecarbon tracker writing nothing to disk."""
    OfflineEmissionsTracker = require("codecarbon", "--track-emissions").OfflineEmissionsTracker
    tracker = OfflineEmissionsTracker(
        country_iso_code=os.environ.get("CODECARBON_COUNTRY", "USA"),
        save_to_file=False,
        log_level="error",
        output_dir=str(out_dir or "."),
    )
    tracker.start()
    return tracker


def stop_emissions(tracker: Any, previous: dict[str, float] | None) -> dict[str, float]:
    """Stop ``tracker``; returns its energy, CO2 and duration added to ``previous``'s."""
    co2 = float(tracker.stop() or 0.0)
    data = getattr(tracker, "final_emissions_data", None)
    energy = float(getattr(data, "energy_consumed", 0.0) or 0.0)
    duration = float(getattr(data, "duration", 0.0) or 0.0)
    previous = previous or {}
    return {
        "energy_kwh": energy + previous.get("energy_kwh", 0.0),
        "co2_kg": co2 + previous.get("co2_kg", 0.0),
        "duration_s": duration + previous.get("duration_s", 0.0),
    }
