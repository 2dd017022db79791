"""`kubectl nodewarden`: the operator's command line, with the user's own kubeconfig.

    kubectl nodewarden status                       every node's current remediation
    kubectl nodewarden history NODE                 every past remediation, with its timeline
    kubectl nodewarden explain NODE                 why it is in this phase (the decision trail)
    kubectl nodewarden request NODE --reason TEXT [--force]
    kubectl nodewarden approve NODE
    kubectl nodewarden cancel NODE [--reason TEXT]
    kubectl nodewarden pause [--reason TEXT] | resume
    kubectl nodewarden what-if [--SETTING=VALUE ...]   the recovery timeline of settings

Readable tables by default; `-o json|yaml` prints the objects instead. Exit codes: 0 done,
1 the API server refused or could not be reached (a 403 says who you are and which
permission is missing), 2 a usage error or an unknown setting (what-if). The plugin talks
to the API server only, never to the webhook, so it works wherever kubectl does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from core import names
from core.kube import JSON, AlreadyExists, Conflict, KubeError, Unauthorized, Unavailable
from core.remediation import TERMINAL_PHASES
from kubectl_plugin import render
from kubectl_plugin.kube import PluginKube, Refused

TERMINAL = TERMINAL_PHASES
DEFAULT_PAUSE_CONFIGMAP = "nodewarden-control"


class PluginError(Exception):
    """A failure to report on stderr (exit code 1)."""


def _print(data: Any, output: str, text: Callable[[], str]) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    elif output == "yaml":
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")
    else:
        print(text())


def _username(kube: PluginKube) -> str:
    user = kube.whoami().get("username")
    if not user:
        raise PluginError("the API server did not say who you are (SelfSubjectReview without a username)")
    return str(user)


# -- commands -------------------------------------------------------------------------------


def cmd_status(kube: PluginKube, args: argparse.Namespace) -> None:
    items = kube.list_remediations()
    try:
        cm = kube.get_configmap(args.namespace, args.pause_configmap)
        data = (cm or {}).get("data") or {}
        pause: tuple[bool, str] | None = (
            str(data.get("paused", "")).strip().lower() in ("true", "yes", "1", "on"), str(data.get("reason", "")))
    except Refused:
        pause = None  # a viewer may not read the switch: say so, show the rest
    doc = {"paused": None if pause is None else pause[0], "pauseReason": None if pause is None else pause[1],
           "items": items}
    _print(doc, args.output, lambda: render.status_text(items, pause, time.time()))


def cmd_history(kube: PluginKube, args: argparse.Namespace) -> None:
    entries = render.history_entries(kube.get_remediation(args.node), kube.list_records(args.node))
    _print({"node": args.node, "remediations": entries}, args.output,
           lambda: render.history_text(args.node, entries))


def _existing(kube: PluginKube, node: str) -> JSON:
    obj = kube.get_remediation(node)
    if obj is None:
        raise PluginError(f"no NodeRemediation of {node} (its past ones: kubectl nodewarden history {node})")
    return obj


def cmd_explain(kube: PluginKube, args: argparse.Namespace) -> None:
    obj = _existing(kube, args.node)
    _print(obj, args.output, lambda: render.explain(obj, time.time()))


def cmd_request(kube: PluginKube, args: argparse.Namespace) -> None:
    user = _username(kube)
    spec: JSON = {"nodeName": args.node, "trigger": {"source": "kubectl", "reason": args.reason}}
    if args.force:
        spec["force"] = True
    body = {"apiVersion": names.API_VERSION, "kind": names.KIND,
            "metadata": {"name": args.node, "annotations": {render.ANN_REQUESTED_BY: user}}, "spec": spec}
    try:
        obj = kube.create_remediation(body)
    except AlreadyExists:
        current = kube.get_remediation(args.node) or {}
        phase = (current.get("status") or {}).get("phase") or "<new>"
        raise PluginError(f"{args.node} already has a NodeRemediation (phase {phase}); "
                          f"see kubectl nodewarden explain {args.node}") from None
    _print(obj, args.output, lambda: f"noderemediation/{args.node} requested by {user}"
           + (" (FORCED: a second person must approve)" if args.force else "")
           + f"; follow it with: kubectl nodewarden explain {args.node}")


def _annotate(kube: PluginKube, node: str, what: str, annotations: Callable[[str], dict[str, str]],
              output: str) -> None:
    user = _username(kube)
    obj = _existing(kube, node)
    phase = (obj.get("status") or {}).get("phase") or ""
    if phase in TERMINAL:
        raise PluginError(f"the remediation of {node} already ended ({phase}); nothing to {what}")
    try:
        new = kube.annotate_remediation(node, annotations(user), obj["metadata"]["resourceVersion"])
    except Conflict:
        raise PluginError(f"the remediation of {node} changed while you looked; "
                          f"check kubectl nodewarden explain {node} and try again") from None
    _print(new, output, lambda: f"noderemediation/{node} {what} by {user} (phase {phase or '<new>'}); "
           "the controller records it in the status")


def cmd_approve(kube: PluginKube, args: argparse.Namespace) -> None:
    _annotate(kube, args.node, "approved", lambda user: {render.ANN_APPROVED_BY: user}, args.output)


def cmd_cancel(kube: PluginKube, args: argparse.Namespace) -> None:
    reason = args.reason or "cancelled with kubectl nodewarden"
    _annotate(kube, args.node, "cancelled",
              lambda user: {render.ANN_CANCELLED_BY: user, render.ANN_CANCEL_REASON: reason}, args.output)


def _switch(kube: PluginKube, args: argparse.Namespace, paused: bool) -> None:
    user = _username(kube)
    reason = args.reason if paused else ""
    data = {"paused": "true" if paused else "false", "reason": reason, "changedBy": user,
            "changedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if kube.get_configmap(args.namespace, args.pause_configmap) is None:
        obj = kube.create_configmap(args.namespace, args.pause_configmap, data)
    else:
        obj = kube.patch_configmap(args.namespace, args.pause_configmap, data)
    _print(obj, args.output, lambda: (
        f"remediation paused by {user}: no new remediation starts; those under way continue"
        if paused else f"remediation resumed by {user}"))


def cmd_pause(kube: PluginKube, args: argparse.Namespace) -> None:
    _switch(kube, args, True)


def cmd_resume(kube: PluginKube, args: argparse.Namespace) -> None:
    _switch(kube, args, False)


# -- parsing and errors ---------------------------------------------------------------------


def _common_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes, before or after it (kubectl's habit): defaults are
    set once, on the top parser, so a command's parser never overwrites them."""

    def default(value: str | None) -> Any:
        return value if top else argparse.SUPPRESS

    p.add_argument("--kubeconfig", default=default(None),
                   help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    p.add_argument("--context", default=default(None), help="kubeconfig context")
    p.add_argument("-n", "--namespace", default=default(names.DEFAULT_NAMESPACE),
                   help=f"nodewarden's namespace, where the pause switch lives (default {names.DEFAULT_NAMESPACE})")
    p.add_argument("--pause-configmap", default=default(DEFAULT_PAUSE_CONFIGMAP),
                   help=f"the pause switch's ConfigMap (default {DEFAULT_PAUSE_CONFIGMAP})")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=default("table"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl nodewarden", description=(__doc__ or "").split("\n\n")[0])
    _common_options(p, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, top=False)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)
    command("status", help="every node's current remediation").set_defaults(fn=cmd_status)
    for name, fn, text in (("history", cmd_history, "every past remediation of NODE, with its timeline"),
                           ("explain", cmd_explain, "why NODE's remediation is in its phase")):
        sp = command(name, help=text)
        sp.add_argument("node")
        sp.set_defaults(fn=fn)
    sp = command("request", help="ask for a remediation of NODE (the same policy as an alert)")
    sp.add_argument("node")
    sp.add_argument("--reason", required=True, help="why (recorded)")
    sp.add_argument("--force", action="store_true",
                    help="DANGEROUS: even though the node reports Ready; needs a second person's approval")
    sp.set_defaults(fn=cmd_request)
    sp = command("approve", help="approve NODE's remediation (not your own request)")
    sp.add_argument("node")
    sp.set_defaults(fn=cmd_approve)
    sp = command("cancel", help="cancel NODE's remediation while no fence order was issued")
    sp.add_argument("node")
    sp.add_argument("--reason", default="")
    sp.set_defaults(fn=cmd_cancel)
    sp = command("pause", help="stop new remediations (those under way continue)")
    sp.add_argument("--reason", default="paused with kubectl nodewarden")
    sp.set_defaults(fn=cmd_pause)
    sp = command("resume", help="let new remediations start again")
    sp.set_defaults(fn=cmd_resume, reason="")
    command("what-if", help="the recovery timeline given settings: what-if [--SETTING=VALUE ...]",
                   add_help=False)
    return p


def refused_message(exc: Refused, who: JSON | None) -> str:
    if who:
        groups = ", ".join(str(g) for g in who.get("groups") or []) or "none"
        you = f"you are {who.get('username')!r} (groups: {groups})"
    else:
        you = "you are an identity the API server would not describe"
    return (f"Error: forbidden: {you}, and you may not {exc.need.describe()}.\n"
            f"The API server said: {exc.message}\n"
            f"Ask a cluster admin for that permission (docs/operations.md lists the roles), "
            f"or check it with: kubectl auth can-i {exc.need.verb} {exc.need.resource}"
            + (f" -n {exc.need.namespace}" if exc.need.namespace else ""))


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args, extra = p.parse_known_args(args_in)
    if args.command == "what-if":  # the timing model's own command line, unchanged
        from core.timing.__main__ import main as timing_main

        return timing_main(["what-if", *extra])
    if extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        kube = PluginKube(args.kubeconfig, args.context)
    except Exception as exc:  # the client's config errors have no common base
        print(f"Error: cannot load your kubeconfig: {exc}", file=sys.stderr)
        return 1
    try:
        args.fn(kube, args)
        return 0
    except PluginError as exc:
        print(f"Error: {exc}", file=sys.stderr)
    except Refused as exc:
        try:
            who: JSON | None = kube.whoami()
        except KubeError:
            who = None
        print(refused_message(exc, who), file=sys.stderr)
    except Unauthorized as exc:
        print(f"Error: the API server at {kube.host} did not accept your credentials ({exc.message}); "
              "check your kubeconfig", file=sys.stderr)
    except Unavailable as exc:
        print(f"Error: cannot reach the API server at {kube.host}: {exc.message}", file=sys.stderr)
    except KubeError as exc:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
