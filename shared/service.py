"""What every service's context holds: settings, store, registry (followed live), publisher, auth."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic

from aiokafka import ConsumerRecord
from fastapi import APIRouter, FastAPI, Request
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.cache_snapshot import CacheSnapshot
from shared.document_cache import DocumentCache
from shared.domain.registry import Registry
from shared.generations import FIRST, committed_offsets, group_named, live_generation, named, pointer
from shared.kafka import CONSUMER_LAG, CONSUMER_STUCK, BatchConsumer, Ownership, Publisher
from shared.limits import BodySizeLimit, RateLimiter
from shared.logs import configure_logging
from shared.periodic import Periodic
from shared.projection import CaseProjection, Outcome, ProjectionPort
from shared.quarantine import Quarantine
from shared.registry_sync import RegistryFollower, RegistryState
from shared.settings import Settings
from shared.sole_writer import SoleWriterCopy
from shared.store import Document, mongo_client, ping, service_database
from shared.web import ApiError, Principal, ReadinessCheck, authenticate, health_router, install_error_handlers


class ServiceContext:
    service = "service"
    # principal() spends one token of the caller's bucket (429 + Retry-After past it; admin exempt).
    # The intake charges its submissions itself.
    rate_limit_in_principal = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo = mongo_client(settings.mongo_uri, settings.store_profile)
        self.db: AsyncDatabase[Document] = service_database(self.mongo, settings, self.service)
        self.registry_state = RegistryState.seeded(settings)
        self.follower = RegistryFollower(settings, self.registry_state)
        self.publisher = Publisher(settings.kafka_bootstrap, client_id=f"tthc-{self.service}")
        self.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)

    @property
    def registry(self) -> Registry:
        return self.registry_state.registry

    async def start(self) -> None:
        await self.publisher.start()
        self.follower.start()
        await self.follower.wait_caught_up(self.settings.registry_catch_up_s)

    async def stop(self) -> None:
        await self.follower.stop()
        await self.publisher.stop()
        await self.mongo.close()

    def readiness(self) -> dict[str, Any]:
        return {
            "broker": self.publisher.ready,
            "store": lambda: ping(self.mongo),
            "registry": self._registry_ready,
        }

    async def _registry_ready(self) -> bool:
        return self.follower.caught_up.is_set()

    def principal(self, request: Request) -> Principal:
        principal = authenticate(request, self.settings.admin_token, self.registry_state.resolve)
        if self.rate_limit_in_principal and not principal.is_admin:
            self.rate_limiter.check(principal.name, principal.kind)
        return principal

    def require_admin(self, request: Request) -> Principal:
        principal = self.principal(request)
        if not principal.is_admin:
            raise ApiError(403, "this needs the admin token", reason="admin_only")
        return principal

    def agency_filter(self, principal: Principal, agency: str | None) -> set[str] | None:
        """The agencies a read covers: `agency` and those below it, within the token's scope.

        None means no restriction (admin, no agency asked). 422 for an unknown agency, 403 outside
        the token's scope.
        """
        scope = self.visible_agencies(principal)
        if not agency:
            return scope
        if agency not in self.registry.agencies:
            raise ApiError(
                422,
                f"unknown agency_code {agency!r}",
                reason="unknown_agency",
                details=[{"loc": ["query", "agency"], "msg": "unknown"}],
            )
        subtree = set(self.registry.subtree(agency))
        if scope is not None and not subtree <= scope:
            raise ApiError(403, f"agency {agency} is outside this token's scope", reason="outside_scope")
        return subtree

    def visible_agencies(self, principal: Principal) -> set[str] | None:
        """None for admin (everything); else the principal's agencies and every agency below them."""
        if principal.is_admin:
            return None
        allowed: set[str] = set()
        for code in principal.agencies:
            if code in self.registry.agencies:
                allowed |= self.registry.subtree(code)
        return allowed


def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


reference_router = APIRouter(tags=["reference"])


