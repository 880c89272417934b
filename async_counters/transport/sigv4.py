"""AWS Signature Version 4 for DynamoDB's JSON POSTs, with the signing key cached.

A DynamoDB request is always ``POST`` to one path with no query string, and the headers the
signature covers are a fixed set: ``content-type``, ``host``, ``x-amz-date``,
``x-amz-security-token`` (with temporary credentials) and ``x-amz-target``. So almost all of the
canonical request and of the string to sign is the same from one call to the next: `Signer` builds
those parts once per second (the timestamp's resolution) and the signing key once per day and set
of credentials, leaving per call one SHA-256 over the body, one over the canonical request and one
HMAC (a few microseconds).

The result is byte for byte what botocore's ``SigV4Auth`` produces for the same request, timestamp
and credentials (tests/unit/test_sigv4.py checks it).

>>> signer = Signer(host="dynamodb.eu-west-1.amazonaws.com", region="eu-west-1")
>>> stamp = signer.stamp(Credentials("AKID", "secret"), "20240102T030405Z")
>>> headers = stamp.headers("DynamoDB_20120810.UpdateItem", b"{}")
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlsplit

from botocore.utils import normalize_url_path

__all__ = ["CONTENT_TYPE", "Credentials", "Signer", "Stamp", "host_header", "signing_key"]

#: The content type of DynamoDB's protocol (AWS JSON 1.0).
CONTENT_TYPE = "application/x-amz-json-1.0"
_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of AWS credentials; the secret and the token never appear in a repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: ``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
    "aws4_request")``, valid for one day (``date`` is ``YYYYMMDD``)."""
    key = hmac.digest(("AWS4" + secret_key).encode(), date.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, b"aws4_request", "sha256")


def host_header(url: str) -> str:
    """The ``Host`` header for ``url`` as SigV4 signs it: the lowercase host (an IPv6 address in
    brackets), with the port unless it is the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{port}"
    return host


class _HashState(Protocol):
    def copy(self) -> _HashState: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def _hmac_pads(key: bytes) -> tuple[_HashState, _HashState]:
    """SHA-256 states after absorbing ``key ^ ipad`` and ``key ^ opad`` (RFC 2104): copying them
    makes each HMAC with a fixed key two short hashes, without redoing the key schedule."""
    block = (
        key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    )
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def _trim(value: str) -> str:
    """SigV4's Trimall: strip, and collapse runs of whitespace to one space."""
    return " ".join(value.split())


class Stamp:
    """Everything about a signature that is fixed for one timestamp and set of credentials.

    ``headers(target, body)`` returns the complete headers of one request, ``Authorization``
    included.
    """

    __slots__ = (
        "_auth_head",
        "_base",
        "_canonical_head",
        "_canonical_tail",
        "_inner",
        "_outer",
        "_sts_head",
        "amz_date",
    )

    def __init__(
        self,
        signer: Signer,
        credentials: Credentials,
        amz_date: str,
        pads: tuple[_HashState, _HashState],
    ) -> None:
        self.amz_date = amz_date
        self._inner, self._outer = pads
        token = credentials.token
        scope = f"{amz_date[:8]}/{signer.region}/{signer.service}/aws4_request"
        names = "content-type;host;x-amz-date;x-amz-target"
        token_line = ""
        if token:
            names = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            token_line = f"x-amz-security-token:{_trim(token)}\n"
        self._canonical_head = (
            f"POST\n{signer.canonical_path}\n\n"
            f"content-type:{CONTENT_TYPE}\nhost:{_trim(signer.host)}\n"
            f"x-amz-date:{amz_date}\n{token_line}x-amz-target:"
        )
        self._canonical_tail = f"\n\n{names}\n"
        self._sts_head = f"{_ALGORITHM}\n{amz_date}\n{scope}\n"
        self._auth_head = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature="
        )
        base = {"Host": signer.host, "Content-Type": CONTENT_TYPE, "X-Amz-Date": amz_date}
        if token:
            base["X-Amz-Security-Token"] = token
        self._base = base

    def signature(self, target: str, body: bytes) -> str:
        """The hex signature of a POST of ``body`` with ``X-Amz-Target: target``."""
        sha256 = hashlib.sha256
        canonical = self._canonical_head + target + self._canonical_tail + sha256(body).hexdigest()
        to_sign = self._sts_head + sha256(canonical.encode()).hexdigest()
        inner = self._inner.copy()
        inner.update(to_sign.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()  # HMAC-SHA256(signing key, string to sign)

    @property
    def fixed_headers(self) -> dict[str, str]:
        """The signed headers that are the same for every request of this stamp (``Host``,
        ``Content-Type``, ``X-Amz-Date``, ``X-Amz-Security-Token``): a new dict."""
        return self._base.copy()

    def authorization(self, target: str, body: bytes) -> str:
        """The ``Authorization`` header of a POST of ``body`` with ``X-Amz-Target: target``."""
        return self._auth_head + self.signature(target, body)

    def headers(self, target: str, body: bytes) -> dict[str, str]:
        """The signed headers of one request (a new dict, the caller's to keep)."""
        headers = self._base.copy()
        headers["X-Amz-Target"] = target
        headers["Authorization"] = self._auth_head + self.signature(target, body)
        return headers

    def __repr__(self) -> str:
        return f"<Stamp {self.amz_date}>"


class Signer:
    """SigV4 for one endpoint (``host``, ``path``), region and service.

    `stamp` caches the signing key per (credentials, day): it is recomputed only when the date or
    the credentials change.
    """

    __slots__ = ("_key_for", "_pads", "canonical_path", "host", "region", "service")

    def __init__(
        self, *, host: str, region: str, service: str = "dynamodb", path: str = "/"
    ) -> None:
        if not host or not region or not service:
            raise ValueError("host, region and service must not be empty")
        self.host = host
        self.region = region
        self.service = service
        self.canonical_path = quote(normalize_url_path(path), safe="/~")
        self._key_for: tuple[str, str] | None = None
        self._pads = _hmac_pads(b"")

    def stamp(self, credentials: Credentials, amz_date: str) -> Stamp:
        """The fixed parts of every signature made at ``amz_date`` (``YYYYMMDDTHHMMSSZ``)."""
        wanted = (credentials.secret_key, amz_date[:8])
        if wanted != self._key_for:
            key = signing_key(credentials.secret_key, amz_date[:8], self.region, self.service)
            self._pads = _hmac_pads(key)
            self._key_for = wanted
        return Stamp(self, credentials, amz_date, self._pads)

    def __repr__(self) -> str:
        return f"<Signer {self.service} {self.region} {self.host}>"
