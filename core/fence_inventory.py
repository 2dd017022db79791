"""The fence-agent inventory: which BMC fences which node, and how. It lives in the
remediation policy under `fenceAgents` (the webhook validates it at start, the controller
uses it), so one file says both whether a node may be fenced and with what.

    fenceAgents:
      credentialsDir: /etc/nodewarden/fence-credentials   # where the Secrets are mounted
      devices:                                            # first match wins
        - name: rack-a
          nodes: [node-1, node-2]          # and/or matchLabels: {nodewarden.io/bmc: ipmi}
          agent: fence_ipmilan             # any ClusterLabs fence_* agent
          address: "{node}-bmc.example:623"   # template, or addresses: {node-1: 10.0.0.11}
          credentials: {secretName: bmc-rack-a, usernameKey: username, passwordKey: password}
          action: off                      # off | reboot
          timeout: 60s                     # one run of the agent
          retries: 5                       # further runs after a failed one ...
          retryInterval: 5s                # ... this far apart
          statusInterval: 5m               # how often the credentials are checked (`status`)
          caBundle: /etc/nodewarden/bmc-ca/ca.crt   # fence_redfish: the CA of the BMCs' certificates
          options: {lanplus: "1", cipher: "3"}      # further agent options, never secrets

Defaults follow Fence Agents Remediation: 5 retries 5 s apart, a 60 s timeout.

Credentials are a Secret reference, never a value: the Secret is mounted as files at
`credentialsDir/<secretName>/<key>` and read when the agent runs. The password reaches the
agent on its standard input (the fence agents' `name=value` option lines), never on a
command line (visible in /proc) or in the environment; `redact` removes it from anything
the agent printed before that output is logged or stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import SettingsError, parse_duration

ACTIONS = ("off", "reboot")
DEFAULT_CREDENTIALS_DIR = "/etc/nodewarden/fence-credentials"
_AGENT = re.compile(r"^fence_[a-z0-9_]+$")
_OPTION = re.compile(r"^[a-z][a-z0-9_]*$")
# Options that carry or point at secrets, or that the inventory sets itself.
_RESERVED = {"action", "ip", "ipport", "username", "login", "password", "passwd", "password_script",
             "passwd_script", "identity_file", "plug", "port"}
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class InventoryError(ValueError):
    """The inventory is invalid; `field` is the path of the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"fenceAgents: {field}: {message}")
        self.field = field
        self.message = message


class CredentialsError(RuntimeError):
    """A device's credentials could not be read (the message never holds a secret)."""


@dataclass(frozen=True)
class SecretRef:
    secret_name: str
    username_key: str = "username"
    password_key: str = "password"


@dataclass(frozen=True)
class FenceDevice:
    name: str
    agent: str
    credentials: SecretRef
    address: str = ""  # template with {node}
    addresses: dict[str, str] = field(default_factory=dict)  # node -> address, before the template
    nodes: tuple[str, ...] = ()
    match_labels: dict[str, str] = field(default_factory=dict)
    action: str = "off"
    timeout_s: float = 60.0
    retries: int = 5
    retry_interval_s: float = 5.0
    status_interval_s: float = 300.0
    ca_bundle: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def matches(self, node: str, labels: dict[str, str]) -> bool:
        if self.nodes and node not in self.nodes:
            return False
        if self.addresses and not self.address and node not in self.addresses:
            return False
        return all(labels.get(k) == v for k, v in self.match_labels.items())

    def address_for(self, node: str) -> tuple[str, str]:
        """(host, port) of the node's BMC; port "" for the agent's default."""
        address = self.addresses.get(node) or self.address.replace("{node}", node)
        if address.startswith("["):  # [v6]:port
            host, _, rest = address[1:].partition("]")
            return host, rest.lstrip(":")
        if address.count(":") == 1:
            host, port = address.split(":")
            return host, port
        return address, ""

    def agent_input(self, node: str, action: str, username: str, password: str) -> str:
        """The agent's standard input: one `name=value` option a line."""
        host, port = self.address_for(node)
        options = {**self.options, "action": action, "ip": host, "username": username, "password": password}
        if port:
            options["ipport"] = port
        for name, value in options.items():
            if "\n" in value or "\r" in value:
                raise CredentialsError(f"option {name} of device {self.name} holds a line break")
        return "".join(f"{name}={value}\n" for name, value in options.items())


@dataclass(frozen=True)
class FenceInventory:
    devices: tuple[FenceDevice, ...] = ()
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR

    def device_for(self, node: str, labels: dict[str, str] | None = None) -> FenceDevice | None:
        for device in self.devices:
            if device.matches(node, labels or {}):
                return device
        return None

    def read_credentials(self, device: FenceDevice) -> tuple[str, str]:
        """(username, password) from the mounted Secret."""
        ref = device.credentials
        base = Path(self.credentials_dir) / ref.secret_name
        values = []
        for key in (ref.username_key, ref.password_key):
            try:
                values.append((base / key).read_text().rstrip("\r\n"))
            except OSError as exc:
                raise CredentialsError(f"cannot read key {key!r} of Secret {ref.secret_name!r} "
                                       f"(mounted at {base}): {exc.strerror}") from None
        return values[0], values[1]


