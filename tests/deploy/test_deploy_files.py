"""Checks on the deployment files, so that none of them rots unseen.

Every file under deploy/ is read by at least one check here (``test_every_deploy_file_is_checked``
fails on a file no check knows), and the Dockerfile, .dockerignore and .env.example are checked
against them and against instrumentshare/settings.py. Plain functions: no database.

Where a real tool is on the machine (nginx, systemd-analyze, kubectl, gunicorn), it checks the file
as the production host would; without it that test is skipped with the reason, and the structural
checks still run. YAML is read with PyYAML (the [test] extra), refusing duplicate keys.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
NGINX_SITE = DEPLOY / "nginx" / "instrumentshare.conf"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
SYSTEMD = DEPLOY / "systemd"
UNITS = ("instrumentshare-web.service", "instrumentshare-worker.service", "instrumentshare-beat.service",
         "instrumentshare-migrate.service")
SERVICES = UNITS[:3]  # the long-running ones; instrumentshare-migrate is a one-shot release step
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "instrumentshare" / "settings.py"

HAS_GUNICORN = importlib.util.find_spec("gunicorn") is not None

# k8s manifests applied on their own rather than with `kubectl apply -k` (see kustomization.yaml).
K8S_APPLIED_ALONE = {"secret.yaml", "migrate-job.yaml"}


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def yaml_files() -> list[Path]:
    return [p for p in deploy_files() if p.suffix in {".yaml", ".yml"}]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml"))


# --- reading the files -----------------------------------------------------------------------------------


def _yaml_loader():
    """PyYAML's safe loader, refusing duplicate keys (PyYAML itself keeps the last one silently)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it is in the [test] extra: make install-dev)")

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = sorted({str(key) for key in keys if keys.count(key) > 1})
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicates}", node.start_mark)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml, StrictLoader


def load_yaml(path: Path) -> list:
    yaml, loader = _yaml_loader()
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc is not None]  # noqa: S506


def k8s_documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in k8s_files() for doc in load_yaml(path)]


def k8s_object(kind: str, name: str) -> dict:
    found = [doc for _, doc in k8s_documents() if doc.get("kind") == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def compose() -> dict:
    (document,) = load_yaml(COMPOSE)
    return document


# --- every file is looked at --------------------------------------------------------------------------

# Which check reads each kind of deploy/ file. A new file that matches none fails the test below:
# add a check for it (and a pattern here).
CHECKED_BY = {
    "gunicorn.conf.py": "test_gunicorn_settings, test_gunicorn_check_config",
    "compose.yaml": "test_yaml_parses, test_compose_*",
    "nginx/*.conf": "test_nginx_site_*, test_nginx_t_accepts_the_site",
    "systemd/*.service": "test_systemd_units_*, test_systemd_analyze_verify",
    "k8s/*.yaml": "test_yaml_parses, test_k8s_*, test_kubectl_kustomize_builds_every_manifest",
    "postgresql.conf": "test_postgresql_conf_is_what_a_server_runs_with",
}


def test_every_deploy_file_is_checked():
    unchecked = [
        str(path.relative_to(DEPLOY)) for path in deploy_files()
        if not any(fnmatch.fnmatch(str(path.relative_to(DEPLOY)), pattern) for pattern in CHECKED_BY)
    ]
    assert not unchecked, f"no check reads these deploy/ files; add one: {unchecked}"
    # The checks of these folders read the files named here: a new one must be named too.
    assert {path.name for path in SYSTEMD.iterdir()} == set(UNITS)
    assert list(NGINX_SITE.parent.iterdir()) == [NGINX_SITE]
    assert GUNICORN_CONF.is_file() and COMPOSE.is_file()


# --- PostgreSQL settings --------------------------------------------------------------------------------


def _postgresql_settings() -> dict[str, str]:
    settings = {}
    for line in (DEPLOY / "postgresql.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            assert _, f"postgresql.conf: not `name = value`: {line!r}"
            settings[name.strip()] = value.strip().strip("'")
    return settings


def test_postgresql_conf_is_what_a_server_runs_with(tmp_path):
    """A real server started with the file (as ``make bench`` starts one) reports every value as written."""
    import psycopg

    from tests.benchmarks import pgserver

    if pgserver.bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl): runs where PostgreSQL is installed")
    settings = _postgresql_settings()
    assert {"shared_buffers", "max_wal_size", "work_mem", "maintenance_work_mem"} <= set(settings)
    with pgserver.Server(tmp_path / "pgdata") as url, psycopg.connect(url.rsplit("/", 1)[0] + "/postgres") as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in settings}  # names from our file
        sources = dict(conn.execute("SELECT name, sourcefile FROM pg_settings WHERE name = ANY(%s)",
                                    [list(settings)]).fetchall())
    assert shown == settings
    assert all(str(source).endswith("instrumentshare.conf") for source in sources.values()), sources


