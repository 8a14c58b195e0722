"""HTTP from the tests to Flower and the metrics port, with or without basic auth."""

import base64
import urllib.error
import urllib.request


def get(port: int, path: str, auth: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return urllib.request.urlopen(request, timeout=10)


def status(port: int, path: str, auth: str | None = None) -> int | None:
    try:
        with get(port, path, auth) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def text(port: int, path: str, auth: str) -> str:
    with get(port, path, auth) as response:
        return response.read().decode()
