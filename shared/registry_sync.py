"""The registry every service shares: agencies, procedures and credentials.

Seeded from `config/`, then kept current from the compacted topic `tthc.registry`: the intake's
admin routes publish each change (the full current value under a stable key), and every service
follows the topic from its beginning, so a change reaches all three without a restart.

Keys: `agency:<code>`, `procedure:<code>` (every version of it), `credential:<id>`.
Credentials are stored hashed (sha256); the plain key or token is shown once, at creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter

from shared.config import load_procedure_specs, load_registry
from shared.domain.catalogue import Catalogue
from shared.domain.registry import Agency, Registry, RegistryError
from shared.kafka import Publisher, topic_partitions
from shared.settings import Settings
from shared.web import Principal, hash_token

log = logging.getLogger(__name__)
REGISTRY_RECORDS_REFUSED = Counter(
    "tthc_registry_records_refused_total", "Registry records that could not be read or applied (passed over)"
)


@dataclass
class Credential:
    id: str
    kind: str  # "source" | "agency"
    name: str
    agencies: list[str]
    hash: str
    revoked: bool = False
    webhook_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "agencies": self.agencies,
            "hash": self.hash,
            "revoked": self.revoked,
            "webhook_url": self.webhook_url,
        }

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items() if k != "hash"}


@dataclass
class RegistryState:
    """The registry plus credentials, as of the last record applied."""

    registry: Registry
    credentials: dict[str, Credential] = field(default_factory=dict)  # by id
    procedure_specs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # code → date → spec
    _by_hash: dict[str, Credential] = field(default_factory=dict)
    _orphans: dict[str, dict[str, Any]] = field(default_factory=dict)  # agencies whose parent is not known yet
    # told (before, after) of each agency applied: the deadline refolds a dissolved agency's cases
    agency_listeners: list[Callable[[Agency | None, Agency], None]] = field(default_factory=list)

    @classmethod
    def seeded(cls, settings: Settings) -> RegistryState:
        state = cls(load_registry(settings.config_dir))
        for spec in load_procedure_specs(settings.config_dir):
            versions = state.procedure_specs.setdefault(spec["procedure_code"], {})
            versions[str(spec.get("effective_from") or "")] = spec
        return state

    def resolve(self, token_hash: str) -> Principal | None:
        credential = self._by_hash.get(token_hash)
        if credential is None or credential.revoked:
            return None
        return Principal(credential.kind, credential.name, frozenset(credential.agencies), credential.id)

    # ---- applying records ---------------------------------------------------------------------

    def apply(self, key: str, value: dict[str, Any] | None) -> None:
        kind, _, ident = key.partition(":")
        if value is None:
            return  # tombstones are not used: revocation is a flag, agencies are never deleted
        if kind == "agency":
            self._orphans[ident] = value
            self._place_orphans()
        elif kind == "procedure":
            versions = value.get("versions", [])
            catalogue = Catalogue.from_specs((ident, v) for v in versions)  # raises before anything changes
            self.procedure_specs[ident] = {str(v.get("effective_from") or ""): v for v in versions}
            self.registry.catalogue.procedures[ident] = catalogue.get(ident)
        elif kind == "credential":
            credential = Credential(**value)
            old = self.credentials.get(credential.id)
            if old is not None:
                self._by_hash.pop(old.hash, None)
            self.credentials[credential.id] = credential
            self._by_hash[credential.hash] = credential
        else:
            log.warning("unknown registry record", extra={"key": key})

    def _place_orphans(self) -> None:
        placed = True
        while placed and self._orphans:
            placed = False
            for code, spec in list(self._orphans.items()):
                parent = spec.get("parent_code")
                if parent and parent not in self.registry.agencies:
                    continue
                before = self.registry.agencies.get(code)
                try:
                    self.registry.put_agency(Agency.from_mapping(code, spec))
                except RegistryError as exc:
                    log.warning("registry record refused", extra={"agency": code, "error": str(exc)})
                else:
                    for listener in self.agency_listeners:
                        listener(before, self.registry.agencies[code])
                del self._orphans[code]
                placed = True

    # ---- building records (the intake's admin routes) ----------------------------------------

    def agency_record(self, code: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Validates an agency change against the current registry; raises RegistryError."""
        agency = Agency.from_mapping(code, spec)
        if agency.parent_code and agency.parent_code not in self.registry.agencies:
            raise RegistryError(f"unknown parent_code {agency.parent_code!r}", "parent_code")
        ancestor = agency.parent_code
        while ancestor:
            if ancestor == code:
                raise RegistryError("parent_code would make a cycle", "parent_code")
            ancestor = self.registry.agencies[ancestor].parent_code
        self.registry.check_calendar(agency)  # an override the calendar cannot use: refused here (422)
        self.registry.check_succession(agency)  # valid_to / successor_code (contract v1.1)
        record = agency.as_dict()
        record.pop("agency_code")
        return f"agency:{code}", record

    def procedure_record(self, code: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Every version of the procedure after this change (compaction keeps only the latest value)."""
        Catalogue().put(code, spec)  # validates; raises DeadlineError naming the field
        versions = dict(self.procedure_specs.get(code, {}))
        versions[str(spec.get("effective_from") or "")] = {**spec, "procedure_code": code}
        return f"procedure:{code}", {"versions": [versions[k] for k in sorted(versions)]}

    def credential_named(self, name: str) -> Credential | None:
        """The live credential a case's `source` names: its id (the `source` header of case events
        from a source-system key since v1.1) or its name (records published before)."""
        by_id = self.credentials.get(name)
        if by_id is not None and not by_id.revoked:
            return by_id
        for credential in self.credentials.values():
            if credential.name == name and not credential.revoked:
                return credential
        return None

    def new_credential(
        self, kind: str, name: str, agencies: list[str], webhook_url: str | None = None
    ) -> tuple[str, Credential]:
        token = secrets.token_urlsafe(32)
        credential = Credential(
            id=f"{'sk' if kind == 'source' else 'at'}_{secrets.token_hex(6)}",
            kind=kind,
            name=name,
            agencies=agencies,
            hash=hash_token(token),
            webhook_url=webhook_url,
        )
        return token, credential


async def publish_record(publisher: Publisher, settings: Settings, key: str, value: dict[str, Any]) -> None:
    payload = json.dumps(value, ensure_ascii=False, default=str).encode()
    await publisher.publish(settings.registry_topic, [(key.encode(), payload)], timeout=settings.publish_timeout_s)


class RegistryFollower:
    """Reads tthc.registry from the beginning, then follows it, applying every record."""

    def __init__(self, settings: Settings, state: RegistryState) -> None:
        self.settings = settings
        self.state = state
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="registry-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def wait_caught_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def _apply(self, record: Any) -> None:
        """One registry record; one that cannot be read or applied is logged, counted and passed
        over (the admin routes validate what they publish: such a record was written past them)."""
        try:
            value = json.loads(record.value) if record.value else None
            self.state.apply((record.key or b"").decode(), value)
        except Exception as exc:
            REGISTRY_RECORDS_REFUSED.inc()
            log.error(
                "registry record refused",
                extra={"offset": record.offset, "key": repr(record.key)[:100], "error": repr(exc)[:300]},
            )

    async def _run(self) -> None:
        topic = self.settings.registry_topic
        offsets: dict[TopicPartition, int] = {}
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
            )
            try:
                await consumer.start()
                partitions = await topic_partitions(consumer, topic) or [TopicPartition(topic, 0)]
                consumer.assign(partitions)
                for tp in partitions:
                    if tp in offsets:
                        consumer.seek(tp, offsets[tp])
                    else:
                        await consumer.seek_to_beginning(tp)
                ends = await consumer.end_offsets(partitions)
                while True:
                    batch = await consumer.getmany(timeout_ms=500)
                    for tp, records in batch.items():
                        for record in records:
                            self._apply(record)
                            offsets[tp] = record.offset + 1
                    if not self.caught_up.is_set():
                        positions = [await consumer.position(tp) for tp in partitions]
                        if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry follower error; reconnecting", extra={"error": repr(exc)})
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
