"""How much the server takes on at once, in all and from one peer address.

- at most `max_connections` client connections are served at once, and at most
  `max_connections_per_peer` from one address; one more is refused;
- at most `max_queue` requests are in the server at once (being spoken or waiting, all
  connections and front doors together), and at most `max_queue_per_peer` from one address;
  one more is refused with `queue-full`.  A request takes its place when it has something to
  say (a stream holds none while it waits for its first sentence) and gives it back when it
  has been answered.

A home network has few legitimate clients per address (Home Assistant, a phone, a script),
so one device that misbehaves cannot lock the others out.  Everything here runs on the event
loop (no locks needed).
"""

from __future__ import annotations

import collections


class Admission:
    def __init__(self, max_connections: int, max_queue: int,
                 max_connections_per_peer: int = 0, max_queue_per_peer: int = 0) -> None:
        self.max_connections = max_connections
        self.max_queue = max_queue
        # 0: half of the total, rounded up (one peer never holds all)
        self.max_connections_per_peer = max_connections_per_peer or -(-max_connections // 2)
        self.max_queue_per_peer = max_queue_per_peer or -(-max_queue // 2)
        self.connections = 0  # connections being served
        self.requests = 0  # requests holding a queue place
        self._peer_connections: collections.Counter[str] = collections.Counter()
        self._peer_requests: collections.Counter[str] = collections.Counter()

    # -- connections ---------------------------------------------------------------------
    def connection_refusal(self, peer: str) -> str | None:
        """Why a connection from `peer` cannot be served now (None: it can)."""
        if self.connections >= self.max_connections:
            return f"too many connections (limit: {self.max_connections}); try again later"
        if self._peer_connections[peer] >= self.max_connections_per_peer:
            return (f"too many connections from your address (limit: "
                    f"{self.max_connections_per_peer}); try again later")
        return None

    def take_connection(self, peer: str) -> None:
        self.connections += 1
        self._peer_connections[peer] += 1

    def release_connection(self, peer: str) -> None:
        self.connections -= 1
        self._peer_connections[peer] -= 1
        if self._peer_connections[peer] <= 0:
            del self._peer_connections[peer]

    # -- requests ------------------------------------------------------------------------
    def request_refusal(self, peer: str) -> str | None:
        """Why a request from `peer` cannot take a queue place now (None: it can)."""
        if self.requests >= self.max_queue:
            return (f"the server is busy: {self.requests} requests are being spoken or "
                    "waiting; try again later")
        if self._peer_requests[peer] >= self.max_queue_per_peer:
            return (f"the server is busy with {self._peer_requests[peer]} requests from your "
                    "address; try again later")
        return None

    def take_request(self, peer: str) -> None:
        self.requests += 1
        self._peer_requests[peer] += 1

    def release_request(self, peer: str) -> None:
        self.requests -= 1
        self._peer_requests[peer] -= 1
        if self._peer_requests[peer] <= 0:
            del self._peer_requests[peer]
