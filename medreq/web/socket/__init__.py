"""The WebSocket endpoint (docs/protocol.md §4–§5): the route (`endpoint`), one socket's sending side
(`connection`) and how long a socket may live (`sessions`)."""
