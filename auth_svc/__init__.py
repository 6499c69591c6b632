"""The auth service (ossa.auth.v1.AuthService): login sessions and API keys, hosted by the gateway's gRPC process."""
