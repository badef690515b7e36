"""Each store client keeps the profile it was given (shared/store.py), whatever other clients exist."""

from __future__ import annotations

import gc

from pymongo import AsyncMongoClient

from shared.store import TUNINGS, store_tuning, use_profile

URI = "mongodb://127.0.0.1:9"  # never connected: the clients are made with connect=False


def test_clients_of_one_uri_keep_their_own_profile_when_another_goes() -> None:
    first: AsyncMongoClient[dict] = AsyncMongoClient(URI, connect=False)
    second: AsyncMongoClient[dict] = AsyncMongoClient(URI, connect=False)
    assert first == second  # pymongo compares clients by their seeds
    use_profile(first, "mongodb")
    use_profile(second, "standin")
    assert store_tuning(first["db"]["cases"]) == TUNINGS["mongodb"]
    assert store_tuning(second["db"]["cases"]) == TUNINGS["standin"]
    del first
    gc.collect()
    assert store_tuning(second["db"]["cases"]) == TUNINGS["standin"]


def test_a_client_without_a_profile_is_tuned_for_mongodb() -> None:
    client: AsyncMongoClient[dict] = AsyncMongoClient(URI, connect=False)
    assert store_tuning(client["db"]["cases"]) == TUNINGS["mongodb"]
