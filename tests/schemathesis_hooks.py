"""Loaded by schemathesis for tests/api/openapi.rs (SCHEMATHESIS_HOOKS)."""

import schemathesis

# A tus part (PATCH /files/tus/{id}, or a creation carrying its first part)
# is raw bytes, sent as application/octet-stream bodies are.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