@reference_router.get("/v1/me", summary="Who this token is and the agencies it may read")
async def who_am_i(request: Request) -> dict[str, Any]:
    """The caller and its agencies, depth-first from the top with their depth (for pickers and pages)."""
    context = context_of(request)
    principal = context.principal(request)
    scope = context.visible_agencies(principal)
    registry = context.registry
    children: dict[str | None, list[str]] = {}
    for agency in registry.agencies.values():
        children.setdefault(agency.parent_code, []).append(agency.code)
    ordered: list[dict[str, Any]] = []
    stack = [(code, 0) for code in sorted(children.get(None, []), reverse=True)]
    while stack:
        code, depth = stack.pop()
        agency = registry.agencies[code]
        if scope is None or code in scope:
            ordered.append(
                {
                    "agency_code": code,
                    "name": agency.name,
                    "level": agency.level.value,
                    "parent_code": agency.parent_code,
                    "depth": depth,
                }
                # a dissolved agency says since when (contract v1.1), so pickers can leave it out of later periods
                | ({"valid_to": agency.valid_to.isoformat()} if agency.valid_to else {})
            )
        stack.extend((child, depth + 1) for child in sorted(children.get(code, []), reverse=True))
    return {
        "kind": principal.kind,
        "name": principal.name,
        "scope": sorted(principal.agencies),
        "agencies": ordered,
    }


@reference_router.get("/v1/procedures", summary="The procedure catalogue in force (code, name, field)")
async def procedures(request: Request) -> dict[str, Any]:
    context = context_of(request)
    context.principal(request)
    return {
        "procedures": [
            {"procedure_code": p.code, "name": p.name, "field_code": p.field_code}
            for p in sorted(context.registry.catalogue.procedures.values(), key=lambda p: p.code)
        ]
    }


def service_app(
    context: ServiceContext,
    title: str,
    description: str,
    routers: list[APIRouter],
    generations: Callable[[int], ProjectionContext[Any]] | None = None,
) -> FastAPI:
    """A service's FastAPI app: JSON logs, the context's lifespan, contract errors, health, routers.
    With `generations` (a projection's context in a given generation), the app follows the
    projection's pointer and switches to a rebuilt generation (ADR 0020)."""
    configure_logging(context.service, context.settings.log_level)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if watch is not None:
            await watch.open()
        await app.state.context.start()
        if watch is not None:
            watch.start()
        yield
        if watch is not None:
            await watch.stop()
        await app.state.context.stop()

    app = FastAPI(title=title, version="1.0.0", description=description, lifespan=lifespan)
    app.state.context = context
    watch = GenerationWatch(app, generations) if generations is not None else None
    app.add_middleware(BodySizeLimit, max_bytes=context.settings.max_body_bytes)  # before auth and parsing
    install_error_handlers(app)
    # the checks of the context in place when asked (a switch replaces it)
    app.include_router(health_router({name: _current_check(app, name) for name in context.readiness()}))
    app.include_router(reference_router)
    for router in routers:
        app.include_router(router)
    return app


def _current_check(app: FastAPI, name: str) -> ReadinessCheck:
    def check() -> Awaitable[bool | str]:
        checks: dict[str, ReadinessCheck] = app.state.context.readiness()
        return checks[name]()

    return check


