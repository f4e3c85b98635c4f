"""The egress policy: which addresses a connection to a user-set URL may reach.

Every URL a tenant sets (webhook, sink, registry) can name any host, and a host name can resolve to
anything: the cloud metadata service, the platform's own databases, another tenant's network. The rule
is one function of the address actually connected to (``EgressPolicy.refusal``), applied twice: when a
URL is saved (``check_url``, a 422 before anything connects) and on every connection a client opens
(the guards beside this module), so a name that resolves to a public address when saved and to a
private one later (DNS rebinding) is still refused.

- Public addresses are always allowed.
- Private ones (loopback, RFC 1918, CGNAT, ULA, site-local, reserved) only where an operator lists a
  network that holds them (``MODELPULSE_ALLOWED_PRIVATE_NETWORKS``), or lifts the rule for all of them
  (``MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS=true``).
- Link-local and cloud metadata addresses only where a listed network lies inside their range
  (``169.254.169.254/32`` names the metadata service; ``0.0.0.0/0`` does not).
- Unspecified and multicast addresses never.

IPv4 addresses carried in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``) are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a site's own translator
_METADATA = ipaddress.ip_network("fd00:ec2::254/128")  # AWS's IPv6 instance metadata service

# Ranges a listed network must lie inside to open them: a broad 0.0.0.0/0 or ::/0 does not.
_SENSITIVE = {
    "link-local": (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    "cloud metadata": (_METADATA,),
}
_NEVER = {"unspecified", "multicast"}


class UnsafeUrl(ValueError):
    """A URL that ModelPulse may not connect to; the message, meant for the API user, says why."""


class EgressRefused(Exception):
    """Every address a host resolves to is refused by the policy; the message lists why."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if it carries one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal_reason(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is, or ``None`` when it is public.

    Example:
        >>> refusal_reason(ipaddress.ip_address("169.254.169.254"))
        'link-local'
    """
    carried = embedded_ipv4(address)
    if carried is not None:  # reaches (or is routed to) the IPv4 address it carries
        return refusal_reason(carried)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address in _METADATA:
        return "cloud metadata"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address in _LOCAL_NAT64:
        return "local-use NAT64"
    if address.is_reserved:  # before "private": Python counts 240.0.0.0/4 as both
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses, plus the private networks an operator opened."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allow_private: bool = False

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused (``"a loopback address"``), or ``None``."""
        reason = refusal_reason(address)
        if reason is None:
            return None
        if reason in _NEVER:
            return f"a {reason} address"
        judged = embedded_ipv4(address) or address
        listed = [network for network in self.allowed_networks if _holds(network, judged)]
        if reason in _SENSITIVE:
            ranges = [r for r in _SENSITIVE[reason] if _holds(r, judged)]
            if any(network.subnet_of(r) for network in listed for r in ranges if r.version == network.version):
                return None
            return f"a {reason} address (open it by listing its own network)"
        if listed or self.allow_private:
            return None
        return f"a {reason} address"

    def permitted(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        """The addresses of ``host`` a connection may use, in order; raises ``EgressRefused`` if none."""
        allowed, refusals = [], []
        for address in addresses:
            reason = self.refusal(address)
            if reason is None:
                allowed.append(address)
            else:
                refusals.append(f"{address} is {reason}")
        if not allowed:
            raise EgressRefused(f"refused to connect to {host}: " + "; ".join(refusals or ["no address"]))
        return allowed


def _holds(network: IPNetwork, address: IPAddress) -> bool:
    return network.version == address.version and address in network


def egress_policy() -> EgressPolicy:
    """The policy of this process's settings (``MODELPULSE_ALLOWED_PRIVATE_NETWORKS`` and
    ``MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS``), read at each connection so cached clients follow it."""
    from store.settings import get_settings

    settings = get_settings()
    return EgressPolicy(settings.allowed_private_networks, settings.allow_private_webhook_targets)


def ip(text: str) -> IPAddress:
    # getaddrinfo may append a zone to IPv6 link-local addresses ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


def addresses_of(infos: list[Any]) -> list[IPAddress]:
    """The addresses of ``getaddrinfo`` results, in order."""
    return [ip(str(info[4][0])) for info in infos]


def check_url(url: str, policy: EgressPolicy | None = None) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to an address the policy refuses.

    A host that does not resolve at all is accepted: it reaches nothing, and every connection checks
    the address it actually reaches anyway.

    Raises:
        UnsafeUrl: with a message meant for the API user.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must use http or https")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("the URL has an invalid port") from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    policy = policy or egress_policy()
    for address in addresses_of(infos):
        if reason := policy.refusal(address):
            raise UnsafeUrl(f"the host {host} resolves to {address}, {reason}")