# --- YAML ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path):
    documents = load_yaml(path)
    assert documents and all(isinstance(doc, dict) for doc in documents), f"{path.name}: no YAML mapping"


def test_yaml_loader_refuses_duplicate_keys(tmp_path):
    yaml, _ = _yaml_loader()
    path = tmp_path / "twice.yaml"
    path.write_text("environment:\n  A: 1\nenvironment:\n  B: 2\n")
    with pytest.raises(yaml.YAMLError, match="duplicate keys"):
        load_yaml(path)


# --- gunicorn ------------------------------------------------------------------------------------------

GUNICORN_ENV = ("GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
                "GUNICORN_KEEPALIVE", "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER", "FORWARDED_ALLOW_IPS",
                "LOG_LEVEL")


def load_gunicorn_conf(monkeypatch, **env) -> dict:
    for name in GUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_settings(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert conf["bind"] == ["127.0.0.1:8000"]
    assert conf["workers"] == 2 * cpus + 1
    assert conf["worker_class"] == "sync" and conf["threads"] == 1
    assert 0 < conf["timeout"] < nginx_proxy_read_timeout()
    assert 0 < conf["graceful_timeout"]
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert conf["accesslog"] == "-" and conf["errorlog"] == "-"
    assert conf["preload_app"] is False
    # The access log line is a JSON object once gunicorn fills in the atoms.
    line = json.loads(re.sub(r"%\([^)]*\)s", "x", conf["access_log_format"]))
    assert {"time", "request_id", "method", "path", "status", "duration_ms"} <= set(line)
    assert "%({x-request-id}o)s" in conf["access_log_format"]

    conf = load_gunicorn_conf(monkeypatch, WEB_CONCURRENCY="7", GUNICORN_THREADS="4", GUNICORN_BIND="0.0.0.0:8000",
                              FORWARDED_ALLOW_IPS="*", GUNICORN_MAX_REQUESTS="50", LOG_LEVEL="WARNING")
    assert conf["workers"] == 7 and conf["worker_class"] == "gthread" and conf["threads"] == 4
    assert conf["bind"] == ["0.0.0.0:8000"] and conf["forwarded_allow_ips"] == "*"
    assert conf["max_requests"] == 50 and conf["loglevel"] == "warning"


@pytest.mark.skipif(not HAS_GUNICORN, reason="gunicorn is not installed: it is not yet in pyproject.toml and the "
                    "lock files; test_gunicorn_settings checks the file with runpy meanwhile")
def test_gunicorn_check_config(tmp_path):
    env = {**os.environ, "INSTRUMENTSHARE_VAR_DIR": str(tmp_path / "var")}
    for name in GUNICORN_ENV:
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "--config", str(GUNICORN_CONF),
         "instrumentshare.wsgi:application"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- nginx ------------------------------------------------------------------------------------------------


def nginx_site() -> str:
    return NGINX_SITE.read_text()


def nginx_proxy_read_timeout() -> int:
    return int(re.search(r"proxy_read_timeout\s+(\d+)s?;", nginx_site()).group(1))


def test_nginx_site_proxies_with_request_id_and_forwarded_proto():
    site = nginx_site()
    assert "proxy_pass http://instrumentshare_web;" in site
    assert re.search(r"proxy_set_header\s+X-Request-ID\s+\$request_id;", site)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;", site)
    assert re.search(r"proxy_set_header\s+Host\s+\$host;", site)
    for directive in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert re.search(rf"{directive}\s+\d+s?;", site), directive
    assert re.search(r"client_max_body_size\s+20m;", site)
    assert re.search(r"^\s*gzip\s+on;", site, re.M)
    assert "$request_id" in re.search(r"log_format[^;]+;", site, re.S).group(0)


def test_nginx_site_tls_and_redirect():
    site = nginx_site()
    assert re.search(r"listen\s+80;", site) and re.search(r"listen\s+443\s+ssl", site)
    assert re.search(r"return\s+301\s+https://\$host\$request_uri;", site)
    protocols = re.search(r"ssl_protocols\s+([^;]+);", site).group(1).split()
    assert set(protocols) <= {"TLSv1.2", "TLSv1.3"} and protocols
    ciphers = re.search(r"ssl_ciphers\s+([^;]+);", site).group(1).split(":")
    assert ciphers and all(("GCM" in c or "CHACHA20" in c) and c.startswith("ECDHE") for c in ciphers), ciphers
    assert re.search(r"ssl_session_tickets\s+off;", site)


def test_nginx_site_serves_static_root_and_points_at_gunicorn(monkeypatch):
    site = nginx_site()
    alias = re.search(r"location /static/ \{[^}]*?alias\s+([^;]+);", site, re.S).group(1)
    assert alias.rstrip("/") == dockerfile_env()["STATIC_ROOT"]
    media = re.search(r"location /media/ \{[^}]*?alias\s+([^;]+);", site, re.S).group(1)
    assert media.rstrip("/") == dockerfile_env()["MEDIA_ROOT"]
    # The upstream is the address gunicorn binds by default (systemd layout).
    upstream = re.search(r"upstream instrumentshare_web \{([^}]*)\}", site, re.S).group(1)
    assert re.findall(r"^\s*server\s+(\S+)", upstream, re.M) == load_gunicorn_conf(monkeypatch)["bind"]


def nginx_site_for_test(tmp_path: Path) -> Path:
    """The site with a self-signed certificate, logs in tmp_path and every upstream on 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH, so no test certificate can be made")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=instruments.example.cn"],
        check=True, capture_output=True, timeout=60,
    )
    (tmp_path / "logs").mkdir()
    site = nginx_site()
    site = re.sub(r"(?m)^(\s*ssl_certificate)\s+\S+;", rf"\1 {cert};", site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {key};", site)
    site = re.sub(r"(?m)^(\s*(?:access|error)_log\s+)/var/log/nginx/", rf"\g<1>{tmp_path}/logs/", site)

    def local_upstream(match):
        return re.sub(r"(?m)^(\s*server\s+)[^\s;]+", r"\g<1>127.0.0.1:8000", match.group(0))

    site = re.sub(r"upstream\s+\w+\s*\{[^}]*\}", local_upstream, site)
    path = tmp_path / "instrumentshare.conf"
    path.write_text(site)
    return path


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not on PATH (Debian: apt-get install nginx); "
                    "the site's syntax is then only checked by the test_nginx_site_* text checks")
def test_nginx_t_accepts_the_site(tmp_path):
    site = nginx_site_for_test(tmp_path)
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/logs/error.log;\n"
        "events {}\n"
        f"http {{\n    include {site};\n}}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "logs" / "error.log"), "-c", str(wrapper)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stderr


# --- systemd ------------------------------------------------------------------------------------------


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_values(name: str, section: str, key: str) -> list[str]:
    return [value for k, value in unit(name).get(section, []) if k == key]


def unit_environment(name: str) -> dict[str, str]:
    return dict(value.split("=", 1) for value in unit_values(name, "Service", "Environment"))


def test_systemd_units_run_the_processes_with_the_environment_file(monkeypatch):
    commands = {name: unit_values(name, "Service", "ExecStart") for name in UNITS}
    web, worker, beat, migrate = (commands[name] for name in UNITS)
    assert len(web) == 1 and re.search(
        r"/gunicorn --config deploy/gunicorn\.conf\.py instrumentshare\.wsgi:application$", web[0])
    assert len(worker) == 1 and re.search(r"/celery -A instrumentshare worker\b", worker[0])
    assert len(beat) == 1 and re.search(r"/celery -A instrumentshare beat\b", beat[0])
    assert [re.sub(r"^\S+/python ", "", command) for command in migrate] == [
        "manage.py migrate --noinput", "manage.py collectstatic --noinput"]
    assert unit_values("instrumentshare-migrate.service", "Service", "Type") == ["oneshot"]
    for name in UNITS:
        environment_files = unit_values(name, "Service", "EnvironmentFile")
        assert environment_files == ["/etc/instrumentshare/instrumentshare.env"], name
        users = unit_values(name, "Service", "User")
        assert users and users[0] not in {"root", "0"}, name
        assert unit_values(name, "Service", "WorkingDirectory") == ["/opt/instrumentshare"], name
        assert unit_environment(name)["STATIC_ROOT"] == dockerfile_env()["STATIC_ROOT"], name
    for name in SERVICES:
        assert unit_values(name, "Service", "Restart") == ["on-failure"], name
        assert unit_values(name, "Install", "WantedBy") == ["multi-user.target"], name
    assert not unit("instrumentshare-migrate.service").get("Install"), "the release step is started by hand"
    assert unit_values("instrumentshare-web.service", "Service", "Type") == ["notify"]
    # The web unit binds where nginx's upstream points, and stops after gunicorn's graceful timeout.
    conf = load_gunicorn_conf(monkeypatch)
    assert unit_environment("instrumentshare-web.service")["GUNICORN_BIND"].split(",") == conf["bind"]
    assert int(unit_values("instrumentshare-web.service", "Service", "TimeoutStopSec")[0]) > conf["graceful_timeout"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not on PATH")
def test_systemd_analyze_verify(tmp_path):
    prefix = "/opt/instrumentshare"
    fake_prefix = tmp_path / "opt" / "instrumentshare"
    units = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        # Executables under the install prefix must exist for verify: stand-ins in tmp_path.
        for executable in set(re.findall(rf"{re.escape(prefix)}/\S+", text)):
            stub = fake_prefix / Path(executable).relative_to(prefix)
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
        (tmp_path / name).write_text(text.replace(prefix, str(fake_prefix)))
        units.append(str(tmp_path / name))
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    about_ours = [line for line in output.splitlines() if any(name in line for name in UNITS)]
    assert result.returncode == 0 and not about_ours, output


# --- Kubernetes ------------------------------------------------------------------------------------------


def test_k8s_every_document_has_api_version_kind_and_name():
    documents = k8s_documents()
    assert documents
    for filename, doc in documents:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), filename
        if doc["kind"] == "Kustomization":
            continue
        assert doc.get("metadata", {}).get("name"), f"{filename}: {doc['kind']} without metadata.name"
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "instrumentshare", f"{filename}: {doc['kind']}"
    kinds = {doc["kind"] for _, doc in documents}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Ingress", "Job"} <= kinds


def test_k8s_kustomization_lists_every_manifest_but_the_secret_and_the_job():
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    resources = set(kustomization["resources"])
    manifests = {path.name for path in k8s_files()} - {"kustomization.yaml"}
    assert resources <= manifests, f"listed but missing: {resources - manifests}"
    assert manifests - resources == K8S_APPLIED_ALONE


def _web_container():
    web = k8s_object("Deployment", "instrumentshare-web")
    (container,) = pod_spec(web)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    return web, container, ports


def _allowed_hosts() -> list[str]:
    return k8s_object("ConfigMap", "instrumentshare-env")["data"]["ALLOWED_HOSTS"].split(",")


def test_k8s_web_probes():
    _web, container, ports = _web_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == ["gunicorn", "--config", "deploy/gunicorn.conf.py",
                                    "instrumentshare.wsgi:application"]
    assert ports == {"http": 8000}
    # The probes reach the pod by IP, so they send a Host that ALLOWED_HOSTS accepts.
    allowed = _allowed_hosts()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["port"] in (*ports, *ports.values())
            headers = {h["name"]: h["value"] for h in container[probe]["httpGet"].get("httpHeaders", [])}
            assert headers.get("Host") in allowed, probe


def test_k8s_web_service_and_ingress():
    web, _container, ports = _web_container()
    labels = web["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service", "instrumentshare-web")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= {*ports, *ports.values()}
    ingress = k8s_object("Ingress", "instrumentshare")
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    service_ports = {port["name"] for port in service["spec"]["ports"]} | {p["port"] for p in service["spec"]["ports"]}
    assert backends and all(b["name"] == "instrumentshare-web" for b in backends)
    assert all(b["port"].get("name", b["port"].get("number")) in service_ports for b in backends)
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "20m"
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= set(_allowed_hosts())


def test_k8s_worker_beat_and_migrate_job():
    worker = k8s_object("Deployment", "instrumentshare-worker")
    assert pod_spec(worker)["containers"][0]["command"][:4] == ["celery", "-A", "instrumentshare", "worker"]
    beat = k8s_object("Deployment", "instrumentshare-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert pod_spec(beat)["containers"][0]["command"][:4] == ["celery", "-A", "instrumentshare", "beat"]
    job = k8s_object("Job", "instrumentshare-migrate")
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    jobs = [doc["metadata"]["name"] for _, doc in k8s_documents() if doc["kind"] == "Job"]
    assert jobs == ["instrumentshare-migrate"]


def test_k8s_pods_share_image_environment_and_run_as_the_image_user():
    uid = int(re.search(r"useradd[^\n]*--uid (\d+)", DOCKERFILE.read_text()).group(1))
    pods = [(doc["metadata"]["name"], doc) for _, doc in k8s_documents() if doc["kind"] in {"Deployment", "Job"}]
    images = set()
    for name, doc in pods:
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == uid, name
        volumes = {volume["name"] for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            images.add(container["image"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"configMapRef": "instrumentshare-env", "secretRef": "instrumentshare-secrets"}, name
            assert {mount["name"] for mount in container.get("volumeMounts", [])} <= volumes, name
    assert len(images) == 1, f"one image everywhere, found {images}"
    claims = {v["persistentVolumeClaim"]["claimName"] for _, doc in pods for v in pod_spec(doc).get("volumes", [])
              if "persistentVolumeClaim" in v}
    assert claims <= {doc["metadata"]["name"] for _, doc in k8s_documents() if doc["kind"] == "PersistentVolumeClaim"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_kustomize_builds_every_manifest(tmp_path):
    # kustomize reads each file with the real Kubernetes YAML reader and needs kind/apiVersion/name.
    manifests = [path for path in k8s_files() if path.name != "kustomization.yaml"]
    for path in manifests:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {path.name}\n" for path in manifests)
    )
    for directory in (tmp_path, K8S):
        result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    for _, doc in k8s_documents():
        if doc["kind"] != "Kustomization":
            assert f"kind: {doc['kind']}" in result.stdout or doc["kind"] in {"Secret", "Job"}
            assert f"name: {doc['metadata']['name']}" in result.stdout or doc["kind"] in {"Secret", "Job"}


# --- compose ----------------------------------------------------------------------------------------------


def test_compose_services_and_dependencies():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "nginx", "migrate"} <= set(services)
    assert str(services["postgres"]["image"]).startswith("postgres:15")
    assert str(services["redis"]["image"]).startswith("redis:7")
    migrate = services["migrate"]
    assert "migrate --noinput" in " ".join(migrate["command"])
    assert migrate["restart"] == "no" and migrate["build"]["context"] == ".."
    assert (COMPOSE.parent / migrate["build"]["context"] / "Dockerfile").is_file()
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["image"] == migrate["image"], name
        assert services[name]["env_file"] == migrate["env_file"] == "../.env", name
    for name in ("postgres", "redis"):
        assert migrate["depends_on"][name]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["beat"].get("container_name"), "a fixed container_name keeps beat from being scaled"
    assert " ".join(services["beat"]["command"]).startswith("celery -A instrumentshare beat")
    assert " ".join(services["worker"]["command"]).startswith("celery -A instrumentshare worker")
    assert services["web"]["command"] == ["gunicorn", "--config", "deploy/gunicorn.conf.py",
                                          "instrumentshare.wsgi:application"]
    assert "ports" not in services["web"], "only nginx is published"


def test_compose_healthchecks():
    services = compose()["services"]
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in web_check
    assert "ALLOWED_HOSTS" in web_check  # sends a Host that Django accepts


def test_compose_nginx_uses_the_site_file_it_rewrites():
    nginx = compose()["services"]["nginx"]
    mounts = [volume.rsplit(":", 2) for volume in nginx["volumes"]]
    site_mounts = [m for m in mounts if m[0].startswith("./")]
    assert [m[0] for m in site_mounts] == ["./nginx/instrumentshare.conf"]
    assert (COMPOSE.parent / site_mounts[0][0]).resolve() == NGINX_SITE.resolve()
    assert any(m[1] == "/etc/ssl/instrumentshare" for m in mounts)
    assert ["static", dockerfile_env()["STATIC_ROOT"], "ro"] in mounts
    # Each sed pattern of the start command must still match a line of the site file.
    command = nginx["command"][-1]
    patterns = re.findall(r"-e 's\|([^|]+)\|", command)
    assert len(patterns) == 3
    site = nginx_site()
    for pattern in patterns:
        assert re.search(pattern, site), f"compose rewrites {pattern!r}, which the site file no longer has"
    assert site_mounts[0][1] in command
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        path = re.search(rf"{directive}\s+(\S+);", site).group(1)
        assert path.startswith("/etc/ssl/instrumentshare/"), directive


# --- Dockerfile, .dockerignore -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args)))
    return env


def test_dockerfile_base_and_user():
    instructions = dockerfile_instructions()
    assert [args for op, args in instructions if op == "FROM"][-1] == "python:3.11-slim"
    users = [(index, args) for index, (op, args) in enumerate(instructions) if op == "USER"]
    assert users, "the image must not run as root"
    last_user = users[-1][1].split(":")[0]
    assert last_user not in {"root", "0"}
    runs = [args for op, args in instructions if op == "RUN"]
    assert any("--uid" in run and last_user in run for run in runs), "the USER is created in the image"
    order = [op for op, _ in instructions]
    assert order.index("USER") < len(order) - 1 - order[::-1].index("CMD")


def test_dockerfile_installs_only_from_the_lock():
    instructions = dockerfile_instructions()
    runs = [args for op, args in instructions if op == "RUN"]
    installs = [m.group(1) for run in runs for m in re.finditer(r"pip install\s+(.*?)(?:&&|\|\||;|$)", run)]
    assert "-r requirements.lock" in [i.strip() for i in installs]
    assert "--no-deps ." in [i.strip() for i in installs]
    assert all(i.strip() in {"-r requirements.lock", "--no-deps ."} for i in installs), (
        f"install only from the lock, and the project without dependencies: {installs}")
    assert any(args.split()[0] == "requirements.lock" for op, args in instructions if op == "COPY")


def test_dockerfile_collects_static_and_serves_with_gunicorn():
    instructions = dockerfile_instructions()
    collect = [args for op, args in instructions if op == "RUN" and "collectstatic --noinput" in args]
    assert collect and "SECRET_KEY=" in collect[0]
    cmd = json.loads([args for op, args in instructions if op == "CMD"][-1])
    assert cmd == ["gunicorn", "--config", "deploy/gunicorn.conf.py", "instrumentshare.wsgi:application"]
    env = dockerfile_env()
    assert env["GUNICORN_BIND"] == "0.0.0.0:8000"
    assert env["STATIC_ROOT"].startswith("/srv/instrumentshare/")


def _dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's matching: `*` and `?` stay within one path segment, `**` spans segments."""
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif pattern[index] == "?":
            regex, index = regex + "[^/]", index + 1
        elif pattern[index] == "[":
            close = pattern.index("]", index)
            regex, index = regex + pattern[index:close + 1], close + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex)


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (the last matching line wins)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # an excluded folder excludes its files
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _dockerignore_regex(line.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_needs_and_drops_secrets():
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "manage.py", "deploy/gunicorn.conf.py",
                   "instrumentshare/settings.py", "instrumentshare/static/css/app.css", "locale"):
        assert not dockerignored(needed), needed
    for dropped in (".env", ".env.production", ".venv", ".git", "var", "tests", "deploy/k8s/web.yaml",
                    "instrumentshare/__pycache__"):
        assert dockerignored(dropped), dropped


