"""Swapping models in a running `fraudpipe serve`: under load no request fails; hostile swaps are
refused in one line and change nothing; SIGHUP reloads; several workers sharing Redis all follow."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import threading
import time

import httpx
import pytest

from fraudpipe.model import load_bundle
from fraudpipe.serve.admission import Refused
from fraudpipe.serve.service import Service
from fraudpipe.serve.swap import ModelIn, Swapper
from fraudpipe.servicelog import read_service_log
from helpers.serve import FRESH, Server, body, challenger, config, foreign_features, world

SWAP = "/v1/admin/model"


def _drive(server: Server, rows, stop: threading.Event, out: list, clients: int = 4) -> list[threading.Thread]:
    """``clients`` threads posting the rows in order (a shared cursor) until ``stop``: (sent at, status, version);
    a client whose server went away records status 0 and stops."""
    cursor = itertools.count()

    def client() -> None:
        with httpx.Client(base_url=server.url(""), timeout=30) as http:
            while not stop.is_set():
                i = next(cursor)
                if i >= len(rows):
                    return
                sent = time.monotonic()
                try:
                    answer = http.post("/v1/score", json=body(rows.iloc[i]))
                except httpx.HTTPError as exc:  # the server went away (killed): status 0
                    out.append((sent, 0, str(exc)))
                    return
                version = answer.json().get("model_version") if answer.status_code == 200 else answer.text
                out.append((sent, answer.status_code, version))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def test_swaps_back_and_forth_under_load_fail_no_request(tmp_path):
    w = world()
    a, b = str(w.bundle_dir), str(challenger())
    versions = {a: load_bundle(a).version, b: load_bundle(b).version}
    with Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal") as server:
        answers: list = []
        stop = threading.Event()
        threads = _drive(server, w.test, stop, answers)
        time.sleep(0.5)
        done = 0.0
        for i in range(7):  # a, b, a, ...: ends on b
            target = b if i % 2 == 0 else a
            swapped = server.client.post(SWAP, json={"model": target})
            assert swapped.status_code == 200, swapped.text
            assert swapped.json()["model_version"] == versions[target] and swapped.json()["generation"] == i + 1
            done = time.monotonic()
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        assert len(answers) > 200, "the clients kept sending through the swaps"
        assert [a for a in answers if a[1] != 200] == []  # zero failed requests
        seen = {v for _, _, v in answers}
        assert seen == set(versions.values())  # both models answered, and nothing else
        after = [v for sent, _, v in answers if sent > done]
        assert after and set(after) == {versions[b]}  # every request sent after the last swap: the new model
        ready = server.client.get("/readyz").json()
        assert ready["model_version"] == versions[b] and ready["model_generation"] == 7
        metrics = server.client.get("/metrics").text
        assert f'fraudpipe_model_info{{model_version="{versions[b]}",registry_version=""}} 1.0' in metrics
        assert f'model_version="{versions[a]}",registry_version=""}} 1.0' not in metrics
        assert "fraudpipe_model_swaps_total 7.0" in metrics
    log = read_service_log(tmp_path / "journal")
    assert set(log.scored["model_version"]) == set(versions.values()) and len(log.scored) == len(answers)
    assert "swapped in" in server.stdout.read_text()


def test_hostile_swaps_are_refused_in_one_line_and_change_nothing(tmp_path):
    w = world()
    live = shutil.copytree(w.bundle_dir, tmp_path / "live-bundle")  # the directory SIGHUP reads again
    corrupt = shutil.copytree(challenger(), tmp_path / "corrupt")
    data = bytearray((corrupt / "model.ubj").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "model.ubj").write_bytes(bytes(data))
    foreign = foreign_features(tmp_path / "foreign")
    version, other = load_bundle(live).version, load_bundle(challenger()).version
    with Server(tmp_path, live, w.state_dir, tmp_path / "journal") as server:
        http = server.client
        rows = w.test.head(20)
        assert server.score(body(rows.iloc[0])).status_code == 200
        cases = [
            ({"model": str(tmp_path / "nowhere")}, 422, "bundle.json does not exist"),
            ({"model": str(corrupt)}, 422, "does not match its sha256"),
            ({"model": str(foreign)}, 409, "['customer_id_nb_tx_90day_window'] are not computed"),
            ({"shadow": str(foreign)}, 409, "are not computed by this service's online state"),
            ({"model": "fraud-model#prod"}, 422, "not a git repository GTO can read"),
            ({}, 422, "give model (a new champion), shadow"),
            ({"promote": True}, 409, "no challenger in the shadow to promote"),
            ({"promote": True, "model": str(live)}, 422, "give it without model"),
            ({"model": str(live), "bogus": 1}, 422, "bogus"),
            ({"model": ""}, 422, "model"),
        ]
        for payload, status, line in cases:
            answer = http.post(SWAP, json=payload)
            assert answer.status_code == status, (payload, answer.text)
            detail = answer.json()["detail"]
            assert line in detail and "\n" not in detail, (payload, detail)
        assert http.post(SWAP, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
        ready = http.get("/readyz").json()
        assert ready["model_version"] == version and ready["model_generation"] == 0 and ready["scored"] == 1
        assert server.score(body(rows.iloc[1])).json()["model_version"] == version  # still serving, state intact
        metrics = http.get("/metrics").text
        assert not [line for line in metrics.splitlines() if "/v1/" in line and 'status="5' in line]  # no 5xx

        shadowed = http.post(SWAP, json={"shadow": str(challenger())}).json()  # set, promote, drop the shadow
        assert shadowed["shadow"]["model_version"] == other and shadowed["model_version"] == version
        answer = server.score(body(rows.iloc[2])).json()
        assert answer["model_version"] == version and not any("shadow" in k for k in answer)
        promoted = http.post(SWAP, json={"promote": True, "shadow": str(live)}).json()
        assert promoted["model_version"] == other and promoted["shadow"]["model_version"] == version
        dropped = http.post(SWAP, json={"shadow": None}).json()
        assert dropped["model_version"] == other and dropped["shadow"] is None
        assert http.post(SWAP, json={"model": str(live)}).json()["model_version"] == version

        for f in live.iterdir():  # a new bundle in the directory --model names, then SIGHUP
            f.unlink()
        for f in challenger().iterdir():
            shutil.copy(f, live / f.name)
        server.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 30
        while http.get("/readyz").json()["model_version"] != other and time.monotonic() < end:
            time.sleep(0.05)
        assert http.get("/readyz").json()["model_version"] == other, server.output()
        server.proc.send_signal(signal.SIGHUP)  # nothing changed since: nothing swapped
        end = time.monotonic() + 30
        while "nothing to swap" not in server.stdout.read_text() and time.monotonic() < end:
            time.sleep(0.05)
        assert "nothing to swap" in server.stdout.read_text(), server.output()
        assert server.score(body(rows.iloc[3])).json()["model_version"] == other
    log = read_service_log(tmp_path / "journal")
    assert log.scored["model_version"].tolist() == [version, version, version, other]
    assert log.scored["shadow_model"].isna().tolist() == [True, True, False, True]


def _failed_start(server: Server) -> str:
    """The one line saying why a start that must fail failed (its exit status 1)."""
    server.start(wait=False)
    assert server.proc.wait(timeout=120) == 1, server.output()
    lines = [line for line in server.stderr.read_text().splitlines() if line.startswith("serve failed: ")]
    assert len(lines) == 1, server.output()
    return lines[0]


def test_a_swap_survives_kill_9_and_a_restart_reopens_it_or_says_why_not(tmp_path):
    """A swap by path under load, then kill -9: the same command started again serves the swapped
    model (its record was committed before the swap's answer). A swapped bundle gone or changed stops
    the start in one line; another command line serves its own model."""
    w = world()
    start = shutil.copytree(w.bundle_dir, tmp_path / "start-bundle")
    swapped = shutil.copytree(challenger(), tmp_path / "swapped-bundle")
    version, other = load_bundle(start).version, load_bundle(swapped).version
    server = Server(tmp_path, start, w.state_dir, tmp_path / "journal")
    with server:
        answers: list = []
        stop = threading.Event()
        threads = _drive(server, w.test, stop, answers, clients=2)
        time.sleep(0.3)
        answer = server.client.post(SWAP, json={"model": "swapped-bundle"})  # relative to the service's directory
        server.proc.kill()  # at once, requests in flight
        stop.set()
        for t in threads:
            t.join()
        server.proc.wait(timeout=30)
    assert answer.status_code == 200 and answer.json()["model_version"] == other, answer.text
    assert {a[2] for a in answers if a[1] == 200} <= {version, other}

    with server:  # the same command line
        ready = server.client.get("/readyz").json()
        assert (ready["model_version"], ready["model_generation"]) == (other, 1), server.output()
        row = w.test.iloc[len(answers) + 10]
        assert server.score(body(row)).json()["model_version"] == other
        assert server.client.post(SWAP, json={"model": str(start)}).json()["generation"] == 2  # numbering goes on
        assert server.client.post(SWAP, json={"model": "swapped-bundle"}).json()["model_version"] == other
    assert f"model {other}" in server.stdout.read_text()

    shutil.move(swapped, tmp_path / "moved")  # the swapped bundle gone
    line = _failed_start(server)
    assert str(tmp_path / "journal" / "journal.sqlite3") in line, line
    assert "swap 3 (at " in line and "cannot be reopened: " in line and "bundle.json does not exist" in line
    assert "put that bundle back, or start with another --model" in line
    shutil.copytree(start, swapped)  # another bundle in its place
    line = _failed_start(server)
    assert f"swapped-bundle now holds {version}, not {other}" in line, line

    other_command = Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal")  # a new --model
    with other_command:
        ready = other_command.client.get("/readyz").json()
        assert (ready["model_version"], ready["model_generation"]) == (version, 0)
    with server:  # its command line is no longer the last start's: it serves its own --model
        assert server.client.get("/readyz").json()["model_generation"] == 0


def test_concurrent_swaps_one_loads_the_others_are_refused(tmp_path):
    w = world()
    service = Service.open(config(tmp_path))
    swapper = Swapper(service, lambda live: None)

    async def both() -> list:
        asks = [ModelIn(model=str(challenger())), ModelIn(model=str(w.bundle_dir)), ModelIn(shadow=None)]
        return await asyncio.gather(*(swapper.request(m) for m in asks), return_exceptions=True)

    first, *others = asyncio.run(both())
    assert first["model_version"] == load_bundle(challenger()).version == service.version
    for refused in others:
        assert isinstance(refused, Refused) and refused.status == 409 and "another swap is loading" in refused.message
    assert service.live.generation == 1
    service.close()


def _workers(server: Server, n: int, timeout: float = 180) -> set[int]:
    """The pids of the workers answering /readyz, once ``n`` have (fresh connections each)."""
    pids: set[int] = set()
    end = time.monotonic() + timeout
    while len(pids) < n and time.monotonic() < end:
        try:
            ready = httpx.get(server.url("/readyz"), timeout=5)
        except httpx.HTTPError:
            ready = None
        if ready is not None and ready.status_code == 200:
            pids.add(ready.json()["pid"])
        else:
            time.sleep(0.1)
    return pids


@pytest.mark.timeout(600)
def test_every_worker_sharing_redis_follows_a_swap(redis_server, tmp_path):
    w = world()
    version, other = load_bundle(w.bundle_dir).version, load_bundle(challenger()).version
    args = ("--store", redis_server.unix_url, "--redis-prefix", "swap", "--workers", "2", "--follow-every", "0.2")
    server = Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal", args)
    server.start()
    try:
        assert len(_workers(server, 2)) == 2, server.output()
        swapped = server.client.post(SWAP, json={"model": str(challenger())})
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["workers"] == {"serving": 2, "of": 2} and swapped.json()["model_version"] == other
        seen: dict[int, set[str]] = {}
        for row in w.test.head(40).itertuples():  # fresh connections: both workers answer
            answer = FRESH.post(server.url("/v1/score"), json=body(row), timeout=30)
            assert answer.status_code == 200, answer.text
            ready = FRESH.get(server.url("/readyz"), timeout=30).json()
            seen.setdefault(ready["pid"], set()).add(ready["model_version"])
            assert answer.json()["model_version"] == other
        assert all(v == {other} for v in seen.values())
        assert server.client.post(SWAP, json={"model": str(w.bundle_dir)}).json()["workers"]["serving"] == 2
        assert version in server.client.get("/metrics").text
    finally:
        server.stop()
    assert "followed the swap to generation" in server.stdout.read_text(), server.output()
