"""The gateway's HTTP facade: its gRPC service (health), the OpenAPI generator, and Envoy's config (envoy_config)."""