def test_collectstatic_collects_what_the_base_template_uses(tmp_path):
    env = {**os.environ, "SECRET_KEY": "collectstatic-only-not-a-real-key", "DEBUG": "0",
           "INSTRUMENTSHARE_VAR_DIR": str(tmp_path / "var"), "STATIC_ROOT": str(tmp_path / "static")}
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    used = re.findall(r"{% static '([^']+)' %}", (ROOT / "portal/templates/base.html").read_text())
    assert used and not [path for path in used if path not in manifest]


# --- .env.example -----------------------------------------------------------------------------------------

_ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|env_bool|env_list|env_int|_int)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)


def variables_read_by(path: Path) -> set[str]:
    return {a or b for a, b in _ENV_READ.findall(path.read_text())}


def documented_variables() -> set[str]:
    return set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text()))


def test_env_example_names_every_setting():
    read = variables_read_by(SETTINGS)
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEBUG", "ALLOWED_HOSTS"} <= read  # the parser works
    missing = read - documented_variables()
    assert not missing, f".env.example does not document {sorted(missing)} (read by instrumentshare/settings.py)"
    missing = variables_read_by(GUNICORN_CONF) - documented_variables()
    assert not missing, f".env.example does not document {sorted(missing)} (read by deploy/gunicorn.conf.py)"


def test_env_example_is_a_plain_env_file_and_covers_the_k8s_and_compose_variables():
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            # systemd EnvironmentFile, compose env_file and `docker run --env-file` all read this.
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\"'\s]*(\s[^\"'#]*)?", line), f"line {number}: {line!r}"
    documented = documented_variables()
    for kind, name, field in (("ConfigMap", "instrumentshare-env", "data"),
                              ("Secret", "instrumentshare-secrets", "stringData")):
        unknown = set(k8s_object(kind, name)[field]) - documented
        assert not unknown, f"{kind} sets variables .env.example does not document: {sorted(unknown)}"
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert not interpolated - documented, sorted(interpolated - documented)


def test_metrics_are_not_exposed_through_nginx_or_the_ingress_and_need_a_token():
    assert re.search(r"location\s*=\s*/metrics\s*\{\s*return\s+404;\s*\}", nginx_site())
    ingress = k8s_object("Ingress", "instrumentshare")
    snippet = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/server-snippet"]
    assert re.search(r"location\s*=\s*/metrics\s*\{\s*return\s+404;\s*\}", snippet)
    assert "METRICS_TOKEN" in k8s_object("Secret", "instrumentshare-secrets")["stringData"]
