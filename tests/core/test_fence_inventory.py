"""The fence inventory in the policy: validation names the offending key, devices match
nodes by name, map or labels, and no secret can be written into the policy itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.fence_inventory import CredentialsError, InventoryError, parse_inventory, redact

BASE: dict[str, Any] = {"name": "a", "agent": "fence_ipmilan", "address": "{node}-bmc:623",
                        "credentials": {"secretName": "bmc-a"}}


def test_defaults_follow_fence_agents_remediation() -> None:
    device = parse_inventory({"devices": [BASE]}).devices[0]
    assert (device.action, device.timeout_s, device.retries, device.retry_interval_s) == ("off", 60.0, 5, 5.0)
    assert device.address_for("node-7") == ("node-7-bmc", "623")


def test_first_matching_device_wins_by_names_map_and_labels() -> None:
    inv = parse_inventory({"devices": [
        {**BASE, "name": "listed", "nodes": ["node-1"]},
        {**BASE, "name": "mapped", "address": "", "addresses": {"node-2": "10.0.0.2"}},
        {**BASE, "name": "labelled", "matchLabels": {"bmc": "redfish"}},
    ]})
    assert inv.device_for("node-1").name == "listed"  # type: ignore[union-attr]
    mapped = inv.device_for("node-2")
    assert mapped is not None and mapped.name == "mapped" and mapped.address_for("node-2") == ("10.0.0.2", "")
    assert inv.device_for("node-3", {"bmc": "redfish"}).name == "labelled"  # type: ignore[union-attr]
    assert inv.device_for("node-3", {}) is None


@pytest.mark.parametrize(("change", "field"), [
    ({"agent": "rm -rf"}, "devices[0].agent"),
    ({"action": "on"}, "devices[0].action"),
    ({"retries": -1}, "devices[0].retries"),
    ({"timeout": "soon"}, "devices[0].timeout"),
    ({"address": ""}, "devices[0].address"),
    ({"credentials": {"secretName": "Bad_Name"}}, "devices[0].credentials.secretName"),
    ({"options": {"password": "hunter2"}}, "devices[0].options.password"),
    ({"options": {"passwd_script": "/bin/echo"}}, "devices[0].options.passwd_script"),
    ({"colour": "blue"}, "devices[0].colour"),
])
def test_errors_name_the_offending_key(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InventoryError) as err:
        parse_inventory({"devices": [{**BASE, **change}]})
    assert err.value.field == field


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(InventoryError, match="duplicate"):
        parse_inventory({"devices": [BASE, BASE]})


def test_credentials_come_from_the_mounted_secret(tmp_path: Path) -> None:
    inv = parse_inventory({"credentialsDir": str(tmp_path), "devices": [BASE]})
    device = inv.devices[0]
    with pytest.raises(CredentialsError) as err:
        inv.read_credentials(device)
    assert "bmc-a" in str(err.value)
    (tmp_path / "bmc-a").mkdir()
    (tmp_path / "bmc-a" / "username").write_text("admin\n")
    (tmp_path / "bmc-a" / "password").write_text("pw\n")
    assert inv.read_credentials(device) == ("admin", "pw")


def test_a_line_break_cannot_smuggle_an_option() -> None:
    device = parse_inventory({"devices": [BASE]}).devices[0]
    with pytest.raises(CredentialsError):
        device.agent_input("node-1", "off", "admin", "pw\npassword_script=/bin/sh")


def test_redact() -> None:
    out = redact("ipmitool -P 'hunter2' ... password=hunter2 passwd: other [set]", ["hunter2"])
    assert "hunter2" not in out and "other" not in out


def test_an_unquoted_off_in_yaml_is_the_off_action() -> None:
    import yaml

    doc = yaml.safe_load("devices: [{name: a, agent: fence_ipmilan, address: x, action: off, "
                         "credentials: {secretName: s}}]")
    assert parse_inventory(doc).devices[0].action == "off"
