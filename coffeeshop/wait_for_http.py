"""`python -m coffeeshop.wait_for_http URL [SECONDS]`: wait until URL answers 2xx (for `make run`'s
simulated fleet, which should start talking once the web server is up, not back off before it is)."""

import sys
import time
import urllib.error
import urllib.request


def wait(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


if __name__ == "__main__":
    target = sys.argv[1]
    if not wait(target, float(sys.argv[2]) if len(sys.argv) > 2 else 120):
        sys.exit(f"{target} did not answer in time")
