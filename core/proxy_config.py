"""The deployment's nginx configuration (deploy/nginx/sentinel.conf) rendered for loopback.

The proxy test and ``sentinel bench scale`` run the deployment file itself in a private nginx
(``LocalNginx``), with only the instances' addresses, the listen address, the TLS file paths and the
instances' TLS name substituted: each substitution must match where the deployment file has it, so a
changed deployment file fails loudly instead of the two drifting apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from sentinel.certificates import DevPki

# The repository's deployment file (this file is core/proxy_config.py; editable installs link it).
DEPLOYMENT_NGINX_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "sentinel.conf"
UPSTREAM_SERVER = re.compile(r"^(\s*)server sentinel-\d+:50051( [^;]*)?;\n", re.MULTILINE)


def render_proxy_config(template: str, *, listen_port: int, instances: list[str], pki: DevPki) -> str:
    """The deployment's configuration for loopback: each substitution must match where the deployment
    file has it (ValueError otherwise)."""
    servers = UPSTREAM_SERVER.findall(template)
    if len(servers) < 2:
        raise ValueError("the upstream lists fewer than two `server sentinel-N:50051` lines")
    indent, parameters = servers[0]
    lines = "".join(f"{indent}server {address}{parameters};\n" for address in instances)
    rendered = UPSTREAM_SERVER.sub(lambda _: "", template, count=len(servers) - 1)
    rendered = UPSTREAM_SERVER.sub(lambda _: lines, rendered, count=1)
    for old, new in (
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{listen_port} ssl http2;"),
        ("/etc/nginx/tls/proxy.pem;", f"{pki.server_cert};"),
        ("/etc/nginx/tls/proxy-key.pem;", f"{pki.server_key};"),
        ("/etc/nginx/tls/ca.pem;", f"{pki.ca_cert};"),
        ("grpc_ssl_name sentinel;", "grpc_ssl_name localhost;"),  # the development certificate's name
    ):
        if rendered.count(old) != 1:
            raise ValueError(f"{old!r} is not in the deployment's nginx configuration exactly once")
        rendered = rendered.replace(old, new)
    return rendered
