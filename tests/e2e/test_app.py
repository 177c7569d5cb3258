"""voice/app.py over a real server: health and the API docs."""

import httpx


async def test_health_and_docs(server_url):
    async with httpx.AsyncClient(base_url=server_url) as http:
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["mode"] == "developer-light"
        spec = (await http.get("/openapi.json")).json()
        assert "/v1/realtime/client_secrets" in spec["paths"]
        assert (await http.get("/docs")).status_code == 200
