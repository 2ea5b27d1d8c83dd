"""How much the server takes on at once: connections and requests, all clients together.

- at most `max_connections` client connections are served at once; one more is refused;
- at most `max_queue` requests are in the server at once (being spoken or waiting, all
  connections and front doors together); one more is refused with `queue-full`.

Everything here runs on the event loop (no locks needed).
"""

from __future__ import annotations


class Admission:
    def __init__(self, max_connections: int, max_queue: int) -> None:
        self.max_connections = max_connections
        self.max_queue = max_queue
        self.connections = 0  # connections being served
        self.requests = 0  # requests holding a queue place

    def take_connection(self) -> bool:
        if self.connections >= self.max_connections:
            return False
        self.connections += 1
        return True

    def release_connection(self) -> None:
        self.connections -= 1

    def take_request(self) -> bool:
        if self.requests >= self.max_queue:
            return False
        self.requests += 1
        return True

    def release_request(self) -> None:
        self.requests -= 1
