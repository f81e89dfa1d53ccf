"""Two Hypothesis workers share a failure through a real Redis server (`--db redis://...`).

Worker 1 is a `daxfuzz fuzz --engine hypothesis` campaign on the planted bug; worker 2
is another process that only *replays* the database (Hypothesis's reuse phase, no
generation), so its finding can only have come from worker 1 through Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from daxfuzz.core.emit import known_signatures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN = "test-broken-unmap-ref"

REPLAY_ONLY = """
import sys
import unittest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from daxfuzz.campaign.hypothesis_db import open_database
from fuzz.hypothesis_machine import DivergenceFound, machine_for

m = machine_for(sys.argv[2], findings=sys.argv[3])
# max_examples bounds the reuse phase too: 1 would replay only the shortest stored entry
s = settings(database=open_database(sys.argv[1]), phases=[Phase.reuse], max_examples=100,
             deadline=None, suppress_health_check=list(HealthCheck))
try:
    run_state_machine_as_test(m, settings=s)
except DivergenceFound:
    print("REPLAYED", m.last_finding["signature"])
    sys.exit(1)
except unittest.SkipTest:  # reuse phase only, and nothing stored
    pass
print("NOTHING TO REPLAY")
"""


@pytest.fixture()
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed (Debian package redis-server): "
                    "the shared-database test needs a real server")
    pytest.importorskip("redis", reason="the redis PyPI package is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_two_workers_share_a_failure_through_redis(redis_url, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    w1 = subprocess.run([sys.executable, "-m", "daxfuzz", "fuzz", "--engine", "hypothesis",
                         "--target", BROKEN, "--time", "4", "--seed", "3", "--db", redis_url,
                         "--findings", str(tmp_path / "f1"), "--no-report", "-q"],
                        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert w1.returncode == 1, w1.stdout + w1.stderr
    first = known_signatures(str(tmp_path / "f1"), BROKEN)
    assert first
    # before worker 1 ran, the database was empty: a replay-only worker finds nothing
    w2 = subprocess.run([sys.executable, "-c", REPLAY_ONLY, redis_url, BROKEN,
                         str(tmp_path / "f2")], env=env, capture_output=True, text=True,
                        timeout=60, cwd=tmp_path)
    assert w2.returncode == 1, w2.stdout + w2.stderr
    sig = w2.stdout.split("REPLAYED ")[1].split()[0]
    assert sig in first
    assert known_signatures(str(tmp_path / "f2"), BROKEN) == {sig}  # reduced, saved there


def test_empty_database_replays_nothing(redis_url, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    w = subprocess.run([sys.executable, "-c", REPLAY_ONLY, redis_url, BROKEN,
                        str(tmp_path / "f")], env=env, capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert w.returncode == 0 and "NOTHING TO REPLAY" in w.stdout, w.stdout + w.stderr


def test_corrupt_redis_value_is_reported_and_kept(redis_url):
    from hypothesis.database import choices_to_bytes

    from daxfuzz.campaign.hypothesis_db import open_database

    said = []
    db = open_database(redis_url, report=said.append)
    good = choices_to_bytes((1, True, b"x"))
    db.save(b"k", good)
    db.save(b"k", b"\xff\xfe junk")
    assert list(db.fetch(b"k")) == [good]
    assert len(said) == 1 and "corrupt Hypothesis example" in said[0] and redis_url in said[0]
    assert sorted(db.inner.fetch(b"k")) == sorted([good, b"\xff\xfe junk"])  # not deleted
