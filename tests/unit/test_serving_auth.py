"""The auth matrix: who gets in where, with which token; the service refuses to run with a weak secret."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from shipyard.cli.main import main
from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.registry.models import LoadedModel
from shipyard.serving import create_app
from shipyard.serving.auth import mint_token
from shipyard.serving.holder import ModelHolder
from tests.unit.conftest import IRIS_ROWS, SECRET, AppFactory, served


def token(scopes: str = "predict", expires_in: int = 600, key: str = SECRET, **changes: object) -> str:
    """An HS256 token minted now (never at collection: a parametrised token would expire before its test
    runs on a slow machine); a claim set to None is left out."""
    now = int(time.time())
    claims = {"sub": "alice", "scope": scopes, "aud": "shipyard", "iat": now, "exp": now + expires_in}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@pytest.fixture
def secured(client_for: AppFactory) -> TestClient:
    return client_for(auth_enabled=True, jwt_secret=SECRET)


# how each refused request's headers are made, called inside the test so every token is fresh
REFUSALS: dict[str, tuple[Callable[[], dict[str, str]], int, str]] = {
    "no header": (dict, 401, "missing bearer token"),
    "basic auth": (lambda: {"authorization": "Basic abc"}, 401, "malformed Authorization header"),
    "expired": (lambda: bearer(token(expires_in=-10)), 401, "token expired"),
    "tampered": (lambda: bearer(token() + "x"), 401, "invalid token"),
    "another key": (lambda: bearer(token(key="y" * 40)), 401, "invalid token"),
    "another audience": (lambda: bearer(token(aud="someone-else")), 401, "another audience"),
    "no subject": (lambda: bearer(token(sub=None)), 401, "lacks the 'sub' claim"),
    "batch scope only": (lambda: bearer(token(scopes="batch")), 403, "lacks the 'predict' scope"),
}


@pytest.mark.parametrize(("make_headers", "status", "message"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_prediction_is_refused_without_a_valid_predict_token(
    secured: TestClient, make_headers: Callable[[], dict[str, str]], status: int, message: str
) -> None:
    headers = make_headers()
    for path, body in (("/predict", IRIS_ROWS[0]), ("/invocations", {"dataframe_records": IRIS_ROWS})):
        response = secured.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert message in response.json()["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_scopes_open_what_they_should(secured: TestClient) -> None:
    predict, admin = bearer(token("predict")), bearer(token("admin"))
    assert secured.post("/predict", json=IRIS_ROWS[0], headers=predict).status_code == 200
    assert secured.post("/v2/models/iris/infer", json={"inputs": []}, headers=predict).status_code == 422
    assert secured.post("/admin/reload", headers=predict).status_code == 403
    assert secured.post("/admin/reload", headers=admin).status_code == 200
    assert secured.post("/predict", json=IRIS_ROWS[0], headers=admin).status_code == 200  # admin implies all
    for open_path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert secured.get(open_path).status_code == 200, open_path


def test_rs256_with_a_public_key(client_for: AppFactory, tmp_path: object) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client = client_for(auth_enabled=True, jwt_algorithm="RS256", jwt_public_key=public)
    minted = mint_token(Settings(jwt_algorithm="RS256", jwt_private_key=private), "bob", ["predict"], 60)
    assert client.post("/predict", json=IRIS_ROWS[0], headers=bearer(minted)).status_code == 200
    hs = token()  # an HS256 token must not pass an RS256 service
    assert client.post("/predict", json=IRIS_ROWS[0], headers=bearer(hs)).status_code == 401


@pytest.mark.parametrize("secret", [None, "changeme", "short-secret"])
def test_refuses_to_start_with_auth_on_and_a_weak_secret(secret: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(Settings(auth_enabled=True, jwt_secret=secret, models=["iris"]))
    if secret:
        assert secret not in str(err.value)  # the secret itself is never printed


def test_tokens_never_reach_the_logs(
    iris_loaded: tuple[LoadedModel, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    """What the service writes: the lines of its own handlers on the ``shipyard`` logger (which does not
    propagate, so caplog would see nothing), at DEBUG, and the access log, which goes to stderr."""
    settings = Settings(auth_enabled=True, jwt_secret=SECRET, models=["iris"], reload_interval_seconds=0)
    app = create_app(settings, ModelHolder.of(served(iris_loaded[0])))  # configures the service's logging
    logger = logging.getLogger("shipyard")
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    assert handlers, "the service writes its log through a stream handler on the 'shipyard' logger"
    written = io.StringIO()
    streams = [h.setStream(written) for h in handlers]
    level, logger.level = logger.level, logging.DEBUG
    value = token()
    try:
        with TestClient(app) as client:  # leaving it runs the shutdown, which flushes the access log
            good = {**bearer(value), "x-request-id": "probe-good"}
            bad = {**bearer(value + "tampered"), "x-request-id": "probe-bad"}
            assert client.post("/predict", json=IRIS_ROWS[0], headers=good).status_code == 200
            assert client.post("/predict", json=IRIS_ROWS[0], headers=bad).status_code == 401
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)
        logger.setLevel(level)
    text = written.getvalue() + capfd.readouterr().err
    assert "shutdown complete" in text  # the logger's lines were captured
    assert "probe-good" in text and "probe-bad" in text  # and so were the access log's
    assert value not in text and SECRET not in text


def test_token_command_mints_a_token_the_service_accepts(
    secured: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.config.settings import get_settings

    monkeypatch.setenv("SHIPYARD_JWT_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        assert main(["token", "create", "--scope", "predict", "--ttl", "30m", "--subject", "ci"]) == 0
        minted = capsys.readouterr().out.strip()
        claims = jwt.decode(minted, SECRET, algorithms=["HS256"], audience="shipyard")
        assert claims["sub"] == "ci" and claims["scope"] == "predict"
        assert 1790 <= claims["exp"] - claims["iat"] <= 1800
        assert secured.post("/predict", json=IRIS_ROWS[0], headers=bearer(minted)).status_code == 200
        assert main(["token", "create", "--scope", "root"]) == 2
        assert main(["token", "create", "--scope", "predict", "--ttl", "soon"]) == 2
    finally:
        get_settings.cache_clear()
