#!/usr/bin/env python3
"""stall_client.py HOST PORT POLLS — a WebSocket client that subscribes to
POLLS (comma-separated), reads for one second, then never reads again.
The test watches the daemon's side; this process just stays stalled."""
import base64, json, os, socket, struct, sys, time

host, port, polls = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3].split(",")]
s = socket.create_connection((host, port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
resp = b""
while b"\r\n\r\n" not in resp:
    resp += s.recv(1)
assert b" 101 " in resp.split(b"\r\n")[0], resp

def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    head += bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(data))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

for p in polls:
    s.sendall(frame(json.dumps({"type": "subscribe", "poll": p})))
end = time.time() + 1
s.settimeout(0.1)
while time.time() < end:
    try:
        s.recv(65536)
    except socket.timeout:
        pass
print("stalled", flush=True)
# never read again: the daemon must give up on us, not buffer for us
time.sleep(300)
