"""Registry authentication as an ``httpx.Auth`` flow (Basic and Bearer token challenges).

How one request goes (a shape like httpx's DigestAuth, rules from ggcr's bearer transport)::

    host seen before?  yes -> attach Basic, or a Bearer token cached per (realm, service, scope)
    send it
    401 from the same origin?  no -> done
    read WWW-Authenticate -> remember (scheme, realm, service) for the host
        Bearer: scope from the challenge, else derived from the request; token from the realm
        Basic:  credentials, if we have any and have not just sent them
    retry once; whatever comes back is the answer (a second 401 is the caller's Unauthorized)

One ``RegistryAuth`` serves one ``httpx.Client`` shared by many threads: shared state is
guarded by a lock, each token key and each credential lookup has a lock of its own, so
sixteen concurrent HEADs to a fresh repository fetch one token.

Secrets (passwords, tokens) never go into an exception message or a log line; ``redact``
masks them in text that may carry them (headers, URLs, JSON bodies) for debug output.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from inspector._redact import redact
from inspector.errors import AuthError, CacheInspectError, TransportError

if TYPE_CHECKING:
    from inspector.registry.credentials import Credentials

__all__ = [
    "CLIENT_ID",
    "DEFAULT_TOKEN_LIFETIME",
    "TOKEN_EXPIRY_MARGIN",
    "Challenge",
    "RegistryAuth",
    "TokenSender",
    "derive_scope",
    "parse_www_authenticate",
]

logger = logging.getLogger(__name__)

#: ``client_id`` sent with OAuth2 refresh-token requests.
CLIENT_ID = "cacheinspect"
#: Token lifetime when the endpoint gives none; shorter ones are raised to it (as docker does).
DEFAULT_TOKEN_LIFETIME = 60.0
#: A cached token is not used during its last seconds.
TOKEN_EXPIRY_MARGIN = 10.0

#: Sends a request without this auth and returns the response (see ``RegistryAuth``).
TokenSender = Callable[[httpx.Request], httpx.Response]


# --------------------------------------------------------------------------- challenges


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; scheme and param names lowercased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t\r\n"


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _read_token(text: str, i: int) -> int:
    while i < len(text) and text[i] in _TCHAR:
        i += 1
    return i


def _read_value(text: str, i: int) -> tuple[str, int]:
    """A param value at ``i`` (after ``=``): quoted-string with escapes, else up to ``,``/space."""
    i = _skip(text, i, _WS)
    if i < len(text) and text[i] == '"':
        i += 1
        out: list[str] = []
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                out.append(char)
                i += 1
        return "".join(out), i
    start = i
    # Lenient: realms are sometimes sent unquoted, and ":" or "/" are not token characters.
    while i < len(text) and text[i] not in "," + _WS:
        i += 1
    return text[start:i], i


def _skip_token68(text: str, i: int) -> int:
    """End of a token68 starting at ``i`` if one stands alone there (before ``,`` or the end), else ``i``."""
    j = i
    while j < len(text) and text[j] in _TOKEN68:
        j += 1
    if j == i:
        return i
    j = _skip(text, j, "=")
    end = _skip(text, j, _WS)
    return end if end >= len(text) or text[end] == "," else i


def _skip_item(text: str, i: int) -> int:
    """Skip unparseable text up to the next comma outside a quoted string."""
    quoted = False
    while i < len(text):
        char = text[i]
        if quoted and char == "\\":
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            break
        i += 1
    return i


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Challenges in a ``WWW-Authenticate`` value (RFC 7235), in order; never raises.

    Several challenges per header, quoted strings with backslash escapes, unquoted
    values, case-insensitive names. token68 data is skipped; unparseable pieces are
    skipped too, so garbage gives what could be read, possibly ``[]``.
    """
    text = header
    challenges: list[Challenge] = []
    current: Challenge | None = None
    i = 0
    while i < len(text):
        i = _skip(text, i, _WS + ",")
        if i >= len(text):
            break
        start = i
        i = _read_token(text, i)
        if i == start:
            i = _skip_item(text, i)
            continue
        name = text[start:i].lower()
        after = _skip(text, i, _WS)
        if after < len(text) and text[after] == "=":
            value, i = _read_value(text, after + 1)
            if current is not None:
                current.params[name] = value
            continue
        current = Challenge(scheme=name, params={})
        challenges.append(current)
        i = _skip_token68(text, after)
    return challenges


def _challenges(response: httpx.Response) -> list[Challenge]:
    found: list[Challenge] = []
    for value in response.headers.get_list("www-authenticate"):
        found.extend(parse_www_authenticate(value))
    return found


