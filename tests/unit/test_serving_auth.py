"""The auth matrix: who gets in where, with which token; the service refuses to run with a weak secret."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from shipyard.cli.main import main
from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.serving import create_app
from shipyard.serving.auth import mint_token
from tests.unit.conftest import IRIS_ROWS, SECRET, AppFactory


def token(scopes: str = "predict", **changes: object) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "scope": scopes, "aud": "shipyard", "iat": now, "exp": now + 600, **changes}
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, changes.pop("key", SECRET), algorithm="HS256"
    )  # type: ignore[arg-type]


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@pytest.fixture
def secured(client_for: AppFactory) -> TestClient:
    return client_for(auth_enabled=True, jwt_secret=SECRET)


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "missing bearer token"),
        ({"authorization": "Basic abc"}, 401, "malformed Authorization header"),
        (bearer(token(exp=int(time.time()) - 10)), 401, "token expired"),
        (bearer(token() + "x"), 401, "invalid token"),
        (
            bearer(
                jwt.encode({"sub": "a", "scope": "predict", "aud": "shipyard", "exp": 9999999999}, "y" * 40)
            ),
            401,
            "invalid token",
        ),
        (bearer(token(aud="someone-else")), 401, "another audience"),
        (bearer(token(sub=None)), 401, "lacks the 'sub' claim"),
        (bearer(token(scopes="batch")), 403, "lacks the 'predict' scope"),
    ],
)
def test_prediction_is_refused_without_a_valid_predict_token(
    secured: TestClient, headers: dict[str, str], status: int, message: str
) -> None:
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


def test_tokens_never_reach_the_logs(secured: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    value = token()
    with caplog.at_level(logging.DEBUG):
        secured.post("/predict", json=IRIS_ROWS[0], headers=bearer(value))
        secured.post("/predict", json=IRIS_ROWS[0], headers=bearer(value + "tampered"))
    assert value not in caplog.text and SECRET not in caplog.text


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
