"""What the plugin prints, without a cluster: tables, ages, history, explain; and the
command line's parsing and what-if."""

from __future__ import annotations

from typing import Any

import pytest

from core.clock import parse_rfc3339
from core.kube import Forbidden
from kubectl_plugin import render
from kubectl_plugin.cli import main, parser, refused_message
from kubectl_plugin.kube import Need, Refused

NOW = parse_rfc3339("2026-12-03T10:00:00Z") or 0.0


def test_table_pads_columns_upper_cases_headers_and_leaves_no_trailing_blanks() -> None:
    text = render.table(("node", "phase", "message"), [["node-10", "Fenced", ""], ["n1", "AwaitingNodeReady", "ok"]])
    assert text.splitlines() == [
        "NODE      PHASE               MESSAGE",
        "node-10   Fenced",
        "n1        AwaitingNodeReady   ok",
    ]
    assert render.table(("a", "b"), []) == "A   B"


@pytest.mark.parametrize("ago,shown", [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"),
                                       (47 * 3600, "47h"), (48 * 3600, "2d")])
def test_ages_read_like_kubectls(ago: int, shown: str) -> None:
    assert render.age("2026-12-03T10:00:00Z", NOW + ago) == shown


def test_an_unknown_time_is_said_to_be_unknown() -> None:
    assert render.age(None, NOW) == render.age("garbage", NOW) == "<unknown>"


def _rem(node: str, phase: str, uid: str = "11111111-aaaa", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": node, "uid": uid, "creationTimestamp": "2026-12-03T09:50:00Z",
                     "annotations": status.pop("annotations", {})},
        "spec": {"nodeName": node, "strategy": "OutOfServiceTaint", "escalation": "FenceAgent",
                 "trigger": status.pop("trigger", {"source": "alertmanager", "alertName": "NodeNotReady"})},
        "status": {"phase": phase, "reason": status.pop("reason", "Accepted"), "message": "m",
                   "phaseSince": "2026-12-03T09:58:00Z",
                   "history": [{"at": "2026-12-03T09:50:00Z", "phase": "Pending", "reason": "Accepted", "message": "a"},
                               {"at": "2026-12-03T09:58:00Z", "phase": phase, "reason": "X", "message": "b"}],
                   **status},
    }


def test_status_rows_are_sorted_and_flag_what_needs_a_person() -> None:
    rows = render.status_rows([
        _rem("node-2", "Failed", reason="FenceNotObserved"),
        _rem("node-1", "Pending", trigger={"source": "kubectl", "reason": "disk"},
             annotations={"nodewarden.io/requested-by": "alice"}),
    ], NOW)
    assert [r[0] for r in rows] == ["node-1", "node-2"]
    assert rows[0][1:6] == ["Pending", "Accepted", "OutOfServiceTaint", "kubectl/alice", "2m"]
    assert rows[1][1] == "Failed (unacknowledged)"
    assert rows[1][4] == "alertmanager/NodeNotReady"


def test_status_text_says_whether_the_pause_switch_is_on() -> None:
    assert render.status_text([], (True, "upgrade"), NOW).splitlines() == [
        "Pause switch: ON - no new remediation starts (upgrade)", "No NodeRemediations."]
    assert render.status_text([], (False, ""), NOW).startswith("Pause switch: off")
    assert render.status_text([], None, NOW).startswith("Pause switch: unknown")


def _record(node: str, uid: str, created: str, phase: str = "Succeeded") -> dict[str, Any]:
    rem = _rem(node, phase, uid)
    return {"metadata": {"name": f"{node}-{uid[:8]}"},
            "remediation": {"nodeName": node, "uid": uid, "createdAt": created, "archivedAt": "2026-12-03T09:59:00Z",
                            "phase": phase, "annotations": {}, "spec": rem["spec"], "status": rem["status"]}}


def test_history_lists_the_current_remediation_then_the_archive_newest_first() -> None:
    current = _rem("node-1", "Fencing", "cccccccc-3")
    records = [_record("node-1", "aaaaaaaa-1", "2026-12-01T00:00:00Z"),
               _record("node-1", "bbbbbbbb-2", "2026-12-02T00:00:00Z", "Cancelled"),
               _record("node-1", "cccccccc-3", "2026-12-03T09:50:00Z")]  # the live one, archived in a race
    entries = render.history_entries(current, records)
    assert [(e["source"], e["uid"]) for e in entries] == [
        ("current", "cccccccc-3"), ("archive", "bbbbbbbb-2"), ("archive", "aaaaaaaa-1")]
    text = render.history_text("node-1", entries)
    assert text.splitlines()[0] == "node-1: 3 remediation(s), newest first"
    assert "* bbbbbbbb  Cancelled  created 2026-12-02T00:00:00Z  strategy OutOfServiceTaint" \
           "  (archived 2026-12-03T09:59:00Z as node-1-bbbbbbbb)" in text
    assert "    AT                     PHASE     REASON     MESSAGE" not in text  # indented tables, own widths
    assert text.count("  AT ") == 3
    assert render.history_text("node-9", []) == "No remediation of node-9 on record."


