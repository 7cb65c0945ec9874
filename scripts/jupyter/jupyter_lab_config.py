# JupyterLab's settings for scripts/course.sh, which puts this folder first on JUPYTER_CONFIG_PATH:
# start without avoidable warnings. JupyterLab reads this file when it starts and hands these
# ServerApp and KernelManager settings to the server before the server makes its kernel manager and
# web application. (jupyter_server_config.py beside it holds the server's kernel-connection fix.)
# Python rather than JSON: to say why, and to skip a setting this jupyter_client does not have.
from jupyter_client.manager import KernelManager

c = get_config()  # noqa: F821 (Jupyter defines it when it reads this file)

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
