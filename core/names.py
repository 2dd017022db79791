"""Names both sides agree on: API group, resources, annotations, leases, taints.

Changing any of these is a breaking change for running clusters: the agent publishes
under these keys and the remediator reads them.
"""

from __future__ import annotations

# The NodeRemediation custom resource (cluster-scoped, one per node, name = node name).
GROUP = "nodewarden.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "NodeRemediation"
PLURAL = "noderemediations"
SINGULAR = "noderemediation"
SHORT_NAMES = ("nrem",)

# Default namespace for nodewarden's own namespaced objects (Leases, Secrets, Events).
DEFAULT_NAMESPACE = "nodewarden"

# Annotations the node agent publishes on its Node.
ANNOTATION_PREFIX = "nodewarden.io/"
ANN_SELF_FENCE_CAPABLE = ANNOTATION_PREFIX + "self-fence-capable"  # "true" | "false"
ANN_WATCHDOG_TIMEOUT_S = ANNOTATION_PREFIX + "watchdog-timeout-seconds"  # effective, integer
ANN_ISOLATION_DETECT_S = ANNOTATION_PREFIX + "isolation-detect-seconds"  # worst case, float
ANN_AGENT_VERSION = ANNOTATION_PREFIX + "agent-version"
ANN_PEER_ENDPOINT = ANNOTATION_PREFIX + "peer-endpoint"  # "https://host:port" or "http://..."
ANN_AGENT_BOOT_ID = ANNOTATION_PREFIX + "agent-boot-id"  # bootID the agent last published under
# On the agent's heartbeat Lease (renewed with it): the assumptions of the evidence rules,
# measured by the agent and checked by the controller.
ANN_ORDER_KEY_FINGERPRINTS = ANNOTATION_PREFIX + "order-key-fingerprints"  # comma-separated
ANN_CLOCK_OFFSET_S = ANNOTATION_PREFIX + "clock-offset-seconds"  # API server's Date - agent clock
ANN_CLOCK_OFFSET_ERROR_S = ANNOTATION_PREFIX + "clock-offset-error-seconds"  # half-width of that

# Labels operators put on Nodes.
LABEL_OPT_OUT = ANNOTATION_PREFIX + "remediation"  # value "disabled" opts a node out
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"

# Leases.
AGENT_LEASE_PREFIX = "nodewarden-agent-"  # + node name, in nodewarden's namespace
LEADER_LEASE_NAME = "nodewarden-controller"
# The ValidatingAdmissionPolicy (and its binding, same name) that keeps each agent to its
# own node's objects; agents' reports are fence evidence only while both exist.
AGENT_WRITES_POLICY = "nodewarden-agent-writes"
NODE_LEASE_NAMESPACE = "kube-node-lease"  # kubelet's own Lease, name = node name


def agent_lease_name(node: str) -> str:
    """Name of the heartbeat Lease the agent of `node` renews while it reaches the API."""
    return AGENT_LEASE_PREFIX + node


# Taints.
OUT_OF_SERVICE_TAINT_KEY = "node.kubernetes.io/out-of-service"
OUT_OF_SERVICE_TAINT_VALUE = "nodeshutdown"
OUT_OF_SERVICE_TAINT_EFFECT = "NoExecute"
# nodewarden's own NoExecute taint, on a node from its proven fence until it is back (or the
# remediation ends without recovery): a kubelet that returns on a new boot refuses, at
# admission, every pod that does not tolerate it, so the old pods never start again while
# the out-of-service taint lets their replacements run elsewhere (controller/after_fence.py).
FENCING_TAINT_KEY = "nodewarden.io/fencing"
FENCING_TAINT_VALUE = "fence-ordered"
FENCING_TAINT_EFFECT = "NoExecute"
UNREACHABLE_TAINT_KEY = "node.kubernetes.io/unreachable"
NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"

# Component names used in Events (reportingController) and logs.
WEBHOOK_COMPONENT = "nodewarden-webhook"
CONTROLLER_COMPONENT = "nodewarden-controller"
AGENT_COMPONENT = "nodewarden-agent"
