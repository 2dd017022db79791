"""The emulated kube-apiserver: HTTPS, authentication, storage with resourceVersions and
watches, patch semantics, validation, discovery and OpenAPI, server-side printing.
It knows nothing of the world it serves (sim.world builds on it, never the reverse)."""
