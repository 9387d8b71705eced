"""The outbound side (docs/protocol.md §5): an account's webhook and Web Push subscriptions
(`webhooks`, `push`), the deliverer that POSTs their outbox (`deliverer`), and under it the server's
own HTTP client (`http`), the allow-list of where it may connect (`netguard`) and Web Push's
encryption and VAPID signature (`webpush`)."""
