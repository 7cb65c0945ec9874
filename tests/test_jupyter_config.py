"""The course's Jupyter server settings (scripts/jupyter/) load, and their kernel connection class does what it says.

The browser test and benchmarks/stress_restart.py exercise the class in a real server; these checks are
the fast part: the config file names a ZMQChannelsWebsocketConnection subclass, and two connections of
the same client session open the kernel's channels with different zmq identities.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets.config import LoggingConfigurable
from traitlets.config.loader import PyFileConfigLoader

JUPYTER_CONFIG = Path(__file__).resolve().parents[1] / "scripts" / "jupyter"


def connection_class():
    config = PyFileConfigLoader("jupyter_server_config.py", path=str(JUPYTER_CONFIG)).load_config()
    return config.ServerApp.kernel_websocket_connection_class


class RecordingKernelManager(LoggingConfigurable):
    """Stands in for a kernel manager: each connect_<channel> records the identity it was given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.opened = []

    def _connect(self, channel, identity):
        self.opened.append((channel, identity))
        return type("Stream", (), {})()

    def connect_iopub(self, identity=None):
        return self._connect("iopub", identity)

    def connect_shell(self, identity=None):
        return self._connect("shell", identity)

    def connect_control(self, identity=None):
        return self._connect("control", identity)

    def connect_stdin(self, identity=None):
        return self._connect("stdin", identity)


def test_config_sets_a_kernel_connection_class():
    cls = connection_class()
    assert isinstance(cls, type) and issubclass(cls, ZMQChannelsWebsocketConnection), cls


def test_connections_of_one_session_use_different_zmq_identities():
    cls = connection_class()
    identities = []
    for _ in range(2):
        kernel_manager = RecordingKernelManager()
        connection = cls(parent=kernel_manager)
        connection.session.session = "client-session"
        connection.create_stream()
        assert sorted(connection.channels) == ["control", "iopub", "shell", "stdin"]
        assert {channel for channel, _ in kernel_manager.opened} == set(connection.channels)
        assert all(connection.channels[name].channel == name for name in connection.channels)
        used = {identity for _, identity in kernel_manager.opened}
        assert len(used) == 1, f"one connection's channels should share one identity, got {used}"
        identities.append(used.pop())
    assert identities[0] != identities[1], f"both connections use the zmq identity {identities[0]!r}"
    assert all(identity.startswith(b"client-session") for identity in identities), identities
