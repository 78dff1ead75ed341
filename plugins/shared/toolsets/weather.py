"""Tool set ``weather``: current weather, forecasts and alerts for a few cities (inline data).

``get_current_weather``, ``get_weather_forecast`` and ``get_weather_alerts`` are deliberately
similar names, so probes can expose a model calling the wrong one. Self-contained (standard
library only) because the sandbox loads it by path in an isolated child.
"""

from __future__ import annotations

import json
from pathlib import Path

CITIES = {
    "paris": {"temp_c": 14.0, "condition": "cloudy", "humidity": 72, "aqi": 41},
    "london": {"temp_c": 11.0, "condition": "rain", "humidity": 85, "aqi": 35},
    "tokyo": {"temp_c": 19.0, "condition": "sunny", "humidity": 60, "aqi": 52},
    "new york": {"temp_c": 16.0, "condition": "windy", "humidity": 55, "aqi": 48},
    "san francisco": {"temp_c": 15.0, "condition": "fog", "humidity": 80, "aqi": 30},
}
CONDITIONS = ("sunny", "cloudy", "rain", "windy", "fog", "snow", "storm")
ALERTS = {"london": ["flood warning: River Thames"], "tokyo": ["heat advisory"]}


#: the allow-list: each function's spec, kept as data beside this module
TOOLS = json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8"))


def _city(name: str) -> dict:
    key = " ".join(name.lower().replace(",", " ").split())
    for known, data in CITIES.items():
        if key == known or key.startswith(known + " "):
            return data
    raise ValueError(f"unknown city: {name[:80]!r}")


def _temperature(celsius: float, unit: str) -> float:
    return round(celsius * 9 / 5 + 32, 1) if unit == "fahrenheit" else celsius


def get_current_weather(city: str, unit: str = "celsius") -> dict:
    data = _city(city)
    return {
        "city": city,
        "temperature": _temperature(data["temp_c"], unit),
        "unit": unit,
        "condition": data["condition"],
        "humidity": data["humidity"],
    }


def get_weather_forecast(city: str, days: int, unit: str = "celsius") -> dict:
    data = _city(city)
    start = CONDITIONS.index(data["condition"])
    forecast = [
        {
            "day": day + 1,
            "high": _temperature(data["temp_c"] + (day % 3), unit),
            "low": _temperature(data["temp_c"] - 5 + (day % 2), unit),
            "condition": CONDITIONS[(start + day) % len(CONDITIONS)],
        }
        for day in range(days)
    ]
    return {"city": city, "unit": unit, "days": forecast}


def get_weather_alerts(city: str) -> dict:
    _city(city)
    key = " ".join(city.lower().split())
    return {"city": city, "alerts": list(ALERTS.get(key, []))}


def get_air_quality(city: str) -> dict:
    aqi = _city(city)["aqi"]
    return {"city": city, "aqi": aqi, "level": "good" if aqi <= 50 else "moderate"}
