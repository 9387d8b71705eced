"""Below Starlette: uvicorn's HTTP and WebSocket protocols with the limits they lack (`http`,
`websocket`), which connections are taken (`admission`), and what an idle socket costs (`heartbeat`,
`lean`). `medreq.server` hands these classes to uvicorn."""
