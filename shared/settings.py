"""Every setting comes from an environment variable (prefix TTHC_), with a documented default.

The README's "Settings" table is generated from this class (`python -m shared.settings`), and a
test checks that docker-compose.yml sets only variables that are read here.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTHC_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    mongo_uri: str = Field("mongodb://127.0.0.1:27017", description="MongoDB connection URI")
    mongo_db: str = Field("tthc", description="database name prefix; each service uses <prefix>_<service>")
    topic_prefix: str = Field("", description="prefix for every topic name (isolates test runs)")
    admin_token: str = Field("", description="ops/admin bearer token; empty disables admin access")
    config_dir: str = Field("config", description="folder of the registry and calendar seed")
    log_level: str = Field("INFO", description="log level of the JSON logs")
    max_body_bytes: int = Field(5 * 1024 * 1024, description="largest accepted request body (413 above)")
    max_batch: int = Field(1000, description="most events in one POST /v1/events")
    earliest_event: datetime = Field(
        datetime(2015, 1, 1, tzinfo=timezone(timedelta(hours=7))),
        description="earliest instant an event or DVCQG date may carry (422 before; Vietnam local without an offset)",
    )
    publish_timeout_s: float = Field(10.0, description="how long the intake waits for broker acks (503 after)")
    rate_limit_per_s: float = Field(200.0, description="requests per second allowed per credential (429 above)")
    rate_limit_burst: int = Field(400, description="burst of requests allowed per credential")
    request_timeout_s: float = Field(30.0, description="longest a request may take before a 503")
    dedupe_memory: int = Field(500_000, description="event ids the intake remembers to mark duplicates")
    pull_config: str = Field("", description="JSON file listing the one-stop systems to poll (pull mode)")
    registry_catch_up_s: float = Field(10.0, description="how long a service waits at start to read the registry topic")
    due_soon_working_hours: float = Field(8.0, description="working time before due that counts as due soon")
    apology_due_working_hours: float = Field(
        8.0,
        description="working time before the apology deadline that counts as apology due (GET /v1/cases/apology-due)",
    )
    timer_interval_s: float = Field(5.0, description="how often the deadline service sweeps for due timers")
    webhook_secret: str = Field(
        "", description="HMAC-SHA256 key that signs webhook bodies; with none (nor a file), no webhook is sent"
    )
    webhook_secret_file: str = Field("", description="file holding the webhook key (used when webhook_secret is empty)")
    webhook_allowed_networks: str = Field(
        "", description="CIDRs webhook targets must lie in (comma-separated; empty: any but link-local and metadata)"
    )
    webhook_timeout_s: float = Field(5.0, description="time limit of one webhook delivery attempt")
    webhook_max_attempts: int = Field(8, description="delivery attempts before a webhook is marked failed")
    poll_max_records: int = Field(
        4000, description="most records a consumer applies in one batch (a backlog is applied in fewer, larger writes)"
    )
    projection_cache_mib: int = Field(
        256,
        description="memory for the case documents a projection keeps of its own partitions, not read again (0: none)",
    )
    projection_cache_snapshot_mib: int = Field(
        64,
        description="of those, the most recently used saved at a graceful stop, put back at the next start (0: none)",
    )
    gc_threshold: int = Field(
        50_000, description="allocations between collections of Python's youngest generation (CPython's default: 700)"
    )
    max_case_document_bytes: int = Field(
        4 * 1024 * 1024,
        description="largest case document a projection writes; a case that would outgrow it is quarantined",
    )
    consumer_stall_s: float = Field(
        60.0, description="records waiting and nothing applied this long: the consumer is stuck (/readyz 503)"
    )
    poll_timeout_ms: int = Field(200, description="how long a consumer poll waits for records")
    consumer_linger_ms: int = Field(
        0,
        description="how long the broker may hold a projection's fetch for more records (fewer, larger batches "
        "under a steady stream, each record later by up to this much; 0: records as they come)",
    )
    case_events_partitions: int = Field(6, description="partitions of tthc.case-events when created")
    deadline_url: str = Field("http://127.0.0.1:8082", description="where the web pages reach the deadline service")
    metrics_url: str = Field("http://127.0.0.1:8083", description="where the web pages reach the metrics service")
    web_session_hours: float = Field(10.0, description="how long a web page login lasts")
    web_cookie_secure: bool = Field(False, description="send the web login cookie over HTTPS only (set behind TLS)")
    store_profile: Literal["mongodb", "standin"] = Field(
        "mongodb",
        description="the store: mongodb (list indexes, large id reads) or standin (SecantusDB: no case indexes)",
    )
    generation_poll_s: float = Field(
        5.0, description="how often the deadline and metrics services look for a rebuilt projection to switch to"
    )

    @field_validator("earliest_event")
    @classmethod
    def _vietnam_local(cls, value: datetime) -> datetime:
        """A value without an offset (`2015-01-01`) is Vietnam local time."""
        return value if value.tzinfo else value.replace(tzinfo=timezone(timedelta(hours=7)))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def case_events_topic(self) -> str:
        return self.topic("tthc.case-events")

    @property
    def dlq_topic(self) -> str:
        return self.topic("tthc.case-events.dlq")

    @property
    def deadline_events_topic(self) -> str:
        return self.topic("tthc.deadline-events")

    @property
    def registry_topic(self) -> str:
        return self.topic("tthc.registry")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def env_names() -> list[str]:
    return sorted(f"TTHC_{name.upper()}" for name in Settings.model_fields)


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `TTHC_{name.upper()}` | `{field.default}` | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
