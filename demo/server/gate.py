"""The queue in front of the engine: API requests one at a time, in arrival order, a few at most."""
from __future__ import annotations

import threading
from collections import deque

from demo.server.errors import ApiError

# One request runs, the others wait in arrival order; past this many admitted requests a client gets 429
# (a generation takes seconds to minutes on a laptop CPU, so a long queue only means long timeouts).
MAX_QUEUE = 4


class Gate:
    """API requests one at a time in arrival order; at most `limit` admitted (running or waiting)."""

    def __init__(self, limit: int = MAX_QUEUE):
        self.limit = limit
        self._order: deque[int] = deque()
        self._next = 0
        self._cond = threading.Condition()

    def reserve(self) -> int:
        with self._cond:
            if len(self._order) >= self.limit:
                raise ApiError(429, f"the server is busy: {len(self._order)} requests are running or waiting "
                                    f"(the limit is {self.limit}); retry in a while", code="queue_full",
                               headers={"Retry-After": "10"})
            ticket, self._next = self._next, self._next + 1
            self._order.append(ticket)
            return ticket

    def wait(self, ticket: int) -> bool:
        """Block until `ticket` is first; False if it was released while waiting."""
        with self._cond:
            while ticket in self._order and self._order[0] != ticket:
                self._cond.wait()
            return ticket in self._order

    def release(self, ticket: int) -> None:
        with self._cond:
            if ticket in self._order:
                self._order.remove(ticket)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        return len(self._order)
