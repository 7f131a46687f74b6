"""Webhooks: the URL policy a run's `webhook` must pass, and its delivery after the run ends.

Delivery happens in background tasks: a slow or failing receiver never holds up the run's
waiters or the worker slot. Failed deliveries are retried with exponential backoff a bounded
number of times, then logged; they do not survive a restart.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from stead import serde
from stead.config import ConfigError, Settings
from stead.errors import Unprocessable
from stead.observability.metrics import METRICS
from stead.services.assistants import now_utc
from stead.services.run_shape import RUN_FIELDS, run_json

logger = logging.getLogger("stead.webhooks")

DEFAULT_ENV_PREFIX = "LG_WEBHOOK_"
PAYLOAD_FIELDS = frozenset(
    {*RUN_FIELDS, "run_started_at", "run_ended_at", "webhook_sent_at", "values", "error"}
)
DELIVERY_ATTEMPTS = 5
FIRST_RETRY_DELAY_SECONDS = 0.5
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DNS_TIMEOUT_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 5.0
# Receivers that answer these may succeed later; any other error status is final.
_RETRIED_STATUSES = frozenset({408, 425, 429})

_TEMPLATE = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
_METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.amazonaws.com", "instance-data"}
)
_METADATA_IPS = frozenset(
    ipaddress.ip_address(ip)
    for ip in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_KUBERNETES_SUFFIX = ".svc.cluster.local"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookPolicy:
    """Which webhook URLs a run may name (`webhooks.url` in langgraph.json)."""

    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int = 4096
    disable_loopback: bool = True
    disable_private_ips: bool = False

    @classmethod
    def from_config(cls, section: Any) -> WebhookPolicy:
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ConfigError("webhooks.url must be an object")
        # As the official server: writing a `url` section opts into stricter defaults.
        try:
            return cls(
                require_https=bool(section.get("require_https", True)),
                allowed_domains=_domains(section.get("allowed_domains") or []),
                allowed_ports=tuple(int(port) for port in section.get("allowed_ports") or []),
                max_url_length=int(section.get("max_url_length", 2048)),
                disable_loopback=bool(section.get("disable_loopback", True)),
                disable_private_ips=bool(section.get("disable_private_ips", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"webhooks.url: {exc}") from None

    async def check(self, url: str) -> None:
        """Refuse (422) a URL the policy does not allow; checks every address the host has."""
        if len(url) > self.max_url_length:
            raise Unprocessable("Webhook URL too long")
        if url.startswith("/"):
            if self.disable_loopback:
                raise Unprocessable(
                    "Loopback webhooks (relative URLs and localhost) are disabled; set "
                    "webhooks.url.disable_loopback to false in langgraph.json to allow them"
                )
            return
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise Unprocessable("Invalid webhook URL") from None
        scheme = parts.scheme.lower()
        if self.require_https and scheme != "https":
            raise Unprocessable("Webhook must use https")
        if scheme not in ("http", "https"):
            raise Unprocessable("Webhook URL must be an http or https URL")
        self._check_port(port, scheme)
        host = (parts.hostname or "").lower()
        if not host:
            raise Unprocessable("Webhook URL has no host")
        if self.allowed_domains and not self._domain_allowed(host):
            raise Unprocessable("Webhook domain not allowed")
        if host in self.allowed_domains:
            return  # listed by name: the operator trusts it wherever it resolves
        await self._check_host(host)

    def _check_port(self, port: int | None, scheme: str) -> None:
        if self.allowed_ports:
            port = port or (443 if scheme == "https" else 80)
            if port not in self.allowed_ports:
                raise Unprocessable(f"Webhook port {port} not allowed")

    def _domain_allowed(self, host: str) -> bool:
        return any(
            host.endswith(domain[1:]) if domain.startswith("*.") else host == domain
            for domain in self.allowed_domains
        )

    async def _check_host(self, host: str) -> None:
        if host in _LOCALHOST_NAMES:
            if self.disable_loopback:
                raise Unprocessable("Webhook host blocked: loopback address")
            return
        if host in _METADATA_HOSTS:
            raise Unprocessable("Webhook host blocked: cloud metadata endpoint")
        if host.endswith(_KUBERNETES_SUFFIX):
            raise Unprocessable("Webhook host blocked: Kubernetes internal DNS")
        for address in await _resolve(host):
            reason = self._blocked_reason(address)
            if reason is not None:
                raise Unprocessable(f"Webhook host blocked: {reason}")

    def _blocked_reason(self, address: Address) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return "loopback address" if self.disable_loopback else None
        if address in _METADATA_IPS:
            return "cloud metadata endpoint"
        if (
            address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
            or address in _THIS_NETWORK
        ):
            return "reserved address"
        if not address.is_global and self.disable_private_ips:
            return "private address"
        return None


@dataclass(frozen=True)
class WebhookConfig:
    """The `webhooks` section of langgraph.json, checked and with its header templates filled."""

    policy: WebhookPolicy
    headers: Mapping[str, str]
    allowed_fields: frozenset[str] | None
    enabled: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        section = settings.webhooks
        prefix = section.get("env_prefix", DEFAULT_ENV_PREFIX)
        if not isinstance(prefix, str):
            raise ConfigError("webhooks.env_prefix must be a string")
        headers = section.get("headers") or {}
        if not isinstance(headers, dict):
            raise ConfigError("webhooks.headers must be an object")
        return cls(
            policy=WebhookPolicy.from_config(section.get("url")),
            headers={str(name): _render_header(value, prefix) for name, value in headers.items()},
            allowed_fields=_allowed_fields(section.get("allowed_fields")),
            enabled=not settings.http.get("disable_webhooks", False),
        )


class WebhookSender:
    """POSTs each finished run that named a webhook to it, in the background."""

    def __init__(self, config: WebhookConfig, server_url: str) -> None:
        self._config = config
        self._server_url = server_url
        self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT, follow_redirects=False)
        self._deliveries: set[asyncio.Task[None]] = set()

    def send(self, run: Mapping[str, Any], *, status: str, values: Any, error: Any = None) -> None:
        """Start delivering the webhook of a finished run, if it has one; returns at once."""
        url = run["kwargs"].get("webhook")
        if not url or not self._config.enabled:
            return
        ended = now_utc()
        body = {
            **run_json(run),
            "updated_at": ended,
            "status": status,
            "run_started_at": run["updated_at"],  # the claim stamped it
            "run_ended_at": ended,
            "values": values,
        }
        if error is not None:
            body["error"] = error
        task = asyncio.create_task(self._deliver(str(run["run_id"]), url, body))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def close(self) -> None:
        """Give deliveries in flight a moment to finish, then drop them."""
        if self._deliveries:
            _, pending = await asyncio.wait(self._deliveries, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, run_id: str, url: str, body: dict[str, Any]) -> None:
        try:
            # Checked again: the policy or the host's addresses may have changed since.
            await self._config.policy.check(url)
        except Unprocessable as exc:
            logger.warning("webhook of run %s not sent: %s", run_id, exc.detail)
            return
        target = self._server_url + url if url.startswith("/") else url
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            problem = await self._post(target, body)
            if problem is None:
                logger.info("webhook of run %s delivered to %s", run_id, loggable_url(url))
                METRICS.webhook_deliveries.labels("delivered").inc()
                return
            retry, reason = problem
            if not retry or attempt == DELIVERY_ATTEMPTS:
                logger.warning(
                    "webhook of run %s to %s failed after %d attempt(s): %s",
                    run_id,
                    loggable_url(url),
                    attempt,
                    reason,
                )
                METRICS.webhook_deliveries.labels("failed").inc()
                return
            await asyncio.sleep(FIRST_RETRY_DELAY_SECONDS * 2 ** (attempt - 1))

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[bool, str] | None:
        """None when delivered, else whether to retry and why it failed."""
        payload = {**body, "webhook_sent_at": now_utc()}
        if self._config.allowed_fields is not None:
            payload = {k: v for k, v in payload.items() if k in self._config.allowed_fields}
        headers = {**self._config.headers, "Content-Type": "application/json"}
        try:
            response = await self._client.post(url, content=serde.dumps(payload), headers=headers)
        except httpx.HTTPError as exc:
            return True, f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        retry = response.status_code >= 500 or response.status_code in _RETRIED_STATUSES
        return retry, f"HTTP {response.status_code}"


def server_url(host: str, port: int, prefix: str) -> str:
    """Where this server answers itself: the target of relative webhook URLs."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{prefix}"


