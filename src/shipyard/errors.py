"""One exception hierarchy for the whole project.

Every error a user can cause or meet is a ``ShipyardError`` subclass with a one-line message that says
what was wrong and what was expected. Each class carries its CLI exit code (``exit_code``, read by
``cli.main``) and its HTTP status (``http_status``, read by ``serving.errors``), so both mappings live
beside the error itself.
"""

from __future__ import annotations

from typing import Any


class ShipyardError(Exception):
    """Base class: a failure with a message meant for the user, not a traceback."""

    exit_code = 1
    http_status = 500  # a failure of the service itself unless a subclass says the client caused it


class ConfigError(ShipyardError):
    """A pipeline config or setting is missing, malformed or inconsistent."""

    exit_code = 2


class DataError(ShipyardError):
    """Data could not be loaded (missing file, unreadable format, unknown bundled dataset)."""

    exit_code = 3


class DataValidationError(DataError):
    """Data failed its schema; ``report`` lists every failing check."""

    exit_code = 4

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class TrainingError(ShipyardError):
    """Fitting, tuning or evaluating a model failed."""

    exit_code = 5


class RegistryError(ShipyardError):
    """The tracking server or model registry refused or could not be reached."""

    exit_code = 6
    http_status = 503


class ModelNotFoundError(RegistryError):
    """A registered model, version or alias does not exist."""

    exit_code = 7
    http_status = 404


class StoreUnavailableError(ShipyardError):
    """The monitoring store did not answer (down, unreachable, or refusing the credentials)."""

    exit_code = 69  # EX_UNAVAILABLE
    http_status = 503


class InvalidRequestError(ShipyardError):
    """A request whose fields are wrong (422); ``errors`` lists each problem as
    ``{"loc": [...], "msg": ..., "type": ...}`` (the shape FastAPI uses for 422 responses), so the API
    can name every bad field."""

    exit_code = 8
    http_status = 422

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class PredictionInputError(InvalidRequestError):
    """Input rows do not match the model's signature (missing, extra or mistyped features)."""


class RequestTooLargeError(ShipyardError):
    """A request has more rows or bytes than the service accepts."""

    exit_code = 8
    http_status = 413


class MalformedRequestError(ShipyardError):
    """A request body that cannot be read at all: empty, not JSON (or CSV), invalid UTF-8, or nested
    deeper than the service reads (400)."""

    exit_code = 8
    http_status = 400


class UnsupportedMediaTypeError(ShipyardError):
    """A body in a content type or content encoding the route does not read (415)."""

    exit_code = 8
    http_status = 415


class ConflictError(ShipyardError):
    """The request would overwrite something that exists and was not asked to (409)."""

    exit_code = 8
    http_status = 409


class AuthError(ShipyardError):
    """A missing, expired, tampered or wrong-audience token (401)."""

    exit_code = 9
    http_status = 401


class ForbiddenError(AuthError):
    """A valid token without the scope the route needs (403)."""

    http_status = 403
