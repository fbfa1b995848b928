"""`listen.tls`: the router serves HTTPS with the configured certificate, and nothing else."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import openai
import pytest

from router.api.edge import ssl_context
from router.config import ConfigError, ListenConfig, TlsConfig
from tests.conftest import Router, RouterFactory
from tests.edge.raw import port_of, read_to_close

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsConfig:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return TlsConfig(str(cert), str(key))


@pytest.fixture
async def tls_router(make_router: RouterFactory, tls_files: TlsConfig) -> Router:
    return await make_router(listen=ListenConfig(tls=tls_files))


def _client(router: Router, tls: TlsConfig, **kw: object) -> openai.AsyncOpenAI:
    trust = ssl.create_default_context(cafile=tls.cert_file)
    http_client = openai.DefaultAsyncHttpxClient(verify=trust)
    base = f"https://127.0.0.1:{port_of(router)}/v1"
    return router.client(base="", http_client=http_client, **kw).with_options(base_url=base)


async def test_the_sdk_talks_https_to_the_router(tls_router: Router, tls_files: TlsConfig) -> None:
    client = _client(tls_router, tls_files)
    answer = await client.chat.completions.create(model="ollama/llama3", messages=MESSAGES)
    assert answer.choices[0].message.content
    stream = await client.chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    await client.close()


async def test_an_untrusted_certificate_is_refused_by_the_client(
    tls_router: Router, tls_files: TlsConfig
) -> None:
    base = f"https://127.0.0.1:{port_of(tls_router)}/v1"
    client = tls_router.client(base="").with_options(base_url=base)  # the system CAs only
    with pytest.raises(openai.APIConnectionError):
        await client.models.list()
    await client.close()


async def test_plain_http_on_the_tls_port_gets_no_http_answer(tls_router: Router) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port_of(tls_router)), 5
    )
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await read_to_close(reader)
    writer.close()
    assert not raw.startswith(b"HTTP/")


def test_missing_certificate_files_are_a_clear_error(tmp_path: Path) -> None:
    missing = TlsConfig(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    with pytest.raises(ConfigError, match=r"listen\.tls: cannot load the certificate and key"):
        ssl_context(missing)
