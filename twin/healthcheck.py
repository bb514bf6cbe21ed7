"""The images' HEALTHCHECK: asks GET /healthz of the `twin run` in this container; exit 0 only when all is up.

Run as `python -m twin.healthcheck`; prints what is wrong (the endpoint's JSON) otherwise."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from twin.settings import Settings

TIMEOUT_SECONDS = 8.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def health_url(settings: Settings) -> str:
    """Where this container's twin answers /healthz (a wildcard listen address is asked on the loopback)."""
    host = "127.0.0.1" if settings.health_host in ANY_ADDRESS else settings.health_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.health_port}/healthz"


def check(settings: Settings) -> tuple[bool, str]:
    """Whether the twin says everything is up, and what it said."""
    if settings.health_port == 0:
        return False, "the health endpoint is off (TWIN_HEALTH_PORT=0)"
    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return response.status == 200, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:  # 503: something is down; the body says what
        return False, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url} does not answer: {error}"


def main() -> int:
    """Exit status for Docker: 0 healthy, 1 not."""
    healthy, said = check(Settings())
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
