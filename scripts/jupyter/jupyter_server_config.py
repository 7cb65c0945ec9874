# Server settings of scripts/course.sh, which puts this folder on JUPYTER_CONFIG_PATH (Jupyter also
# reads jupyter_server_config.json and labconfig/ here): JupyterLab starts without avoidable warnings.
# Python, not JSON, to merge with the other config files' settings and to say why.
from jupyter_client.manager import KernelManager

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
