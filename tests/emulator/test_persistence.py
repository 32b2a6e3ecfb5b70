"""State lives in SQLite: a restarted emulator still has everything, and servers keep their lifecycle."""

from __future__ import annotations

from pathlib import Path

from emulator.server import start_emulator
from tests.emulator.conftest import FAST, connect, public_key


def test_it_keeps_state_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "cloud.sqlite3"
    first = start_emulator(state_path=state, **FAST)
    try:
        conn = connect(first)
        image = conn.image.find_image("canfar-rocky-8", ignore_missing=False)
        flavor = conn.compute.find_flavor("c4-15gb-83", ignore_missing=False)
        conn.compute.create_keypair(name="kept", public_key=public_key())
        server = conn.compute.create_server(name="survivor", image_id=image.id, flavor_id=flavor.id)
        public = conn.network.find_network("public", ignore_missing=False)
        ip = conn.network.create_ip(floating_network_id=public.id)
    finally:
        first.stop()

    second = start_emulator(state_path=state, **FAST)
    try:
        conn = connect(second)
        again = conn.compute.wait_for_server(conn.compute.get_server(server.id), interval=0.1, wait=30)
        assert again.name == "survivor"
        assert again.status == "ACTIVE"  # the build finished while the emulator was down
        assert conn.compute.get_keypair("kept").name == "kept"
        assert conn.network.get_ip(ip.id).floating_ip_address == ip.floating_ip_address
        # Seeded things are not duplicated by the second start.
        assert [i.name for i in conn.image.images()].count("canfar-rocky-8") == 1
    finally:
        second.stop()