def redact(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """`text` with every secret (and its shell-quoted form) replaced by [redacted]."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[redacted]").replace(f"'{secret}'", "[redacted]")
    return re.sub(r"(?i)(password|passwd)(\s*[=:]\s*)(?!\[set\]|\[redacted\])\S+", r"\1\2[redacted]", text)


# -- parsing -------------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(where, f"expected a mapping, got {type(value).__name__}")
    return value


def _only(m: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in m:
        if key not in allowed:
            raise InventoryError(f"{where}.{key}" if where else str(key),
                                 f"unknown key (known: {', '.join(sorted(allowed))})")


def _str(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise InventoryError(where, "expected a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise InventoryError(where, f"invalid value {value!r}")
    return value


def _duration(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value, where)
    except SettingsError as exc:
        raise InventoryError(where, exc.message) from None


def _str_map(value: Any, where: str) -> dict[str, str]:
    out = {}
    for k, v in _mapping(value, where).items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, str | int | float):
            raise InventoryError(f"{where}.{k}", "expected string keys and string values")
        out[k] = str(v)
    return out


def _device(raw: Any, where: str) -> FenceDevice:
    m = _mapping(raw, where)
    _only(m, where, {"name", "nodes", "matchLabels", "agent", "address", "addresses", "credentials", "action",
                     "timeout", "retries", "retryInterval", "statusInterval", "caBundle", "options"})
    name = _str(m.get("name"), f"{where}.name")
    agent = _str(m.get("agent"), f"{where}.agent", _AGENT)
    creds = _mapping(m.get("credentials"), f"{where}.credentials")
    _only(creds, f"{where}.credentials", {"secretName", "usernameKey", "passwordKey"})
    ref = SecretRef(_str(creds.get("secretName"), f"{where}.credentials.secretName", _SECRET_NAME),
                    _str(creds.get("usernameKey", "username"), f"{where}.credentials.usernameKey", _KEY),
                    _str(creds.get("passwordKey", "password"), f"{where}.credentials.passwordKey", _KEY))
    nodes = m.get("nodes") or []
    if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
        raise InventoryError(f"{where}.nodes", "expected a list of node names")
    address = m.get("address") or ""
    if address and not isinstance(address, str):
        raise InventoryError(f"{where}.address", "expected a string (may contain {node})")
    addresses = _str_map(m.get("addresses"), f"{where}.addresses")
    if not address and not addresses:
        raise InventoryError(f"{where}.address", "set address (a template with {node}) or addresses (a map)")
    action = m.get("action", "off")
    if action is False:  # YAML 1.1 reads an unquoted `off` as false
        action = "off"
    if action not in ACTIONS:
        raise InventoryError(f"{where}.action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
    retries = m.get("retries", 5)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise InventoryError(f"{where}.retries", "expected a whole number from 0 to 20")
    timeout_s = _duration(m.get("timeout"), f"{where}.timeout", 60.0)
    if timeout_s <= 0:
        raise InventoryError(f"{where}.timeout", "must be positive")
    options = _str_map(m.get("options"), f"{where}.options")
    for key in options:
        if not _OPTION.match(key) or key in _RESERVED:
            raise InventoryError(f"{where}.options.{key}",
                                 "not allowed here (address and credentials have their own keys; "
                                 "no secret may be written in the policy)")
    ca_bundle = m.get("caBundle") or ""
    if not isinstance(ca_bundle, str):
        raise InventoryError(f"{where}.caBundle", "expected a file path")
    return FenceDevice(name=name, agent=agent, credentials=ref, address=address, addresses=addresses,
                       nodes=tuple(nodes), match_labels=_str_map(m.get("matchLabels"), f"{where}.matchLabels"),
                       action=action, timeout_s=timeout_s, retries=retries,
                       retry_interval_s=_duration(m.get("retryInterval"), f"{where}.retryInterval", 5.0),
                       status_interval_s=_duration(m.get("statusInterval"), f"{where}.statusInterval", 300.0),
                       ca_bundle=ca_bundle, options=options)


def parse_inventory(data: Any) -> FenceInventory:
    """Validate the `fenceAgents` section of the policy (None: no devices)."""
    m = _mapping(data, "(fenceAgents)")
    _only(m, "", {"credentialsDir", "devices"})
    raw_devices = m.get("devices") or []
    if not isinstance(raw_devices, list):
        raise InventoryError("devices", "expected a list")
    devices = tuple(_device(d, f"devices[{i}]") for i, d in enumerate(raw_devices))
    seen: set[str] = set()
    for i, d in enumerate(devices):
        if d.name in seen:
            raise InventoryError(f"devices[{i}].name", f"duplicate device name {d.name!r}")
        seen.add(d.name)
    credentials_dir = m.get("credentialsDir", DEFAULT_CREDENTIALS_DIR)
    return FenceInventory(devices, _str(credentials_dir, "credentialsDir"))


def load_inventory(path: str | Path) -> FenceInventory:
    """The `fenceAgents` section of the policy file at `path`."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError("(file)", f"cannot read {path}: {exc}") from None
    return parse_inventory(_mapping(doc, "(root)").get("fenceAgents"))
