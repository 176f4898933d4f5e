"""Egress control: which addresses the built-in processors may connect to.

Webhooks, SMS/push gateways, SMTP servers and provider APIs are reached only at public
addresses. A host that resolves to a loopback, private (RFC 1918), link-local, CGNAT,
unique-local, unspecified, multicast, reserved or cloud metadata address (also inside an
IPv4-mapped, 6to4 or NAT64 IPv6 address) is refused with
:class:`~async_processor.EgressDeniedError` before any connection, unless the operator
allows it in ``ASYNC_PROCESSOR_EGRESS_ALLOW`` / :attr:`Settings.egress_allow`: host names
(matched exactly, case-insensitively) or IP addresses and CIDR networks, comma-separated.

The host is resolved here, EVERY address it resolves to is checked, and the connection goes
to a checked address (never resolved a second time), so a name that answers a public
address to the check and a private one to the connection (DNS rebinding) cannot get
through. :mod:`.egress_http` applies this to httpx (and so to the OpenAI and Anthropic SDKs);
:func:`open_socket` to SMTP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import EgressDeniedError, InvalidArgumentError

__all__ = [
    "ALLOW_VARIABLE",
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "EgressPolicy",
    "RedactingFilter",
    "Resolver",
    "denial_in",
    "denied_class",
    "open_socket",
    "parse_allow",
    "redact_url",
    "redacted_netloc",
]

#: The environment variable that allows internal hosts and networks.
ALLOW_VARIABLE = "ASYNC_PROCESSOR_EGRESS_ALLOW"
#: Names of cloud metadata services, refused without being resolved.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
#: Cloud metadata addresses (AWS, GCP, Azure, ... and AWS's IPv6 one).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``: a blocking resolver (the default is getaddrinfo).
Resolver = Callable[[str, int], Sequence[str]]

_DENIED_NETWORKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("an unspecified address", ("0.0.0.0/32", "::/128")),
    ("a loopback address", ("127.0.0.0/8", "::1/128")),
    ("a private (RFC 1918) address", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("a link-local address", ("169.254.0.0/16", "fe80::/10")),
    ("a CGNAT (shared, 100.64/10) address", ("100.64.0.0/10",)),
    ("a unique-local address", ("fc00::/7",)),
    ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
    ("a reserved address", ("0.0.0.0/8", "240.0.0.0/4")),
)
_NAMED_NETWORKS = tuple(
    (reason, tuple(ipaddress.ip_network(cidr) for cidr in cidrs))
    for reason, cidrs in _DENIED_NETWORKS
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 IPv6 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def denied_class(address: IPAddress) -> str | None:
    """Why ``address`` is internal ("a loopback address", ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = denied_class(inner)
            return None if reason is None else f"{reason} inside an IPv6 address"
        address = ipaddress.IPv6Address(int(address))  # without a %scope
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for reason, networks in _NAMED_NETWORKS:
        if any(address in network for network in networks):
            return reason
    if address.is_multicast or address.is_reserved or not address.is_global:
        return "a special-purpose address that is not globally routable"
    return None


def denial_in(exc: BaseException) -> EgressDeniedError | None:
    """The :class:`EgressDeniedError` behind ``exc`` (an SDK wraps it in its own connection
    error after its retries), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressDeniedError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def parse_allow(entries: str | Iterable[str]) -> tuple[str, ...]:
    """The allow list in normal form (lower-case names, networks as CIDRs).

    ``entries`` is a comma-separated string or an iterable of entries.

    Raises:
        InvalidArgumentError: an entry is neither a host name nor an address or CIDR.
    """
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    normal: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"egress_allow holds host names or CIDRs (strings), got {item!r}"
            )
        entry = item.strip().strip("[]").rstrip(".").lower()
        if not entry:
            continue
        try:
            normal.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            if not _HOST_NAME.fullmatch(entry):
                raise InvalidArgumentError(
                    f"{ALLOW_VARIABLE} entry {item!r} is neither a host name "
                    "(api.example.org) nor an IP address or CIDR (10.0.0.0/8, fd00::/8)"
                ) from None
            normal.append(entry)
    return tuple(normal)


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressPolicy:
    """Resolves a host and returns its addresses if the policy lets them be reached.

    Args:
        allow: the allow list (see :func:`parse_allow`); empty by default.
        resolver: ``(host, port) -> addresses``; the system's getaddrinfo by default. The
            async :meth:`resolve` runs a custom one in a worker thread.
    """

    def __init__(self, allow: str | Iterable[str] = (), resolver: Resolver | None = None) -> None:
        entries = parse_allow(allow)
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError:
                hosts.add(entry)
        self.allowed_hosts = frozenset(hosts)
        self.allowed_networks = tuple(networks)
        self._resolver = resolver

    def __repr__(self) -> str:
        allowed = sorted(self.allowed_hosts) + [str(n) for n in self.allowed_networks]
        return f"EgressPolicy(allow={allowed!r})"

    def refusal(self, address: str) -> str | None:
        """Why the policy refuses ``address`` (an IP address), or None when it allows it."""
        parsed = ipaddress.ip_address(address)
        candidates = [parsed]
        if isinstance(parsed, ipaddress.IPv6Address):
            parsed = ipaddress.IPv6Address(int(parsed))
            inner = _embedded_ipv4(parsed)
            candidates = [parsed] if inner is None else [parsed, inner]
        for candidate in candidates:
            if any(candidate in network for network in self.allowed_networks):
                return None
        return denied_class(parsed)

    def _allowed_by_name(self, host: str) -> bool:
        """True for an allowed host name; raises for a metadata name."""
        name = host.strip("[]").rstrip(".").lower()
        if name in self.allowed_hosts:
            return True
        if name in METADATA_HOSTS:
            raise EgressDeniedError(host, None, "a cloud metadata host name")
        return False

    def check(self, host: str, addresses: Sequence[str]) -> list[str]:
        """``addresses`` of ``host`` when every one may be reached.

        Raises:
            EgressDeniedError: one of them may not (all are refused then).
            OSError: there is no address.
        """
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        if not self._allowed_by_name(host):
            for address in addresses:
                reason = self.refusal(address)
                if reason is not None:
                    raise EgressDeniedError(host, address, reason)
        return list(addresses)

    def resolve_blocking(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` (see :meth:`check`), resolving in this thread."""
        self._allowed_by_name(host)
        resolver = self._resolver or _system_resolver
        return self.check(host, resolver(host, port))

    async def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` (see :meth:`check`)."""
        self._allowed_by_name(host)
        if self._resolver is not None:
            addresses = await asyncio.to_thread(self._resolver, host, port)
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return self.check(host, addresses)


async def open_socket(policy: EgressPolicy, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected to a checked address of ``host`` (each tried in turn).

    Raises:
        EgressDeniedError: the policy refuses the host.
        OSError, TimeoutError: no address could be reached.
    """
    async with asyncio.timeout(timeout):
        addresses = await policy.resolve(host, port)
    loop = asyncio.get_running_loop()
    failure: OSError | TimeoutError = OSError(f"{host} resolved to no address")
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            failure = exc
        else:
            return sock
    raise failure


def redacted_netloc(url: str) -> str:
    """``host:port`` of ``url`` (``***@host:port`` when it carries credentials)."""
    try:
        return _redacted_netloc(urlsplit(url))
    except ValueError:
        return "<an unparsable URL>"


def _redacted_netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return f"***@{netloc}" if parts.username is not None or parts.password is not None else netloc


class RedactingFilter(logging.Filter):
    """Redacts the URLs among a log record's arguments (httpx logs every request's full
    URL, credentials and query included, at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if "://" in str(arg) and not isinstance(arg, int) else arg
                for arg in record.args
            )
        return True


def redact_url(url: str) -> str:
    """``url`` fit for logs and results: credentials and query values become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    query = parts.query
    if query:
        query = urlencode(
            [(key, "***") for key, _ in parse_qsl(query, keep_blank_values=True)], safe="*"
        )
    return urlunsplit((parts.scheme, _redacted_netloc(parts), parts.path, query, ""))
