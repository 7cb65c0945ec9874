"""Jupyter server settings for the course, read through JUPYTER_CONFIG_PATH=scripts/jupyter.

Kernel websocket connections that survive Restart Kernel and Run All Cells given right after a notebook
opens. JupyterLab then reconnects with the same session id while the server is still opening its first
websocket (open() waits for the restarted kernel, and no frame is read before it returns), so
ZMQChannelsWebsocketConnection._register_session in jupyter_server
(services/kernels/connection/channels.py) logs "Replacing stale connection" and only closes the old
websocket. Two things then go wrong:

1. The frames JupyterLab had sent on the old websocket are still delivered to it. With the handler
   closed, ``subprotocol`` falls back to the legacy protocol, so a binary frame of the
   ``v1.kernel.websocket.jupyter.org`` protocol goes to ``deserialize_binary_message``, which reads its
   8-byte little-endian offset count 6 as a 4-byte big-endian buffer count of 100663296 and builds a
   struct format of that many items: about 3.2 GB that Python's struct cache keeps
   ("struct.error: unpack requires a buffer of 402653184 bytes").
2. Both connections open the kernel's channels with the session id as zmq identity, and the old one
   keeps its channels until its close is read. ipykernel's ROUTER sockets hand an identity to the peer
   that connected last and cut the other off, so when the old connection's sockets reconnect to the
   restarted kernel after the new one's, Run All's execute requests are lost: every prompt stays [*].

CourseKernelConnection drops frames that arrive on a closed websocket and gives each connection a zmq
identity of its own. benchmarks/stress_restart.py reproduces both and measures the fix.
"""

import uuid

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class CourseKernelConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket connection, safe to replace while it is still opening."""

    def create_stream(self):
        """Open the kernel's four channels with a zmq identity that no other connection uses."""
        identity = f"{self.session.session}-{uuid.uuid4().hex[:12]}".encode()
        for name in ("iopub", "shell", "control", "stdin"):
            stream = getattr(self.kernel_manager, f"connect_{name}")(identity=identity)
            stream.channel = name
            self.channels[name] = stream

    def handle_incoming_message(self, incoming_msg):
        """Drop what arrives on a websocket the server has closed: its client has moved to a new one."""
        if self.websocket_handler.ws_connection is None:
            self.log.debug("Dropping a message that arrived on closed websocket %s", self.session_key)
            return
        super().handle_incoming_message(incoming_msg)


c.ServerApp.kernel_websocket_connection_class = CourseKernelConnection  # noqa: F821 (c: the config being read)