async def _resolve(host: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), DNS_TIMEOUT_SECONDS
        )
    except (OSError, UnicodeError, TimeoutError):
        raise Unprocessable("Webhook host blocked: DNS resolution failed") from None
    # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _domains(domains: Any) -> tuple[str, ...]:
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise ConfigError("webhooks.url.allowed_domains must be a list of non-empty strings")
    for domain in domains:
        if "*" in domain and not (domain.startswith("*.") and "*" not in domain[2:]):
            raise ConfigError(
                f"webhooks.url.allowed_domains: '{domain}' may only start with '*.' as a wildcard"
            )
    return tuple(domain.lower() for domain in domains)


def _render_header(value: Any, prefix: str) -> str:
    """Fill `${{ env.NAME }}` templates; only variables named with the prefix may be read."""
    if not isinstance(value, str):
        raise ConfigError(f"webhooks.headers values must be strings, got {value!r}")

    def variable(match: re.Match[str]) -> str:
        expression = match.group(1)
        name = expression.removeprefix("env.")
        if not expression.startswith("env.") or not name or "." in name:
            raise ConfigError(
                f"webhooks.headers: '{expression}' is not of the form env.{prefix}NAME"
            )
        if not name.startswith(prefix):
            raise ConfigError(f"webhooks.headers: variable '{name}' must start with '{prefix}'")
        if name not in os.environ:
            raise ConfigError(f"webhooks.headers: environment variable '{name}' is not set")
        return os.environ[name]

    return _TEMPLATE.sub(variable, value)


def _allowed_fields(fields: Any) -> frozenset[str] | None:
    if fields is None:
        return None
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ConfigError("webhooks.allowed_fields must be a list of field names")
    unknown = sorted(set(fields) - PAYLOAD_FIELDS)
    if unknown:
        raise ConfigError(
            f"webhooks.allowed_fields: unknown field(s) {unknown}; "
            f"expected some of {sorted(PAYLOAD_FIELDS)}"
        )
    return frozenset(fields)


def loggable_url(url: str) -> str:
    """The URL without what may hold a secret (user info, query, fragment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
