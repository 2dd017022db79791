"""`make client-e2e`: the official Python client's own end-to-end tests against the simulator.

    python -m harness.client_e2e [--tests DIR | --from-git GIT_DIR [--ref COMMIT]]
                                 [--nodes 3] [--time-scale 0.1] [-k EXPR]

The tests are the sync ones in the client's repository, `kubernetes/e2e_test/` (test_client,
test_apps, test_batch, test_watch, test_informer, test_utils). Its releases on PyPI do not
carry them (neither the wheel nor the sdist of kubernetes==37.0.2), so they come from a
checkout of the repository:

- `--tests DIR`: a directory holding `kubernetes/e2e_test/` (e.g. made with
  `git -C python archive COMMIT kubernetes/e2e_test | tar -x -C DIR`);
- `--from-git GIT_DIR [--ref COMMIT]`: that archive is made here, into
  `.cache/client-e2e/<COMMIT>/` (default COMMIT: `PINNED_COMMIT`);
- neither: `.cache/client-e2e/<PINNED_COMMIT>/` from an earlier `--from-git`.

A simulated cluster (`sim.world.cluster.Cluster`) starts; its admin kubeconfig is the
tests' `KUBECONFIG` (their `base.get_e2e_configuration` loads it); pytest runs them in a
subprocess against the installed client (`harness.client_e2e_plugin` joins the two); every
test's outcome is printed with the reason for each skip and, for each failure, whether it
is on something the simulator claims to serve (docs/sim.md) or on something it does not
(`NOT_CLAIMED`, with what). The exit code is 1 when a test on a claimed resource fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# kubernetes-client/python master, 2026-08-17 ("Merge pull request #2683").
PINNED_COMMIT = "024658493d124f046fc0a9827a2a3165cf2aee28"
TEST_FILES = ("test_client.py", "test_apps.py", "test_batch.py", "test_watch.py",
              "test_informer.py", "test_utils.py")
PER_TEST_TIMEOUT_S = 180

# Tests that need what docs/sim.md says the simulator does not serve.
NOT_CLAIMED: dict[str, str] = {
    "test_pod_apis": "pods/exec (no exec)",
    "test_pod_exec_close_channel": "pods/exec (no exec)",
    "test_exit_code": "pods/exec (no exec)",
    "test_portforward_raw": "pods/portforward (no port-forward)",
    "test_portforward_http": "pods/portforward (no port-forward)",
    "test_replication_controller_apis": "core/v1 replicationcontrollers",
    "test_job_apis": "batch/v1 jobs",
    "test_create_apiservice_from_yaml_with_conflict": "apiregistration.k8s.io/v1 apiservices",
    "test_create_multi_resource_from_directory": "core/v1 replicationcontrollers (beside a Service)",
    "test_create_from_multi_resource_yaml": "core/v1 replicationcontrollers (beside a Service)",
    "test_create_from_multi_resource_yaml_with_conflict":
        "core/v1 replicationcontrollers (beside a Service)",
    "test_metrics_utilities_integration": "metrics.k8s.io (no metrics-server)",
}


@dataclass(frozen=True)
class Outcome:
    test: str            # file::Class::name
    result: str          # passed | failed | skipped
    detail: str          # skip reason, or the failure's first line

    @property
    def name(self) -> str:
        return self.test.rsplit("::", 1)[-1]

    @property
    def claimed(self) -> bool:
        return self.name not in NOT_CLAIMED


def archive_tests(git_dir: Path, ref: str, into: Path) -> Path:
    """`git archive REF kubernetes/e2e_test` of the client's repository, unpacked into `into`."""
    target = into / ref
    if (target / "kubernetes" / "e2e_test").is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(dir=into, prefix=".partial-"))
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", ref, "kubernetes/e2e_test"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    tmp.rename(target)
    return target


def tests_root(path: Path) -> Path:
    """The directory holding `kubernetes/e2e_test/`, given it or the e2e_test folder itself."""
    path = path.resolve()
    if (path / "kubernetes" / "e2e_test").is_dir():
        return path
    if path.name == "e2e_test" and path.parent.name == "kubernetes":
        return path.parent.parent
    raise SystemExit(f"{path}: no kubernetes/e2e_test/ in it")


