"""What the server tells its operators: logs (`logs`), Prometheus metrics (`metrics`) and the trace id
that ties a request's log lines, events and webhooks together (`tracing`)."""
