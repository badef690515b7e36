"""The committed JSON Schema of the event contract matches the models."""

import json

from deploy.local.infra import REPO
from shared.domain.codes import EventType
from shared.events import EVENT_MODELS, json_schema


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads((REPO / "docs/schema/events.schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(json_schema())), "run `make schema` and commit the result"


def test_every_event_type_has_a_model() -> None:
    assert set(EVENT_MODELS) == set(EventType)
