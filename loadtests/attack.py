#!/usr/bin/env python3
"""Replays the memory attacks of issue 18 against a real release server and prints what a
person watching `top` would see: the server's resident memory (VmRSS) before, during and after.

    cargo build --release --bin chorus
    python3 loadtests/attack.py [--events 1000000]

1. A socket declares a 1 GiB text frame and streams it.
2. 30 sockets that never read ask for a full room's snapshot 40 times each.
3. A room with a long log (default 1,000,000 events, written straight into SQLite) is loaded
   twice: once with no snapshot (as data from before snapshots), then after an idle unload.

Python's standard library only; the server runs from target/release/chorus on a free port with
its own SQLite file in a temporary directory.
"""

import argparse
import base64
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, directory, config):
        self.port = free_port()
        self.directory = directory
        path = os.path.join(directory, "chorus.toml")
        with open(path, "w") as f:
            f.write(config)
        env = dict(os.environ)
        env.update(
            CHORUS_BIND=f"127.0.0.1:{self.port}",
            DATABASE_URL=f"sqlite://{directory}/chorus.db",
            CHORUS_CONFIG=path,
            CHORUS_RATE_LIMIT="false",
            CHORUS_LOG="warn",
        )
        env.pop("REDIS_URL", None)
        self.log = open(os.path.join(directory, "server.log"), "a")
        self.process = subprocess.Popen(
            [os.path.join(ROOT, "target/release/chorus"), "serve"],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the server did not start; see " + self.log.name)

    def rss_mb(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def api(self, method, path, body=None, token=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json",
                     **({"authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
            return json.loads(text) if text else None

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def frame(opcode, payload, fin=True):
    """A masked client frame (zero mask key)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


def open_socket(server, token, receive_buffer=None):
    ticket = server.api("POST", "/api/v1/ws-ticket", {}, token)["ticket"]
    s = socket.socket()
    if receive_buffer:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    s.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /api/v1/ws?ticket={ticket} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_frames(s, timeout):
    """Server frames until the connection ends or `timeout` passes: [(opcode, payload)]."""
    s.settimeout(timeout)
    data, frames = b"", []
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            while len(data) >= 2:
                n, at = data[1] & 0x7F, 2
                if n == 126:
                    if len(data) < 4:
                        break
                    n, at = struct.unpack(">H", data[2:4])[0], 4
                elif n == 127:
                    if len(data) < 10:
                        break
                    n, at = struct.unpack(">Q", data[2:10])[0], 10
                if len(data) < at + n:
                    break
                frames.append((data[0] & 0x0F, data[at:at + n]))
                data = data[at + n:]
    except (socket.timeout, ConnectionResetError):
        pass
    return frames


def giant_frame(server, token):
    before = server.rss_mb()
    s = open_socket(server, token)
    s.sendall(b"\x81\xff" + struct.pack(">Q", 1 << 30) + b"\0\0\0\0")
    chunk, sent, peak = b"x" * (1 << 16), 0, before
    started = time.time()
    try:
        while sent < (200 << 20):
            s.sendall(chunk)
            sent += len(chunk)
            if sent % (8 << 20) == 0:
                peak = max(peak, server.rss_mb())
    except OSError:
        pass
    closes = [f for f in read_frames(s, 2) if f[0] == 8]
    code = struct.unpack(">H", closes[0][1][:2])[0] if closes else None
    print(f"1. 1 GiB frame declared: close code {code} after {time.time() - started:.2f} s; "
          f"the server took {sent / 2**20:.1f} MiB before refusing more; "
          f"RSS {before:.0f} MB before, {peak:.0f} MB peak, {server.rss_mb():.0f} MB after")


def readers_who_never_read(server, token, tracks):
    group = server.api("POST", "/api/v1/groups", {"name": "Snapshot bait"}, token)
    host = open_socket(server, token)
    host.sendall(frame(1, json.dumps({"type": "join", "group_id": group["group_id"]}).encode()))
    for i, track in enumerate(tracks[:500]):
        host.sendall(frame(1, json.dumps({"type": "add_track", "track_id": track, "client_msg_id": f"a{i}"}).encode()))
    deadline = time.time() + 60
    while time.time() < deadline:
        view = server.api("GET", f"/api/v1/groups/{group['group_id']}", token=token)
        if len(view["playlist"]) >= 500:
            break
        time.sleep(0.5)
    snapshot = len(json.dumps(view))
    before = server.rss_mb()
    readers = []
    for i in range(30):
        user = server.api("POST", "/api/v1/users", {"display_name": f"Reader {i}"})
        server.api("POST", "/api/v1/groups/join", {"join_code": group["join_code"]}, user["token"])
        s = open_socket(server, user["token"], receive_buffer=4096)
        join = frame(1, json.dumps({"type": "join", "group_id": group["group_id"]}).encode())
        s.sendall(join * 40)
        readers.append(s)
    peak = before
    for _ in range(20):
        time.sleep(0.25)
        peak = max(peak, server.rss_mb())
    for s in readers:
        s.close()
    host.close()
    print(f"2. 30 sockets that never read, 40 snapshots of {snapshot / 1024:.0f} KB each asked: "
          f"RSS {before:.0f} MB before, {peak:.0f} MB peak ({(peak - before) / 30:.1f} MB per socket; "
          f"{30 * 40 * snapshot / 2**20:.0f} MB asked for)")


def long_log(directory, server_config, events):
    server = Server(directory, server_config)
    user = server.api("POST", "/api/v1/users", {"display_name": "Historian"})
    group = server.api("POST", "/api/v1/groups", {"name": "Long night"}, user["token"])
    track = server.api("GET", "/api/v1/tracks?q=love&limit=1")["items"][0]["id"]
    s = open_socket(server, user["token"])
    s.sendall(frame(1, json.dumps({"type": "join", "group_id": group["group_id"]}).encode()))
    s.sendall(frame(1, json.dumps({"type": "add_track", "track_id": track, "client_msg_id": "add"}).encode()))
    time.sleep(1)
    s.close()
    view = server.api("GET", f"/api/v1/groups/{group['group_id']}", token=user["token"])
    entry, seq = view["playlist"][0]["entry_id"], view["seq"]
    server.stop()
    db = sqlite3.connect(os.path.join(directory, "chorus.db"))
    rows = ((group["group_id"], seq + i + 1, "vote_cast", user["user_id"],
             json.dumps({"entry_id": entry, "user_id": user["user_id"], "value": 1 - (i % 2)}), 0)
            for i in range(events))
    db.executemany("INSERT INTO group_events (group_id, seq, kind, actor_user_id, payload, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.execute("DELETE FROM group_snapshots WHERE group_id = ?", (group["group_id"],))
    db.commit()
    db.close()
    server = Server(directory, server_config)
    for load in ("first load, no snapshot", "reload after an idle unload"):
        before = server.rss_mb()
        started = time.time()
        view = server.api("GET", f"/api/v1/groups/{group['group_id']}", token=user["token"])
        elapsed = time.time() - started
        assert view["seq"] == seq + events, view["seq"]
        print(f"3. {events:,}-event room, {load}: {elapsed:.2f} s, RSS {before:.0f} -> {server.rss_mb():.0f} MB")
        time.sleep(4)  # group_idle_timeout_s = 2: the room unloads (storing a snapshot)
    server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    config = ("[realtime]\ngroup_idle_timeout_s = 2\nops_per_second = 10000.0\nop_burst = 10000\n"
              "room_ops_per_second = 10000.0\nroom_op_burst = 10000\n")
    with tempfile.TemporaryDirectory() as directory:
        server = Server(directory, config)
        try:
            token = server.api("POST", "/api/v1/users", {"display_name": "Mallory"})["token"]
            with sqlite3.connect(os.path.join(directory, "chorus.db")) as db:
                tracks = [row[0] for row in db.execute("SELECT id FROM tracks ORDER BY id LIMIT 500")]
            giant_frame(server, token)
            readers_who_never_read(server, token, tracks)
        finally:
            server.stop()
    with tempfile.TemporaryDirectory() as directory:
        long_log(directory, config, args.events)


if __name__ == "__main__":
    sys.exit(main())
