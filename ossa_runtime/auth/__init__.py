"""Authentication and authorization: bearer JWTs, the spec's permissions and roles, revocation.

- tokens: `Claims`, `mint_token`, `TokenVerifier` (every bad token → Unauthenticated, 401)
- permissions: PERMISSIONS, ROLES and the one RPC → permission table
- revocation: revoked `jti`s in Redis, backed by PostgreSQL
- principal: the current caller for servicers, object-level agent checks
- interceptor: `AuthInterceptor`, installed by ossa_runtime.interceptors.default_interceptors
- client: `bearer_interceptors(token)` for gRPC clients (SDK, CLI, tests)
"""
