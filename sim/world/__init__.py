"""The world the emulated API server serves: simulated machines (power, watchdog, clock),
kubelets, a controller manager running Kubernetes' controllers one module each (node
lifecycle, taint eviction, pod GC, attach-detach, StatefulSet, workloads), the CSI
external-attacher, the scheduler, the network and its faults, and the invariant monitor
that judges a run."""