# --------------------------------------------------------------------------- scopes

_REPOSITORY_PATH = re.compile(
    r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|tags/list|referrers/[^/]+)/?$"
)
_ACTIONS = {
    "GET": "pull",
    "HEAD": "pull",
    "POST": "pull,push",
    "PUT": "pull,push",
    "PATCH": "pull,push",
    "DELETE": "delete",
}


def derive_scope(method: str, path: str) -> str | None:
    """The token scope a distribution API request needs, or None when the path says nothing."""
    if path.rstrip("/") == "/v2/_catalog":
        return "registry:catalog:*"
    match = _REPOSITORY_PATH.match(path)
    action = _ACTIONS.get(method.upper())
    if match is None or action is None:
        return None
    return f"repository:{match.group('name')}:{action}"


# --------------------------------------------------------------------------- the flow


@dataclass(frozen=True, slots=True)
class _HostChallenge:
    """What a host asked for last time: ``basic``, or ``bearer`` with its realm and service."""

    scheme: str
    realm: str = ""
    service: str = ""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float  # on the monotonic clock


# (realm, service, scope); scope is "" when the request implies none.
_TokenKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _Sent:
    """The Authorization the flow put on the first attempt."""

    kind: str  # "none" | "basic" | "bearer" | "static"
    key: _TokenKey | None = None
    token: str | None = field(default=None, repr=False)