class ProjectionContext(ServiceContext, Generic[Outcome]):
    """A service that keeps a case projection of tthc.case-events (its own consumer group).

    The service builds its port and the owners of its partitions (copies usable while it is the
    only writer) from the store, then hands them over once, to `project`, in its constructor."""

    group_id = "tthc-projection"
    projection: CaseProjection[Outcome]
    quiet_projection: CaseProjection[Outcome]
    consumer: BatchConsumer
    # after a switch: per partition, the offset from which this generation derives events (below
    # it the previous generation did); empty: from the start
    derive_from: dict[int, int]

    def __init__(
        self,
        settings: Settings,
        collection: str,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        generation: int = FIRST,
    ) -> None:
        super().__init__(settings)
        # the generation's collections and consumer group (shared/generations.py)
        self.generation = generation
        self.derive_from = {}
        self.group_id = group_named(type(self).group_id, generation)
        self.collection: AsyncCollection[Document] = self.db[named(collection, generation)]
        self.documents = DocumentCache(
            self.service, settings.projection_cache_mib * 2**20, self.collection.codec_options, keep
        )
        # the most recently used of them, saved at a graceful stop for the next start (ADR 0023)
        self.documents_snapshot = CacheSnapshot(
            self.documents, self.collection, settings.projection_cache_snapshot_mib * 2**20
        )

    def project(
        self,
        port: ProjectionPort[Outcome],
        owners: Sequence[Ownership] = (),
        dead_letters: bool = True,
        quiet_port: ProjectionPort[Outcome] | None = None,
    ) -> None:
        """The projection through `port`, and the consumer that feeds it. Without `dead_letters`
        (a replay) nothing is dead-lettered again: quarantined cases are only marked. Beside it, on
        the same documents, the quiet projection (through `quiet_port`, one that derives nothing,
        without dead letters) for the records a previous generation applied (ADR 0020)."""
        self.projection = self._projection(port, self.publisher if dead_letters else None)
        self.quiet_projection = self._projection(quiet_port or port, None)
        self.quiet_projection.lock = self.projection.lock  # one batch or re-fold at a time, either way
        self.documents_snapshot.after = [owner for owner in owners if isinstance(owner, SoleWriterCopy)]
        self.consumer = BatchConsumer(
            bootstrap=self.settings.kafka_bootstrap,
            topics=[self.settings.case_events_topic],
            group_id=self.group_id,
            handler=self.apply,
            max_records=self.settings.poll_max_records,
            poll_timeout_ms=self.settings.poll_timeout_ms,
            linger_ms=self.settings.consumer_linger_ms,
            # the snapshot last: told once the copies it lets load first are (re)assigned
            owners=[self.documents, *owners, self.documents_snapshot],
            stall_s=self.settings.consumer_stall_s,
            before_leaving=self.before_leaving,
        )

    async def before_leaving(self, offsets: Mapping[str, int | None]) -> None:
        """At a graceful stop, after the consumer's last commit (`offsets`), while it still holds its
        partitions: what the next start puts back (ADR 0023)."""
        await self.documents_snapshot.save(offsets)

    def _projection(self, port: ProjectionPort[Outcome], dead_letters: Publisher | None) -> CaseProjection[Outcome]:
        marks = self.db[f"{self.collection.name}_quarantine"]
        return CaseProjection(
            self.service,
            self.collection,
            lambda: self.registry,
            port,
            Quarantine(self.service, marks, dead_letters, self.settings.dlq_topic),
            self.documents,
            max_document_bytes=self.settings.max_case_document_bytes,
        )

    @property
    def quarantine(self) -> Quarantine:
        return self.projection.quarantine

    async def apply(self, records: list[ConsumerRecord]) -> None:
        quiet, records = self.split_quiet(records)
        if quiet:
            await self.quiet_projection.apply(quiet)
        if records:
            await self.projection.apply(records)

    def split_quiet(self, records: list[ConsumerRecord]) -> tuple[list[ConsumerRecord], list[ConsumerRecord]]:
        """After a switch: the records the previous generation already applied (and derived from,
        dead-lettered), and the others (ADR 0020)."""
        if not self.derive_from:
            return [], records
        marks = self.derive_from
        quiet = [r for r in records if r.offset < marks.get(r.partition, 0)]
        if not quiet:
            return [], records
        return quiet, [r for r in records if r.offset >= marks.get(r.partition, 0)]

    def principal(self, request: Request) -> Principal:
        """Readers only: a source-system key may only submit (contract v1.1)."""
        principal = super().principal(request)
        if principal.kind == "source":
            raise ApiError(
                403, "a source-system key may only submit events; reading needs an agency token", reason="submit_only"
            )
        return principal

    async def start(self) -> None:
        await super().start()
        # A batch holds thousands of cases' documents, writes and folds at once: with CPython's
        # default threshold the collector traverses those survivors again and again. Raised, the
        # youngest generation is collected far less often.
        gc.set_threshold(self.settings.gc_threshold, *gc.get_threshold()[1:])
        try:
            await self.quarantine.refresh()
        except Exception as exc:  # the store may be away at start: the gauge follows the next mark
            logging.getLogger(__name__).warning("quarantine not counted at start", extra={"error": repr(exc)})
        self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()  # finishes the batch in hand, commits it, saves the documents kept
        await super().stop()

    async def quiesce(self) -> None:
        """Before a switch to another generation: stop applying and deriving, keep answering (this
        generation's collections are left behind: nothing saved for a next start)."""
        self.consumer.before_leaving = None
        await self.consumer.stop()

    async def inherit(self, previous: ProjectionContext[Any]) -> None:
        """Before it starts in a switch: take over what the previous generation holds that the
        log does not give again (the deadline's timer marks). Nothing by default."""

    def readiness(self) -> dict[str, Any]:
        return {**super().readiness(), "consumer": self.consumer.readiness}


