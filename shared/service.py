"""What every service's context holds: settings, store, registry (followed live), publisher, auth."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic

from aiokafka import ConsumerRecord
from fastapi import APIRouter, FastAPI, Request
from motor.motor_asyncio import AsyncIOMotorCollection, AsyncIOMotorDatabase

from shared.document_cache import DocumentCache
from shared.domain.registry import Registry
from shared.kafka import BatchConsumer, Ownership, Publisher
from shared.limits import BodySizeLimit, RateLimiter
from shared.logs import configure_logging
from shared.projection import CaseProjection, Outcome, ProjectionPort
from shared.quarantine import Quarantine
from shared.registry_sync import RegistryFollower, RegistryState
from shared.settings import Settings
from shared.store import Document, mongo_client, ping, service_database
from shared.web import ApiError, Principal, authenticate, health_router, install_error_handlers


class ServiceContext:
    service = "service"
    # principal() spends one token of the caller's bucket (429 + Retry-After past it; admin exempt).
    # The intake charges its submissions itself.
    rate_limit_in_principal = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo = mongo_client(settings.mongo_uri, settings.store_profile)
        self.db: AsyncIOMotorDatabase[Document] = service_database(self.mongo, settings, self.service)
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
        self.mongo.close()

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


def service_app(context: ServiceContext, title: str, description: str, routers: list[APIRouter]) -> FastAPI:
    """A service's FastAPI app: JSON logs, the context's lifespan, contract errors, health, routers."""
    configure_logging(context.service, context.settings.log_level)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.start()
        yield
        await context.stop()

    app = FastAPI(title=title, version="1.0.0", description=description, lifespan=lifespan)
    app.state.context = context
    app.add_middleware(BodySizeLimit, max_bytes=context.settings.max_body_bytes)  # before auth and parsing
    install_error_handlers(app)
    app.include_router(health_router(context.readiness()))
    app.include_router(reference_router)
    for router in routers:
        app.include_router(router)
    return app


class ProjectionContext(ServiceContext, Generic[Outcome]):
    """A service that keeps a case projection of tthc.case-events (its own consumer group).

    The service builds its port and the owners of its partitions (copies usable while it is the
    only writer) from the store, then hands them over once, to `project`, in its constructor."""

    group_id = "tthc-projection"
    projection: CaseProjection[Outcome]
    consumer: BatchConsumer

    def __init__(
        self, settings: Settings, collection: str, keep: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        super().__init__(settings)
        self.collection: AsyncIOMotorCollection[Document] = self.db[collection]
        self.documents = DocumentCache(
            self.service, settings.projection_cache_mib * 2**20, self.collection.codec_options, keep
        )

    def project(
        self, port: ProjectionPort[Outcome], owners: Sequence[Ownership] = (), dead_letters: bool = True
    ) -> None:
        """The projection through `port`, and the consumer that feeds it. Without `dead_letters`
        (a replay) nothing is dead-lettered again: quarantined cases are only marked."""
        quarantine = Quarantine(
            self.service,
            self.db[f"{self.collection.name}_quarantine"],
            self.publisher if dead_letters else None,
            self.settings.dlq_topic,
        )
        self.projection = CaseProjection(
            self.service,
            self.collection,
            lambda: self.registry,
            port,
            quarantine,
            self.documents,
            max_document_bytes=self.settings.max_case_document_bytes,
        )
        self.consumer = BatchConsumer(
            bootstrap=self.settings.kafka_bootstrap,
            topics=[self.settings.case_events_topic],
            group_id=self.group_id,
            handler=self.apply,
            max_records=self.settings.poll_max_records,
            poll_timeout_ms=self.settings.poll_timeout_ms,
            owners=[self.documents, *owners],
            stall_s=self.settings.consumer_stall_s,
        )

    @property
    def quarantine(self) -> Quarantine:
        return self.projection.quarantine

    async def apply(self, records: list[ConsumerRecord]) -> None:
        await self.projection.apply(records)

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
        await self.consumer.stop()  # finishes the batch in hand and commits it
        await super().stop()

    def readiness(self) -> dict[str, Any]:
        return {**super().readiness(), "consumer": self.consumer.readiness}
