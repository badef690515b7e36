"""A case event as the intake holds it once validated: the envelope, its `type` and its `data`.

`shared.events` builds one pydantic model per event type at import time (`EVENT_MODELS`, told apart
by `type`), so no static class names their common shape; this protocol does, for the intake's checks.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_core import SchemaSerializer

from shared.events import CaseEventIn, EventData

if TYPE_CHECKING:
    EventList = list["CaseEvent"]
else:  # the discriminated union pydantic validates with; mypy cannot read a union built at run time
    EventList = list[CaseEventIn]


class CaseEvent(Protocol):
    event_id: str | None
    case_code: str
    occurred_at: datetime
    agency_code: str
    type: str
    data: EventData
    __pydantic_serializer__: SchemaSerializer

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...

    def model_dump_json(self) -> str: ...
