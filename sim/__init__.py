"""A simulated Kubernetes cluster served over real HTTP(S), for tests, the demo and
benchmarks. It is the world nodewarden runs in, so it imports nothing of nodewarden.

Part 1 (this package's API server): `store` keeps objects as JSON bytes with a global
resourceVersion and per-resource watch logs; `registry` implements the verbs with
Kubernetes' semantics (graceful pod deletion, finalizers, status subresources,
optimistic concurrency); `apiserver` serves them over HTTP to the official client and
kubectl. See docs/sim.md for what is emulated and the known differences.
"""
