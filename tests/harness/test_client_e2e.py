"""harness.client_e2e's own logic, without a cluster: where the tests are found, how pytest's
JUnit report becomes the printed table, which failures count against the simulator, and the
plugin's skip of a test that needs an API the installed client lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import client_e2e
from harness.client_e2e_plugin import missing_api

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="kubernetes.e2e_test.test_client.TestClient" name="test_node_apis" time="0.1"/>
<testcase classname="kubernetes.e2e_test.test_client.TestClient" name="test_service_apis" time="0.1">
  <failure message="kubernetes.client.exceptions.UnprocessableEntityException: (422)&#10;Reason: x">tb</failure>
</testcase>
<testcase classname="kubernetes.e2e_test.test_batch.TestClientBatch" name="test_job_apis" time="0.1">
  <failure message="NotFoundException: (404)">tb</failure>
</testcase>
<testcase classname="kubernetes.e2e_test.test_utils.TestUtils" name="test_metrics_utilities_integration">
  <skipped type="pytest.skip" message="Metrics API unavailable">skip</skipped>
</testcase>
</testsuite></testsuites>
"""


def test_the_report_counts_only_failures_on_served_resources(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    outcomes = client_e2e.parse_junit(junit)
    assert [(o.test, o.result) for o in outcomes] == [
        ("test_client.py::TestClient::test_node_apis", "passed"),
        ("test_client.py::TestClient::test_service_apis", "failed"),
        ("test_batch.py::TestClientBatch::test_job_apis", "failed"),
        ("test_utils.py::TestUtils::test_metrics_utilities_integration", "skipped")]
    assert client_e2e.report(outcomes) == 1, "a failure on a served resource fails the run"
    out = capsys.readouterr().out
    assert "claimed: kubernetes.client.exceptions.UnprocessableEntityException: (422)" in out
    assert "not claimed (batch/v1 jobs)" in out and "Metrics API unavailable" in out
    assert "4 tests: 1 passed, 2 failed (1 on resources the simulator claims), 1 skipped" in out
    assert client_e2e.report([o for o in outcomes if o.name != "test_service_apis"]) == 0


def test_the_tests_directory_is_found_from_its_root_or_the_e2e_folder(tmp_path: Path) -> None:
    (tmp_path / "kubernetes" / "e2e_test").mkdir(parents=True)
    assert client_e2e.tests_root(tmp_path) == tmp_path.resolve()
    assert client_e2e.tests_root(tmp_path / "kubernetes" / "e2e_test") == tmp_path.resolve()
    with pytest.raises(SystemExit):
        client_e2e.tests_root(tmp_path / "kubernetes")


def test_a_missing_client_api_is_named() -> None:
    assert missing_api("kubernetes.informer", "SharedInformer") is None
    assert missing_api("kubernetes.stream.ws_client", "WSClient.close_channel") is None
    assert missing_api("kubernetes.utils", "no_such_helper") == "kubernetes.utils.no_such_helper"
    assert missing_api("kubernetes.no_such_module", "X") == "kubernetes.no_such_module"