_NOTHING_SENT = _Sent("none")


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _jwt_claims(token: str) -> Mapping[str, object] | None:
    """The payload of a JWT, undecoded signature and all; None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _scope_text(scope: str) -> str:
    return scope or "registry access"


def _check_realm(realm: str, registry_url: httpx.URL) -> str:
    """The absolute realm URL, if it is safe to send credentials to; else ``AuthError``."""
    try:
        url = registry_url.join(realm)
    except httpx.InvalidURL:
        raise AuthError(f"{registry_url.host} sent an unusable token realm") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise AuthError(
            f"refusing token realm with scheme {url.scheme!r} from {registry_url.host}: "
            "only http(s) realms are used"
        )
    if url.scheme == "http" and registry_url.scheme != "http":
        raise AuthError(
            f"refusing plain-http token realm {url.host} for https registry {registry_url.host}",
            hint="a registry reached over https must send an https realm",
        )
    return str(url)


class RegistryAuth(httpx.Auth):
    """Basic and Bearer registry auth for one shared, thread-safe ``httpx.Client``.

    ``credentials(host)`` gives the credentials for ``host[:port]`` (or None for
    anonymous); it is called only when a host first challenges, at most once per host.
    ``send(request)`` fetches tokens: it must send the request *without* this auth
    (e.g. ``client.send(request, auth=None)``) and return the response; it may be given
    later with ``bind``. Sync clients only.
    """

    # Retries re-send the request, so a body must be read first; but see sync_auth_flow for streamed bodies.
    requires_request_body = True

    def __init__(
        self,
        credentials: Callable[[str], Credentials | None] | None = None,
        send: TokenSender | None = None,
        *,
        client_id: str = CLIENT_ID,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._lookup = credentials
        self._send = send
        self._client_id = client_id
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._credentials: dict[str, Credentials | None] = {}
        self._credential_errors: dict[str, CacheInspectError] = {}
        self._credential_locks: dict[str, threading.Lock] = {}
        self._hosts: dict[str, _HostChallenge] = {}
        self._scope_aliases: dict[tuple[str, str], str] = {}
        self._tokens: dict[_TokenKey, _Token] = {}
        self._token_locks: dict[_TokenKey, threading.Lock] = {}

    def bind(self, send: TokenSender) -> None:
        """Set the function used to call token endpoints (when the client is built after us)."""
        self._send = send

    # -- the httpx flow

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's flow, except that a streamed body (a blob of any size copied chunk by chunk) is not read
        into memory: it goes once, with the authorization known up front, and a challenge to it is not
        answered (it cannot be sent again), so it ends as a 401."""
        if isinstance(request.stream, httpx.ByteStream):
            request.read()
        return (yield from self.auth_flow(request))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        origin = _origin(request.url)
        host = request.url.netloc.decode("ascii")
        derived = derive_scope(request.method, request.url.path)
        sent = self._authorize_up_front(request, origin, host, derived)
        response = yield request
        if response.status_code != 401:
            return
        if _origin(response.request.url) != origin:
            # A redirect target challenged us: its realm gets none of this registry's credentials.
            logger.debug("401 from redirect target %s; not answering it", response.request.url.host)
            return
        replayable = isinstance(request.stream, httpx.ByteStream)
        if self._answer_challenge(request, origin, host, derived, _challenges(response), sent) and replayable:
            yield request

    def _authorize_up_front(
        self, request: httpx.Request, origin: str, host: str, derived: str | None
    ) -> _Sent:
        with self._lock:
            known = self._hosts.get(origin)
            scope = self._scope_aliases.get((origin, derived), derived) if derived else ""
        if known is None:
            return _NOTHING_SENT
        creds = self._credentials_for(host)
        if creds is not None and creds.registry_token:
            request.headers["Authorization"] = f"Bearer {creds.registry_token}"
            return _Sent("static")
        if known.scheme == "basic":
            if creds is not None and creds.username and creds.password:
                request.headers["Authorization"] = _basic(creds.username, creds.password)
                return _Sent("basic")
            return _NOTHING_SENT
        key = (known.realm, known.service, scope)
        token = self._token(key, creds, rejected=None)
        request.headers["Authorization"] = f"Bearer {token}"
        return _Sent("bearer", key, token)

    def _answer_challenge(
        self,
        request: httpx.Request,
        origin: str,
        host: str,
        derived: str | None,
        challenges: list[Challenge],
        sent: _Sent,
    ) -> bool:
        """Put new Authorization on ``request`` and return True when a retry is worth it."""
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.params.get("realm")), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        logger.debug(
            "401 from %s for %s %s; challenges: %s",
            host,
            request.method,
            request.url.path,
            redact(", ".join(f"{c.scheme} {c.params}" for c in challenges)) or "none",
        )
        if bearer is None and basic is None:
            return False
        key: _TokenKey | None = None
        if bearer is not None:
            realm = _check_realm(bearer.params["realm"], request.url)
            service = bearer.params.get("service", "")
            scope = " ".join(bearer.params.get("scope", "").split()) or derived or ""
            key = (realm, service, scope)
            with self._lock:
                self._hosts[origin] = _HostChallenge("bearer", realm, service)
                if derived and scope != derived:
                    self._scope_aliases[(origin, derived)] = scope
        else:
            with self._lock:
                self._hosts[origin] = _HostChallenge("basic")
        creds = self._credentials_for(host)

        if creds is not None and creds.registry_token:
            if sent.kind == "static":
                return False
            request.headers["Authorization"] = f"Bearer {creds.registry_token}"
            return True
        if key is not None:
            rejected = sent.token if sent.key == key else None
            request.headers["Authorization"] = f"Bearer {self._token(key, creds, rejected=rejected)}"
            return True
        if creds is None or not creds.username or not creds.password or sent.kind == "basic":
            return False
        request.headers["Authorization"] = _basic(creds.username, creds.password)
        return True

    # -- credentials, once per host

    def granted_actions(self, repository: str) -> tuple[str, ...] | None:
        """Actions on ``repository`` (its path) granted by the Bearer tokens held (JWT ``access`` claims, not
        verified: a report of what the token server said, never a decision).

        None when no token for the repository was issued or none is a decodable JWT. Only the actions
        leave this method, never a token.
        """
        with self._lock:
            held = [(key[2], token.value) for key, token in self._tokens.items()]
        granted: set[str] = set()
        decoded = False
        for scope, value in held:
            if f"repository:{repository}:" not in scope:
                continue
            claims = _jwt_claims(value)
            if claims is None:
                continue
            decoded = True
            access = claims.get("access")
            if not isinstance(access, list):
                continue
            for entry in access:
                if (
                    isinstance(entry, dict)
                    and entry.get("type") == "repository"
                    and entry.get("name") == repository
                    and isinstance(entry.get("actions"), list)
                ):
                    granted.update(str(a) for a in entry["actions"])
        return tuple(sorted(granted)) if decoded else None

    def credentials_source(self, host: str) -> str | None:
        """Where the credentials for ``host`` (``host[:port]``) came from; None when there are none."""
        creds = self._credentials_for(host)
        return None if creds is None else (creds.source or "the caller")

    def credentials_for(self, host: str) -> Credentials | None:
        """The credentials for ``host``, looked up once (a REST API that takes the registry's token)."""
        return self._credentials_for(host)

    def _credentials_for(self, host: str) -> Credentials | None:
        if self._lookup is None:
            return None
        with self._lock:
            if host in self._credentials:
                return self._credentials[host]
            lock = self._credential_locks.setdefault(host, threading.Lock())
        with lock:
            with self._lock:
                if host in self._credentials:
                    return self._credentials[host]
                failure = self._credential_errors.get(host)
            if failure is not None:
                raise failure
            try:
                creds = self._lookup(host)
            except CacheInspectError as exc:
                with self._lock:
                    self._credential_errors[host] = exc
                raise
            with self._lock:
                self._credentials[host] = creds
        logger.debug(
            "credentials for %s: %s", host, f"from {creds.source or 'caller'}" if creds else "anonymous"
        )
        return creds

    # -- tokens, once per (realm, service, scope) at a time

    def _token(self, key: _TokenKey, creds: Credentials | None, *, rejected: str | None) -> str:
        """A usable token for ``key``: the cached one unless expired or ``rejected``, else a new one."""
        with self._lock:
            lock = self._token_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and cached.value != rejected and self._clock() < cached.expires_at:
                return cached.value
            token = self._fetch_token(key, creds)
            with self._lock:
                self._tokens[key] = token
            return token.value

    def _token_request(self, key: _TokenKey, creds: Credentials | None) -> httpx.Request:
        realm, service, scope = key
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token"}
            if service:
                form["service"] = service
            if scope:
                form["scope"] = scope
            form["client_id"] = self._client_id
            form["refresh_token"] = creds.identity_token
            return httpx.Request("POST", realm, data=form)
        # A tuple, being covariant, satisfies httpx's parameter types as is.
        params = ((("service", service),) if service else ()) + tuple(("scope", one) for one in scope.split())
        headers = {}
        if creds is not None and creds.username and creds.password:
            headers["Authorization"] = _basic(creds.username, creds.password)
        return httpx.Request("GET", realm, params=params, headers=headers)

    def _fetch_token(self, key: _TokenKey, creds: Credentials | None) -> _Token:
        realm, service, scope = key
        realm_host = httpx.URL(realm).host
        if self._send is None:
            raise CacheInspectError("RegistryAuth has no token sender: pass send= or call bind()")
        request = self._token_request(key, creds)
        if request.method == "POST":
            how = "identity token"
        elif "Authorization" in request.headers:
            how = "basic"
        else:
            how = "anonymous"
        logger.debug(
            "token request to %s (%s) for %s, service %r", realm_host, how, _scope_text(scope), service
        )
        try:
            response = self._send(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise TransportError(
                f"token request to {realm_host} failed: {redact(str(exc)) or type(exc).__name__}"
            ) from exc
        except httpx.HTTPError as exc:
            raise AuthError(f"token request to {realm_host} failed: {type(exc).__name__}") from exc

        status = response.status_code
        if status in (401, 403):
            if how == "anonymous":
                raise AuthError(
                    f"{realm_host} refused an anonymous token for {_scope_text(scope)} (HTTP {status})",
                    hint="the repository may be private: log in (docker login) or pass credentials",
                )
            source = creds.source if creds is not None and creds.source else "the caller"
            raise AuthError(
                f"token request for {_scope_text(scope)} failed: credentials from {source} "
                f"were rejected by {realm_host} (HTTP {status})",
                hint="check the username and password or token, or log in again",
            )
        if not 200 <= status < 300:
            raise AuthError(f"token request to {realm_host} for {_scope_text(scope)} failed: HTTP {status}")
        try:
            doc = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise AuthError(f"token endpoint {realm_host} answered HTTP {status} with invalid JSON") from None
        value = None
        if isinstance(doc, dict):
            value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthError(f"token endpoint {realm_host} answered HTTP {status} without a token")
        lifetime = self._lifetime(doc)
        logger.debug("token for %s from %s usable for %.0f s", _scope_text(scope), realm_host, lifetime)
        return _Token(value=value, expires_at=self._clock() + lifetime - TOKEN_EXPIRY_MARGIN)

    def _lifetime(self, doc: Mapping[str, object]) -> float:
        """Seconds the token stays valid from now: ``expires_in`` (≥ 60), less its age by ``issued_at``."""
        expires_in = doc.get("expires_in")
        lifetime = DEFAULT_TOKEN_LIFETIME
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            lifetime = max(float(expires_in), DEFAULT_TOKEN_LIFETIME)
        issued_at = doc.get("issued_at")
        if isinstance(issued_at, str):
            try:
                issued = datetime.fromisoformat(issued_at).timestamp()
            except (ValueError, OverflowError, OSError):
                return lifetime
            age = self._wall_clock() - issued
            # A negative age, or one beyond the lifetime, is clock skew: a fresh token is not expired.
            if 0 <= age < lifetime:
                return lifetime - age
        return lifetime
