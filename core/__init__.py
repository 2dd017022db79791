"""What both sides of nodewarden (the webhook and the node agent) must agree on.

Only contracts live here: resource names and annotation keys (`names`), the fence-order
format and its signatures (`fence_order`), peer-request authentication (`peer_auth`),
the clock seam (`clock`), settings helpers (`settings`) and the Kubernetes client
wrapper (`kube`). Nothing here imports the webhook or the agent.
"""
