"""Redfish for the simulated machines: sushy-tools' emulator (the Flask application the
sushy library is tested against) with a systems driver mapped onto the machines, so
`fence_redfish` drives it as it drives a real BMC.

Each machine gets its own HTTPS listener (its BMC address) that shows exactly one
System, the machine itself, so `fence_redfish` finds it without `--systems-uri`:

- `GET /redfish/v1/Systems/<id>` reports `PowerState` On/Off from the machine;
- `POST .../Actions/ComputerSystem.Reset` with ForceOff / GracefulShutdown / On /
  ForceRestart / GracefulRestart / PowerCycle presses the machine's buttons;
- HTTP basic authentication against the BMC's own users (sushy-tools' bcrypt htpasswd
  check): a wrong password is answered 401, as by a real BMC;
- `reachable = False` closes the listener: connections are refused.

sushy-tools chooses its systems driver from its configuration (libvirt, nova, ironic or
a fake one) and has no hook for another, so `_SimRedfishApp` swaps the class of its one
application object to put ours in place; every route and template stays sushy-tools'.
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from pathlib import Path
from typing import Any

import bcrypt
import flask
from sushy_tools import error as sushy_error
from sushy_tools.emulator import main as sushy_main
from sushy_tools.emulator.resources.systems.base import AbstractSystemsDriver
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .power import MachinePower

log = logging.getLogger("sim.bmc.redfish")

BMC_KEY = "nodewarden.sim.bmc"  # WSGI environ: which BMC (listener) received the request
_NAMESPACE = uuid.UUID("0b3c7c1e-7d4c-4a55-9a57-5e1f0c1d2b3a")


def machine_uuid(machine: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, machine))


class MachineSystem:
    """The one System behind one BMC: its machine's power, and a boot device."""

    def __init__(self, machine: str, power: MachinePower) -> None:
        self.machine = machine
        self.power = power
        self.boot_device = "Hdd"


_systems_lock = threading.Lock()
_systems: dict[str, MachineSystem] = {}  # by BMC key


class SimSystemsDriver(AbstractSystemsDriver):
    """sushy-tools' systems driver: the System of the BMC that received the request."""

    def __init__(self) -> None:
        pass  # nothing to initialise: each request names its BMC

    @property
    def driver(self) -> str:
        return "<nodewarden-sim>"

    @staticmethod
    def _system() -> MachineSystem | None:
        with _systems_lock:
            return _systems.get(str(flask.request.environ.get(BMC_KEY, "")))

    def _get(self, identity: str) -> MachineSystem:
        system = self._system()
        if system is not None and identity in (system.machine, machine_uuid(system.machine)):
            return system
        raise sushy_error.NotFound(f"System {identity} was not found")

    @property
    def systems(self) -> list[str]:
        system = self._system()
        return [machine_uuid(system.machine)] if system else []

    def uuid(self, identity: str) -> str:
        return machine_uuid(self._get(identity).machine)

    def name(self, identity: str) -> str:
        return self._get(identity).machine

    def get_power_state(self, identity: str) -> str:
        system = self._get(identity)
        return "On" if system.power.is_on(system.machine) else "Off"

    def set_power_state(self, identity: str, state: str) -> None:
        system = self._get(identity)
        machine, power = system.machine, system.power
        is_on = power.is_on(machine)
        if state in ("ForceOff", "GracefulShutdown"):
            power.off(machine, f"BMC (Redfish): {state}")
        elif state in ("On", "ForceOn"):
            if not is_on:
                power.on(machine)
        elif state in ("ForceRestart", "GracefulRestart", "PowerCycle"):
            if is_on:
                power.reset(machine, f"BMC (Redfish): {state}")
            else:
                power.on(machine)
        else:
            raise sushy_error.BadRequest(f"Power state {state} is not supported")

    def get_boot_device(self, identity: str) -> str:
        return self._get(identity).boot_device

    def set_boot_device(self, identity: str, boot_source: str) -> None:
        self._get(identity).boot_device = boot_source


class _SimRedfishApp(sushy_main.Application):
    _sim_driver = SimSystemsDriver()

    @property
    def systems(self) -> SimSystemsDriver:
        return self._sim_driver


def _application() -> Any:
    app = sushy_main.app
    if not isinstance(app, _SimRedfishApp):
        app.__class__ = _SimRedfishApp
        app.logger.setLevel(logging.WARNING)
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def hash_users(users: dict[str, str]) -> str:
    """An htpasswd file body with bcrypt hashes, the only kind sushy-tools accepts."""
    return "".join(f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                   for user, pw in users.items())


class RedfishBmc:
    """One machine's Redfish BMC on https://host:port."""

    def __init__(self, machine: str, power: MachinePower, users: dict[str, str], host: str, port: int,
                 ssl_context: ssl.SSLContext, workdir: Path) -> None:
        self.machine = machine
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.key = f"{machine}/{uuid.uuid4()}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.auth_file = workdir / f"{machine}.htpasswd"
        self.auth_file.write_text(hash_users(users))
        self.auth_file.chmod(0o600)
        with _systems_lock:
            _systems[self.key] = MachineSystem(machine, power)
        authenticated = sushy_main.RedfishAuthMiddleware(_application().wsgi_app, str(self.auth_file))
        key = self.key

        def application(environ: dict[str, Any], start_response: Any) -> Any:
            environ[BMC_KEY] = key
            return authenticated(environ, start_response)

        self._application = application
        self._server: BaseWSGIServer | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def reachable(self) -> bool:
        return self._server is not None

    @reachable.setter
    def reachable(self, value: bool) -> None:
        if value:
            self.start()
        else:
            self.stop()

    def start(self) -> RedfishBmc:
        if self._server is not None:
            return self
        self._server = make_server(self.host, self.port, self._application, threaded=True,
                                   request_handler=_QuietHandler, ssl_context=self.ssl_context)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, name=f"sim-redfish-{self.machine}", daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.stop()
        with _systems_lock:
            _systems.pop(self.key, None)
