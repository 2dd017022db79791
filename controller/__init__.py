"""The remediation controller: takes a NodeRemediation from accepted to done, and never
applies recovery to a node that could still be running its workloads.

- `model`: phases, reasons, the typed view of a NodeRemediation and the observations.
- `evidence`: when a node counts as fenced — pure rules with their inputs recorded.
- `machine`: the pure transition function `(remediation, observations) -> decision`; its
  phases in `before_fence`, `fencing` and `after_fence`, its types in `decision`.
- `leader`: Lease-based leader election (client-go semantics).
- `observe` / `act` / `reconcile` / `report` / `loop`: the I/O shell around the pure core
  (one remediation in `reconcile`, the caches, queue, workers and leadership in `loop`).
"""