def test_explain_gives_the_phase_its_reason_what_comes_next_and_the_trail() -> None:
    obj = _rem("node-1", "AwaitingApproval", reason="AwaitingApproval",
               trigger={"source": "kubectl", "reason": "disk hung", "requestedBy": "alice"},
               fence={"issuedAt": "2026-12-03T09:55:00Z", "action": "reboot",
                      "evidence": {"rule": "WatchdogExpired", "satisfiedAt": None, "inputs": {"watchdogTimeoutSeconds": 15}}},
               escalation={"kind": "OperatorApproval", "cause": "NoAgent"})
    obj["spec"]["force"] = True
    text = render.explain(obj, NOW)
    lines = text.splitlines()
    assert "Phase:        AwaitingApproval since 2026-12-03T09:58:00Z (2m)" in lines
    assert "Why:          AwaitingApproval: m" in lines
    assert lines[lines.index("Why:          AwaitingApproval: m") + 1].startswith(
        "Next:         waits for a person: `kubectl nodewarden approve NODE`")
    assert 'Who:          requested by alice: "disk hung"' in lines
    assert "FORCED (the node may still be Ready)" in text
    assert "Evidence:     rule WatchdogExpired, satisfied not yet, deadline - (watchdogTimeoutSeconds=15)" in lines
    assert "Escalation:   OperatorApproval (NoAgent)" in lines
    trail = text.split("Decision trail (status.history, oldest first):\n")[1].splitlines()
    assert [r.split()[1] for r in trail[1:]] == ["Pending", "AwaitingApproval"]


def test_explain_asks_for_an_acknowledgement_when_the_fence_was_not_observed() -> None:
    text = render.explain(_rem("node-1", "Failed", reason="FenceNotObserved"), NOW)
    assert "ATTENTION:    the fence was not observed" in text
    assert "nodewarden.io/acknowledged=" in text


def test_a_refusal_names_the_user_their_groups_and_the_permission() -> None:
    exc = Refused(Need("patch", "noderemediations.nodewarden.io", "node-1"), Forbidden(403, "Forbidden", "nope"))
    text = refused_message(exc, {"username": "carol", "groups": ["devs", "system:authenticated"]})
    assert text.splitlines()[0] == ("Error: forbidden: you are 'carol' (groups: devs, system:authenticated), and you "
                                    'may not patch noderemediations.nodewarden.io "node-1" (cluster-scoped).')
    assert "The API server said: nope" in text
    assert "kubectl auth can-i patch noderemediations.nodewarden.io" in text
    ns = Refused(Need("get", "configmaps", "x", "nodewarden"), Forbidden(403, "Forbidden", "no"))
    assert 'in namespace "nodewarden"' in refused_message(ns, None)
    assert "-n nodewarden" in refused_message(ns, None)


def test_options_go_before_or_after_the_command() -> None:
    a = parser().parse_args(["-o", "yaml", "history", "n"])
    b = parser().parse_args(["history", "n", "-o", "yaml", "-n", "ops"])
    assert (a.output, a.namespace, a.node) == ("yaml", "nodewarden", "n")
    assert (b.output, b.namespace) == ("yaml", "ops")
    with pytest.raises(SystemExit):
        parser().parse_args(["request", "n"])  # a reason is required


def test_what_if_is_the_timing_models_own_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["what-if", "--watchdog_timeout_s=10s"]) == 0
    assert "changed: watchdog_timeout_s=10s" in capsys.readouterr().out
    assert main(["what-if", "--no_such_setting=1"]) == 2


def test_no_kubeconfig_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    assert main(["--kubeconfig", str(tmp_path / "missing"), "status"]) == 1
    assert capsys.readouterr().err.startswith("Error: cannot load your kubeconfig")


class _RecordingKube:
    """The plugin's API boundary, recording what a command would send (the contract the
    webhook and controller read); the world test covers the real requests."""

    def __init__(self, current: dict[str, Any] | None = None) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.current = current

    def whoami(self) -> dict[str, Any]:
        return {"username": "carol", "groups": ["system:authenticated"]}

    def create_remediation(self, body: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(("create", body))
        return body

    def get_remediation(self, node: str) -> dict[str, Any] | None:
        return self.current

    def annotate_remediation(self, node: str, annotations: dict[str, str], rv: str) -> dict[str, Any]:
        self.sent.append(("annotate", (node, annotations, rv)))
        return {}


@pytest.mark.parametrize("force", [False, True])
def test_request_sends_the_agreed_contract_and_force_only_when_asked(force: bool,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    kube = _RecordingKube()
    args = parser().parse_args(["request", "node-4", "--reason", "disk hung", *(["--force"] if force else [])])
    args.fn(kube, args)
    ((verb, body),) = kube.sent
    assert verb == "create"
    assert body["metadata"] == {"name": "node-4", "annotations": {"nodewarden.io/requested-by": "carol"}}
    expected: dict[str, Any] = {"nodeName": "node-4", "trigger": {"source": "kubectl", "reason": "disk hung"}}
    if force:
        expected["force"] = True
    assert body["spec"] == expected
    assert (body["apiVersion"], body["kind"]) == ("nodewarden.io/v1alpha1", "NodeRemediation")
    assert "requested by carol" in capsys.readouterr().out


def test_approve_and_cancel_annotate_with_the_resource_version_read() -> None:
    current = {"metadata": {"name": "node-4", "resourceVersion": "42"}, "status": {"phase": "AwaitingApproval"}}
    kube = _RecordingKube(current)
    for argv in (["approve", "node-4"], ["cancel", "node-4", "--reason", "false alarm"]):
        args = parser().parse_args(argv)
        args.fn(kube, args)
    assert [s[1] for s in kube.sent] == [
        ("node-4", {"nodewarden.io/approved-by": "carol"}, "42"),
        ("node-4", {"nodewarden.io/cancelled-by": "carol", "nodewarden.io/cancel-reason": "false alarm"}, "42")]
