"""core.informer: the reflector's list/watch/relist/backoff loop and the store's
never-go-back rule, driven by a scripted API (no server, no sleeps beyond the loop's own
short backoff)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from core.informer import Reflector, Store
from core.kube import KubeError, Listing, WatchEvent, WatchExpired


def obj(name: str, rv: int, uid: str = "u1") -> dict:
    return {"metadata": {"name": name, "resourceVersion": str(rv), "uid": uid}}


class ScriptedApi:
    """Each list answers the next listing; each watch plays the next script, where a
    script is a list of events or an exception to raise."""

    def __init__(self, listings: list[Listing], watches: list[object], stop: threading.Event) -> None:
        self.listings = listings
        self.watches = watches
        self.stop = stop
        self.list_calls = 0
        self.watch_versions: list[str] = []

    def list(self) -> Listing:
        self.list_calls += 1
        if not self.listings:
            self.stop.set()
            raise KubeError(503, "ServiceUnavailable", "script over")
        return self.listings.pop(0)

    def watch(self, version: str, timeout_s: float) -> Iterator[WatchEvent]:
        self.watch_versions.append(version)
        if not self.watches:
            self.stop.set()
            return
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        yield from script  # type: ignore[misc]


class RecordingSink(Store):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def unsynced(self, error: BaseException) -> None:
        super().unsynced(error)
        self.errors.append(error)


def run(api: ScriptedApi, sink: Store, stop: threading.Event) -> None:
    thread = threading.Thread(target=Reflector("things", api.list, api.watch, sink, stop, 1.0).run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()


def test_watch_resumes_from_the_last_version_seen_and_relists_on_410() -> None:
    stop = threading.Event()
    api = ScriptedApi(
        [Listing([obj("a", 1)], "1"), Listing([obj("a", 9)], "9")],
        [[WatchEvent("MODIFIED", obj("a", 5))],  # ends: reopened from 5
         WatchExpired(410, "Expired", "too old"),  # relist at once
         [WatchEvent("ADDED", obj("b", 10))]],
        stop,
    )
    sink = RecordingSink()
    run(api, sink, stop)
    assert api.watch_versions[:3] == ["1", "5", "9"]
    assert api.list_calls >= 2
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in sink.items()} == {"a": "9", "b": "10"}
    assert not any(isinstance(e, WatchExpired) for e in sink.errors)  # a 410 is not an outage


def test_a_failed_watch_marks_the_view_unsynced_and_an_error_event_is_a_failure() -> None:
    stop = threading.Event()
    api = ScriptedApi(
        [Listing([obj("a", 1)], "1"), Listing([obj("a", 2)], "2")],
        [[WatchEvent("ERROR", {"message": "boom"})]],
        stop,
    )
    sink = RecordingSink()
    synced_after_first_list = []
    original_replace = sink.replace

    def replace(items: list, rv: str) -> None:
        original_replace(items, rv)
        synced_after_first_list.append(sink.synced.is_set())

    sink.replace = replace  # type: ignore[method-assign]
    run(api, sink, stop)
    assert synced_after_first_list[0] is True
    assert any(isinstance(e, KubeError) and e.reason == "WatchError" for e in sink.errors)
    assert api.list_calls >= 2  # listed again after the failure


def test_store_never_goes_back_and_ignores_deletion_of_another_incarnation() -> None:
    changed: list[str] = []
    store = Store(changed.append)
    store.replace([obj("a", 5)], "5")
    store.apply(WatchEvent("MODIFIED", obj("a", 3)))  # stale event
    assert store.get("a")["metadata"]["resourceVersion"] == "5"
    store.put(obj("a", 4))  # our own older write
    assert store.get("a")["metadata"]["resourceVersion"] == "5"
    store.apply(WatchEvent("DELETED", obj("a", 6, uid="other")))  # a previous object's deletion
    assert store.get("a") is not None
    store.apply(WatchEvent("DELETED", obj("a", 7)))
    assert store.get("a") is None
    assert changed.count("a") >= 3