SWITCH_GRACE_S = 2.0  # requests that began on the previous generation finish before it closes


class GenerationWatch:
    """Follows a projection's pointer (shared/generations.py): at start the app's context is built
    in the live generation; when a rebuild moves the pointer, the previous context stops applying,
    the new one starts where the rebuild stopped, and the app answers from it (ADR 0020)."""

    def __init__(self, app: FastAPI, build: Callable[[int], ProjectionContext[Any]]) -> None:
        self.app = app
        self.build = build
        context: ProjectionContext[Any] = app.state.context
        self.service = context.service
        self.periodic = Periodic(f"generation-watch:{self.service}", context.settings.generation_poll_s, self.poll)

    @property
    def context(self) -> ProjectionContext[Any]:
        context: ProjectionContext[Any] = self.app.state.context
        return context

    async def open(self) -> None:
        """Before the first start: the context of the live generation (the pointer's, if any),
        deriving only past what the previous generation had applied (a restart before this
        process switched, or during the rebuilt generation's first catch-up)."""
        found = await pointer(self.context.db, self.service)
        if found is None:
            return
        if found["generation"] != self.context.generation:
            await self.context.mongo.close()  # never started
            self.app.state.context = self.build(found["generation"])
        if found.get("previous_group"):
            settings = self.context.settings
            self.context.derive_from = await committed_offsets(
                settings.kafka_bootstrap, found["previous_group"], settings.case_events_topic
            )

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()

    async def poll(self) -> None:
        live = await live_generation(self.context.db, self.service)
        if live != self.context.generation:
            await self.switch(live)

    async def switch(self, generation: int) -> None:
        previous = self.context
        log = logging.getLogger(__name__)
        log.info("switching generation", extra={"from": previous.generation, "to": generation})
        await previous.quiesce()
        settings = previous.settings
        # what the previous generation applied, and derived from, before it stopped: the next one
        # applies the rest quietly up to there and derives only after (ADR 0020)
        stopped_at = await committed_offsets(settings.kafka_bootstrap, previous.group_id, settings.case_events_topic)
        successor = self.build(generation)
        successor.derive_from = stopped_at
        try:
            await successor.inherit(previous)
            await successor.start()
            await _connected(successor.consumer, SWITCH_CONNECT_S)  # ready before it answers /readyz
        except Exception:
            await successor.stop()  # the previous one keeps answering; the next poll tries again
            raise
        self.app.state.context = successor
        await asyncio.sleep(SWITCH_GRACE_S)
        await previous.stop()
        _forget_group(previous.group_id, settings.case_events_topic)
        log.info("generation switched", extra={"generation": generation})


SWITCH_CONNECT_S = 60.0


async def _connected(consumer: BatchConsumer, timeout: float) -> None:
    for _ in range(round(timeout / 0.1)):
        if consumer.connected:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"consumer {consumer.group_id} not connected after {timeout:.0f} s")


def _forget_group(group_id: str, topic: str) -> None:
    """The previous generation's consumer gauges, gone with it (a stopped consumer is not stuck)."""
    with contextlib.suppress(KeyError):
        CONSUMER_STUCK.remove(group_id)
    with contextlib.suppress(KeyError):
        CONSUMER_LAG.remove(group_id, topic)
