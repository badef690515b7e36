"""Case ownership at the intake (owner, handler, provisional owner) and per-source dedupe memory."""

from __future__ import annotations

from typing import Any

import pytest

from services.intake.case_event import CaseEvent
from services.intake.dedupe import RecentEventIds, source_of
from services.intake.ownership import CaseOwner, Ledger, bucket_of, case_code_of
from shared.config import load_registry
from shared.events import EVENT_ADAPTER
from shared.registry_sync import Credential, RegistryState
from shared.web import ApiError, Principal
from tests.support.events import event, received

A, B, C = "000.00.02.H99", "000.00.03.H99", "000.00.13.H99"
CODE = f"{A}-261116-99001"
AT = "2026-03-17T09:00:00+07:00"


def envelopes(*bodies: dict[str, Any]) -> list[CaseEvent]:
    return [EVENT_ADAPTER.validate_python({**b, "event_id": f"e{i}"}) for i, b in enumerate(bodies)]


def as_agency(body: dict[str, Any], agency: str) -> dict[str, Any]:
    return {**body, "agency_code": agency}


def admit(ledger: Ledger, bodies: list[dict[str, Any]], scope: set[str] | None) -> None:
    events = envelopes(*bodies)
    ledger.admit(events, scope, [[i, "case_code"] for i in range(len(events))])


def owned_by_a() -> Ledger:
    bucket, key = bucket_of(CODE)
    return Ledger({bucket: {"_id": bucket, "v": 1, "cases": {key: CaseOwner(A, A).entry()}}}, {CODE})


def test_another_agencys_key_cannot_act_on_a_received_case() -> None:
    ledger = owned_by_a()
    with pytest.raises(ApiError) as refused:
        admit(ledger, [received(CODE), as_agency(event("case.withdrawn", CODE, AT), B)], {B})
    assert refused.value.status == 403
    assert refused.value.details == [
        {"loc": [1, "case_code"], "msg": f"case {CODE} is not in this key's agencies (owner or handler)"}
    ]
    assert CODE in refused.value.message


def test_received_naming_another_agency_is_a_conflict_even_for_admin() -> None:
    for scope in ({B}, None):
        with pytest.raises(ApiError) as refused:
            admit(owned_by_a(), [as_agency(received(CODE), B)], scope)
        assert refused.value.status == 409
        assert refused.value.details[0]["loc"] == [0, "case_code"]


def test_a_resent_receipt_by_the_owner_passes_and_changes_nothing() -> None:
    ledger = owned_by_a()
    admit(ledger, [received(CODE)], {A})
    assert ledger.cases == {CODE: CaseOwner(A, A)}


def test_receipt_transfer_then_new_handler_pass_in_one_batch() -> None:
    ledger = Ledger({}, set())
    transfer = event("case.transferred", CODE, AT, from_agency=A, to_agency=C)
    by_c = as_agency(event("case.processed", CODE, "2026-03-18T09:00:00+07:00", outcome="approved"), C)
    admit(ledger, [received(CODE), transfer, by_c], None)  # the admin token sends the lot
    assert (ledger.cases[CODE].owner, ledger.cases[CODE].handler) == (A, C)
    admit(ledger, [by_c], {C})  # then a key scoped to C alone
    admit(ledger, [event("case.rated", CODE, AT, satisfied=True, complaint=False)], {A})  # and the owner still
    with pytest.raises(ApiError) as refused:
        admit(ledger, [as_agency(event("case.rated", CODE, AT, satisfied=True, complaint=False), B)], {B})
    assert refused.value.status == 403


def test_a_late_transfer_does_not_move_the_case_back() -> None:
    ledger = owned_by_a()
    later = event("case.transferred", CODE, "2026-03-20T09:00:00+07:00", from_agency=C, to_agency=B)
    earlier = event("case.transferred", CODE, "2026-03-18T09:00:00+07:00", from_agency=A, to_agency=C)
    admit(ledger, [later, earlier], None)
    assert ledger.cases[CODE].handler == B


def test_first_event_before_the_receipt_gives_a_provisional_owner_the_receipt_replaces() -> None:
    ledger = Ledger({}, set())
    admit(ledger, [as_agency(event("case.paused", CODE, AT, reason_code="other"), B)], {B})
    assert ledger.cases[CODE] == CaseOwner(B, B, provisional=True)
    with pytest.raises(ApiError):  # a key scoped to neither B nor the handler: refused meanwhile
        admit(ledger, [as_agency(event("case.resumed", CODE, AT, reason_code="other"), C)], {C})
    admit(ledger, [received(CODE)], {A})  # the receipt from A's key: no 403, no 409
    assert ledger.cases[CODE] == CaseOwner(A, A)
    with pytest.raises(ApiError) as refused:
        admit(ledger, [as_agency(event("case.resumed", CODE, AT, reason_code="other"), B)], {B})
    assert refused.value.status == 403


def test_a_snapshot_without_events_is_checked_too() -> None:
    with pytest.raises(ApiError) as refused:
        owned_by_a().admit([], {B}, [], touches=[(CODE, [2, "MaHoSo"])])
    assert refused.value.status == 403 and refused.value.details[0]["loc"] == [2, "MaHoSo"]
    owned_by_a().admit([], {A}, [], touches=[(CODE, ["MaHoSo"])])


def test_source_identity_is_stable_per_kind_of_caller() -> None:
    assert source_of(Principal("admin", "admin")) == "admin"
    assert source_of(Principal("source", "mot-cua", frozenset({A}), "sk_0123456789ab")) == "sk_0123456789ab"
    assert source_of(Principal("source", "pull:tinh", frozenset({A}))) == "pull:tinh"


def test_recent_ids_are_per_source() -> None:
    memory = RecentEventIds(capacity=3)
    memory.add("sk_a", ["x", "y"])
    assert memory.known("sk_a", ["x", "z"]) == {"x"}
    assert memory.known("sk_b", ["x"]) == set()
    memory.add("sk_b", ["x", "w"])
    assert len(memory) == 3 and memory.known("sk_a", ["x"]) == set()  # the oldest forgotten first


@pytest.mark.parametrize("code", [CODE, "X", "AB", "A.B", "abc.1.2", "a-1-2.."])
def test_bucket_and_entry_make_the_case_code_again(code: str) -> None:
    bucket, key = bucket_of(code)
    assert "." not in key and key and case_code_of(bucket, key) == code


def test_neighbouring_case_codes_share_a_bucket() -> None:
    codes = [f"{A}-261123-{i:07d}" for i in range(1000)]
    assert len({bucket_of(code)[0] for code in codes}) == 10


def test_a_source_header_finds_its_credential_by_id_or_by_name() -> None:
    state = RegistryState(load_registry("config"))
    credential = Credential("sk_0123456789ab", "source", "mot-cua", [A], "hash", webhook_url="http://x")
    state.apply(f"credential:{credential.id}", credential.as_dict())
    assert state.credential_named("sk_0123456789ab") is state.credential_named("mot-cua") is not None
    assert state.resolve("hash") == Principal("source", "mot-cua", frozenset({A}), "sk_0123456789ab")
    state.apply(f"credential:{credential.id}", {**credential.as_dict(), "revoked": True})
    assert state.credential_named("sk_0123456789ab") is None
