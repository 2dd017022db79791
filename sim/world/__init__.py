"""The world the emulated API server serves: simulated machines (power, watchdog, clock),
kubelets, Kubernetes' controllers (node lifecycle, taint eviction, pod GC, attach-detach,
workloads), the network and its faults, and the invariant monitor that judges a run."""
