"""`kubectl-nodewarden`: the kubectl plugin operators use (see kubectl_plugin.cli).

It reads and writes the cluster's API only, with the user's kubeconfig: NodeRemediations,
NodeRemediationRecords (the history) and the pause switch. It imports `core` (the shared
contracts) and never the webhook, the controller or the node agent.
"""
