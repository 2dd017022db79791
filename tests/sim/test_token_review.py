"""TokenReview as kube-apiserver answers it (pkg/registry/authentication/tokenreview,
authenticator.WrapAudienceAgnosticToken), judged with the official client: the API
server's own audiences by default, audience-agnostic tokens valid only for those, an
empty token refused, and every review in the audit log."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from sim.apiserver.reviews import API_AUDIENCES
from sim.apiserver.server import ADMIN, ApiServer


@pytest.fixture(scope="module")
def authn(api_server: ApiServer) -> client.AuthenticationV1Api:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(api_server.workdir / "admin.kubeconfig"), client_configuration=cfg)
    return client.AuthenticationV1Api(client.ApiClient(cfg))


def test_a_token_is_valid_for_the_api_servers_audiences_only(api_server: ApiServer,
                                                            authn: client.AuthenticationV1Api) -> None:
    token = api_server.add_identity("alice", groups=("ops",))
    plain = authn.create_token_review({"spec": {"token": token}}).status
    assert plain.authenticated and plain.user.username == "alice"
    assert plain.user.groups == ["ops", "system:authenticated"]
    assert plain.audiences == list(API_AUDIENCES)
    both = authn.create_token_review({"spec": {"token": token, "audiences": ["nodewarden", *API_AUDIENCES]}})
    assert both.status.authenticated and both.status.audiences == list(API_AUDIENCES)
    other = authn.create_token_review({"spec": {"token": token, "audiences": ["nodewarden"]}}).status
    assert not other.authenticated and not other.user.username and not other.audiences


def test_an_empty_token_is_a_bad_request(authn: client.AuthenticationV1Api) -> None:
    with pytest.raises(client.ApiException) as info:
        authn.create_token_review({"spec": {"token": ""}})
    assert info.value.status == 400
    assert json.loads(info.value.body)["message"] == "token is required for TokenReview in authentication"


def test_reviews_are_audited(api_server: ApiServer, authn: client.AuthenticationV1Api) -> None:
    before = len(api_server.audit.query(user=ADMIN, resource="tokenreviews.authentication.k8s.io"))
    authn.create_token_review({"spec": {"token": "nobody's"}})
    records = api_server.audit.query(user=ADMIN, resource="tokenreviews.authentication.k8s.io")
    assert len(records) == before + 1
    assert (records[-1].verb, records[-1].code) == ("create", 201)