def parse_junit(path: Path) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(path).iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)
        test = f"{module[0].rsplit('.', 1)[-1]}.py::{module[-1]}::{case.get('name')}"
        result, detail = "passed", ""
        for child in case:
            if child.tag == "skipped":
                result, detail = "skipped", child.get("message") or ""
            elif child.tag in ("failure", "error"):
                result = "failed"
                detail = (child.get("message") or child.text or "").strip().splitlines()[0][:160]
        outcomes.append(Outcome(test, result, detail))
    return outcomes


def run_tests(root: Path, kubeconfig: Path, keyword: str | None, workdir: Path,
              log: Path) -> list[Outcome]:
    ini = workdir / "pytest.ini"          # the client's tests, not this repository's config
    ini.write_text("[pytest]\n")
    junit = workdir / "junit.xml"
    env = dict(os.environ, KUBECONFIG=str(kubeconfig),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(root),
           "-p", "harness.client_e2e_plugin", "-p", "no:cacheprovider",
           f"--timeout={PER_TEST_TIMEOUT_S}", "-q", "-rs", f"--junitxml={junit}",
           *(["-k", keyword] if keyword else []),
           *[f"kubernetes/e2e_test/{name}" for name in TEST_FILES]]
    with log.open("w") as out:     # test_utils opens its YAML relative to root
        subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    if not junit.exists():
        raise SystemExit(f"pytest wrote no report; its output is in {log}")
    return parse_junit(junit)


def report(outcomes: list[Outcome]) -> int:
    width = max(len(o.test) for o in outcomes)
    for o in outcomes:
        note = o.detail
        if o.result == "failed":
            note = (f"claimed: {o.detail}" if o.claimed
                    else f"not claimed ({NOT_CLAIMED[o.name]}): {o.detail}")
        print(f"{o.test:<{width}}  {o.result:<7}  {note}")
    failed = [o for o in outcomes if o.result == "failed"]
    claimed_failed = [o for o in failed if o.claimed]
    print(f"\n{len(outcomes)} tests: {sum(o.result == 'passed' for o in outcomes)} passed, "
          f"{len(failed)} failed ({len(claimed_failed)} on resources the simulator claims), "
          f"{sum(o.result == 'skipped' for o in outcomes)} skipped")
    return 1 if claimed_failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.client_e2e", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tests", type=Path, help="a directory holding kubernetes/e2e_test/")
    source.add_argument("--from-git", type=Path, metavar="GIT_DIR",
                        help="the client's git repository (its .git directory or a bare clone)")
    parser.add_argument("--ref", default=PINNED_COMMIT, help="commit to archive with --from-git")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    args = parser.parse_args(argv)

    cache = REPO / ".cache" / "client-e2e"
    if args.tests:
        root = tests_root(args.tests)
    elif args.from_git:
        cache.mkdir(parents=True, exist_ok=True)
        root = archive_tests(args.from_git, args.ref, cache)
    elif (cache / PINNED_COMMIT / "kubernetes" / "e2e_test").is_dir():
        root = cache / PINNED_COMMIT
    else:
        print("The client's e2e tests are not on PyPI; get them from its repository once:\n"
              "  git clone https://github.com/kubernetes-client/python client-python\n"
              f"  python -m harness.client_e2e --from-git client-python/.git --ref {PINNED_COMMIT}\n"
              "or pass --tests DIR (a directory holding kubernetes/e2e_test/).", file=sys.stderr)
        return 2

    import kubernetes

    from sim.world.cluster import Cluster

    print(f"client: kubernetes {kubernetes.__version__} (installed); tests: {root}")
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "last-run.log"
    workdir = Path(tempfile.mkdtemp(prefix="client-e2e-"))
    try:
        with Cluster(nodes=args.nodes, time_scale=args.time_scale, workdir=workdir / "sim") as cluster:
            print(f"simulated cluster: {args.nodes} nodes at {cluster.url}, time scale {args.time_scale}")
            outcomes = run_tests(root, cluster.kubeconfig("admin"), args.keyword, workdir, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    code = report(outcomes)
    print(f"pytest's output: {log}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
