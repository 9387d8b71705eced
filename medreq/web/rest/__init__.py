"""The REST side (docs/protocol.md §2–§3) and the pages: routes (`routes`, `direct`), forms
(`forms`), the published descriptions (`openapi`, `asyncapi`) and the console and docs (`pages`)."""
