"""Tool set ``movies``: a tiny inline film catalogue with streaming availability."""

from __future__ import annotations

import json
from pathlib import Path

MOVIES = [
    {"id": "tt0133093", "title": "The Matrix", "year": 1999, "director": "Lana Wachowski"},
    {"id": "tt0234215", "title": "The Matrix Reloaded", "year": 2003, "director": "Lana Wachowski"},
    {"id": "tt1375666", "title": "Inception", "year": 2010, "director": "Christopher Nolan"},
    {"id": "tt0245429", "title": "Spirited Away", "year": 2001, "director": "Hayao Miyazaki"},
    {"id": "tt0110912", "title": "Pulp Fiction", "year": 1994, "director": "Quentin Tarantino"},
]
PROVIDERS = {
    ("tt0133093", "US"): ["Max", "Netflix"],
    ("tt0133093", "GB"): ["Netflix"],
    ("tt1375666", "US"): ["Netflix"],
    ("tt1375666", "FR"): ["Canal+"],
    ("tt0245429", "US"): ["Max"],
    ("tt0245429", "JP"): ["Netflix"],
}


#: the allow-list: each function's spec, kept as data beside this module
TOOLS = json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8"))


def search_movies(title: str, year: int | None = None) -> list:
    needle = title.strip().lower()
    return [
        {"id": m["id"], "title": m["title"], "year": m["year"]}
        for m in MOVIES
        if needle in m["title"].lower() and (year is None or m["year"] == year)
    ]


def get_movie_details(movie_id: str) -> dict:
    for movie in MOVIES:
        if movie["id"] == movie_id:
            return dict(movie)
    raise ValueError(f"unknown movie id: {movie_id[:40]!r}")


def get_streaming_providers(movie_id: str, country: str) -> dict:
    get_movie_details(movie_id)
    code = country.strip().upper()
    return {"movie_id": movie_id, "country": code, "providers": PROVIDERS.get((movie_id, code), [])}
