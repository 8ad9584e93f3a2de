"""``shipyard serve`` and ``shipyard token create``."""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer

from shipyard.cli.output import err_console
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError
from shipyard.registry.deadline import redact_uri


def export_overrides(overrides: dict[str, object | None]) -> None:
    """Options given on the command line become settings in the environment (worker processes and the
    settings cache read them there); options not given leave the environment as it is."""
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    get_settings.cache_clear()


token_app = typer.Typer(help="Mint JWT bearer tokens for the service.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (SHIPYARD_HOST, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SHIPYARD_PORT, default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="uvicorn worker processes (SHIPYARD_WORKERS).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models to serve, first is the default (SHIPYARD_MODELS)."),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Turn JWT auth off (local use only; SHIPYARD_AUTH_ENABLED=false)."),
    ] = False,
) -> None:
    import uvicorn

    # workers are separate processes that read settings from the environment: pass overrides there
    export_overrides(
        {"SHIPYARD_HOST": host, "SHIPYARD_PORT": port, "SHIPYARD_WORKERS": workers, "SHIPYARD_MODELS": models}
    )
    if no_auth:
        os.environ["SHIPYARD_AUTH_ENABLED"] = "false"
    get_settings.cache_clear()
    settings = get_settings()
    settings.check_auth()
    from shipyard.monitoring.store import MonitoringStore

    MonitoringStore(settings.monitoring_store_url).close()  # a malformed URL stops here, in one line
    auth = "auth on (JWT bearer tokens)" if settings.auth_enabled else "[yellow]auth OFF[/] — local use only"
    err_console.print(
        f"serving {', '.join(settings.models)} from {redact_uri(settings.store_uri)} on "
        f"http://{settings.host}:{settings.port} ({auth}); docs at /docs",
        soft_wrap=True,
    )
    uvicorn.run(
        "shipyard.serving.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        access_log=False,  # the service writes its own JSON access log with the request id
        server_header=False,
        timeout_graceful_shutdown=30,
    )


_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    match = _TTL.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--ttl: expected a duration like 900, 30m, 1h or 7d, got '{text}'")
    return int(match.group(1)) * _UNIT[match.group(2)]


@token_app.command("create", help="Print a signed token (HS256 with SHIPYARD_JWT_SECRET, or RS256).")
def create_token(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="predict, admin or batch (repeatable).")],
    ttl: Annotated[str, typer.Option(help="Lifetime: seconds or 30m, 1h, 7d.")] = "1h",
    subject: Annotated[str, typer.Option(help="Who the token is for (the 'sub' claim).")] = "shipyard-client",
) -> None:
    from shipyard.serving.auth import mint_token

    typer.echo(mint_token(get_settings(), subject, scope, parse_ttl(ttl)))
