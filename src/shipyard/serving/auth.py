"""JWT bearer tokens: HS256 with a shared secret or RS256 with a key pair; scopes `predict` and `admin`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from shipyard.config.settings import Settings
from shipyard.errors import AuthError, ConfigError, ForbiddenError

SCOPES = ("predict", "admin", "batch")


def _key_text(value: str) -> str:
    """A PEM given inline or as a path to a file holding it."""
    if "-----BEGIN" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"JWT key is neither PEM text nor a readable file: {path}")
    return path.read_text()


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]


class TokenVerifier:
    """Checks signature, expiry, audience (and issuer when set); then the route's scope."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        if self.algorithm == "HS256":
            assert settings.jwt_secret is not None
            self._key: str = settings.jwt_secret.get_secret_value()
        else:
            assert settings.jwt_public_key is not None
            self._key = _key_text(settings.jwt_public_key.get_secret_value())

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing bearer token (send 'Authorization: Bearer <token>')")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("malformed Authorization header (expected 'Bearer <token>')")
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid token") from None
        scopes = claims.get("scope", "")
        if isinstance(scopes, str):
            scopes = scopes.split()
        return Principal(str(claims["sub"]), frozenset(str(s) for s in scopes))

    @staticmethod
    def require(principal: Principal, scope: str) -> None:
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise ForbiddenError(f"token lacks the '{scope}' scope")


def mint_token(settings: Settings, subject: str, scopes: list[str], ttl_seconds: int) -> str:
    """A signed token for ``subject`` with ``scopes``, valid for ``ttl_seconds``."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope(s): {', '.join(unknown)} (expected: {', '.join(SCOPES)})")
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_algorithm == "HS256":
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        if not secret:
            raise ConfigError("set SHIPYARD_JWT_SECRET to mint HS256 tokens")
        return jwt.encode(claims, secret, algorithm="HS256")
    if settings.jwt_private_key is None:
        raise ConfigError("set SHIPYARD_JWT_PRIVATE_KEY to mint RS256 tokens")
    return jwt.encode(claims, _key_text(settings.jwt_private_key.get_secret_value()), algorithm="RS256")
