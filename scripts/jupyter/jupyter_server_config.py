"""Jupyter server settings for the course, read through JUPYTER_CONFIG_PATH=scripts/jupyter.

Kernel websocket connections that survive Restart Kernel and Run All Cells given right after a
notebook opens. JupyterLab then reconnects with the same session id before the server has read its
previous socket (that socket's open() still waits for the restarted kernel), and jupyter_server's
ZMQChannelsWebsocketConnection._register_session replaces it ("Replacing stale connection") by only
closing the websocket. Two things then go wrong upstream (jupyter_server 2.x,
services/kernels/connection/channels.py):

1. The frames JupyterLab had sent on the old socket are still delivered to it. Once the handler is
   closed, ``subprotocol`` falls back to the legacy protocol, so a binary frame of the
   ``v1.kernel.websocket.jupyter.org`` protocol goes to ``deserialize_binary_message``, which reads its
   8-byte little-endian offset count 6 as a 4-byte big-endian buffer count of 100663296 and builds a
   struct format of that many items: about 3.2 GB that Python's struct cache keeps
   ("struct.error: unpack requires a buffer of 402653184 bytes").
2. Both connections open the kernel's channels with the session id as zmq identity. The kernel's
   ROUTER sockets ignore a second peer with an identity in use, so when the old connection's sockets
   reach the restarted kernel first, the new connection's execute requests never arrive: every prompt
   stays [*].

CourseKernelConnection drops frames that arrive on a closed websocket and gives each connection a
zmq identity of its own. benchmarks/stress_restart.py measures both.
"""

# Server settings of scripts/course.sh, which puts this folder on JUPYTER_CONFIG_PATH (Jupyter also
# reads jupyter_server_config.json and labconfig/ here): JupyterLab starts without avoidable warnings.
# Python, not JSON, to merge with the other config files' settings and to say why.
import uuid

from jupyter_client.manager import KernelManager
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

c = get_config()  # noqa: F821 (Jupyter defines it when it loads this file)

# Kernel websockets: jupyter_server hands tornado its keep-alive ping interval in milliseconds (30000)
# where tornado >= 6.5 reads seconds, with a timeout three times that, so tornado warns on the first
# notebook: "The websocket_ping_timeout (90000) cannot be longer than the websocket_ping_interval
# (30000)". No pair of values suits both readings. On 127.0.0.1 nothing between the browser and the
# server drops an idle connection, so the course turns these pings off.
c.ServerApp.tornado_settings.update({"ws_ping_interval": 0})

# Kernels: Curve-encrypted ZeroMQ sockets, keys provisioned by the kernel manager when the kernel says
# it supports them; otherwise ipykernel warns it "is running over TCP without encryption".
if "transport_encryption" in KernelManager.class_trait_names():
    c.KernelManager.transport_encryption = "auto"


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


c.ServerApp.kernel_websocket_connection_class = CourseKernelConnection
