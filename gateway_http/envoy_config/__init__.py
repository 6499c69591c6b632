"""The gateway's Envoy config: the bootstrap rendered from envoy/envoy.yaml (render), its TLS, tracing,
addresses and console routes, and Istio's canary rules translated for it (canary)."""
