"""The real app process: `streamlit run app.py` serves the pages and GET /api/health on 127.0.0.1."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.conftest import REPO, running_app


@pytest.fixture
def server(isolated_paths):
    with running_app() as (base, port):
        yield base, port


def test_health_route_and_lifespan(server, isolated_paths):
    base, _ = server
    with urllib.request.urlopen(base + "/api/health", timeout=5) as response:
        assert response.headers["content-type"].startswith("application/json")
        body = json.loads(response.read())
    assert body["status"] == "ok"
    assert body["data_dir_exists"] is True  # the lifespan created the folders FRAUDCORE_DATA points at
    assert (isolated_paths / "data").is_dir() and (isolated_paths / "artifacts").is_dir()


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses LISTENing on ``port``, read from /proc/net/tcp{,6} (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if int(hex_port, 16) == port and state == "0A":
                    found.add(address)
    return found


def test_pages_are_served_and_bound_to_loopback(server):
    base, port = server
    with urllib.request.urlopen(base + "/", timeout=5) as response:
        assert response.status == 200 and b"<html" in response.read().lower()
    addresses = listening_addresses(port)
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp on this platform to read listening sockets from")
    assert addresses == {"0100007F"}, f"server listens on {addresses}, expected only 127.0.0.1"


def test_app_turns_nagle_off_for_accepted_sockets():
    """Streamlit's listening socket has proto 0, which asyncio's own TCP_NODELAY check skips (a 40 ms stall per
    kept-alive response); loading app.py widens the check to every TCP socket."""
    import asyncio.base_events
    import runpy
    import socket

    runpy.run_path(str(REPO / "app.py"), run_name="app_module_only")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # proto 0, like Streamlit's
        asyncio.base_events._set_nodelay(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
