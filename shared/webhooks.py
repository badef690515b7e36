"""What every webhook sender and registrar shares: the signature and the URL policy.

Signature (contract v1.1, "Outputs are inert"): header `X-TTHC-Timestamp` carries the unix time in
seconds of the delivery attempt; header `X-TTHC-Signature` is `sha256=<hex>` of
HMAC-SHA256(secret, f"{timestamp}.".encode() + body). A receiver recomputes it and refuses a
timestamp older than 5 minutes (replay). With no secret configured nothing is sent.

URL policy: `http`/`https` only; link-local addresses (169.254.0.0/16, fe80::/10) and cloud
metadata endpoints (169.254.169.254, fd00:ec2::254, metadata.google.internal) always refused, at
registration and again for the address the name resolves to at delivery; when
TTHC_WEBHOOK_ALLOWED_NETWORKS lists CIDRs, every other address must lie in one of them (private
addresses are allowed unless that list leaves them out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-TTHC-Signature"
TIMESTAMP_HEADER = "X-TTHC-Timestamp"
REPLAY_WINDOW_S = 300

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_REFUSED_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local, with 169.254.169.254 (AWS, GCP, Azure metadata)
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


class WebhookUrlRefused(ValueError):
    """The URL, or an address it resolves to, is not allowed: never sent there."""


class HostUnresolved(OSError):
    """The host did not resolve now (a failed attempt, retried later)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, f"{timestamp}.".encode() + body)."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    if not secret:
        raise ValueError("no webhook secret: a webhook is never sent unsigned")
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, headers: dict[str, str], body: bytes, now: float, window_s: int = REPLAY_WINDOW_S) -> bool:
    """What a receiver does (and the tests): a fresh timestamp and the matching signature."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not stamp.isdigit() or abs(now - int(stamp)) > window_s:
        return False
    return hmac.compare_digest(lowered.get(SIGNATURE_HEADER.lower(), ""), signature(secret, int(stamp), body))


def parse_networks(text: str) -> tuple[Network, ...]:
    """TTHC_WEBHOOK_ALLOWED_NETWORKS: comma- or space-separated CIDRs; empty means no allow-list."""
    return tuple(ipaddress.ip_network(part, strict=False) for part in text.replace(",", " ").split())


class UrlPolicy:
    def __init__(self, allowed: Iterable[Network] = ()) -> None:
        self.allowed = tuple(allowed)

    @classmethod
    def from_setting(cls, text: str) -> UrlPolicy:
        return cls(parse_networks(text))

    def check_address(self, address: IPAddress) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local or any(address in network for network in ALWAYS_REFUSED_NETWORKS):
            raise WebhookUrlRefused(f"{address} is a link-local or cloud metadata address")
        if address.is_unspecified or address.is_multicast:
            raise WebhookUrlRefused(f"{address} is not a unicast address")
        if self.allowed and not any(address.version == n.version and address in n for n in self.allowed):
            raise WebhookUrlRefused(f"{address} is outside TTHC_WEBHOOK_ALLOWED_NETWORKS")

    def check_url(self, url: str) -> tuple[str, int]:
        """(host, port) of an acceptable URL; WebhookUrlRefused otherwise. A host given as an address
        is checked here; a name is checked again for what it resolves to (check_resolved)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise WebhookUrlRefused(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise WebhookUrlRefused("only http and https webhook URLs are allowed")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise WebhookUrlRefused("the webhook URL has no host")
        if parts.username or parts.password:
            raise WebhookUrlRefused("credentials in the webhook URL are not allowed")
        if host in METADATA_HOSTS:
            raise WebhookUrlRefused(f"{host} is a cloud metadata endpoint")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            self.check_address(address)
        return host, port or (443 if parts.scheme == "https" else 80)

    async def check_resolved(self, url: str) -> None:
        """At delivery: the URL and every address its host resolves to now."""
        host, port = self.check_url(url)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise HostUnresolved(f"{host} does not resolve: {exc}") from None
        for info in infos:
            self.check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
