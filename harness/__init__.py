"""The worlds that tests, benchmarks, the demo and the playground share: a simulated
cluster with the whole chain (agents, controllers, webhook replicas, Prometheus,
Alertmanager) built in one call. Imports the product and the simulator; nothing of the
product imports it."""
