"""compose.yaml and deploy/nginx.conf hold the deployment docs/deploy.md describes: checked on the
files, in Python. `make deploy-check` runs the real readers (Docker Compose, nginx, hadolint)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO_ROOT

yaml = pytest.importorskip("yaml", reason="PyYAML (a dev dependency through schemathesis)")

COMPOSE = REPO_ROOT / "compose.yaml"
NGINX = REPO_ROOT / "deploy" / "nginx.conf"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replicas(compose: dict) -> dict[str, dict]:
    """The services built from this repository's Dockerfile."""
    return {
        name: service
        for name, service in compose["services"].items()
        if _build_context(service) == "."
    }


@pytest.fixture(scope="module")
def nginx() -> list[Directive]:
    return parse_nginx(NGINX.read_text(encoding="utf-8"))


def _build_context(service: dict) -> str | None:
    build = service.get("build")
    return build.get("context") if isinstance(build, dict) else build


def _dockerfile(instruction: str) -> list[str]:
    """The arguments of every ``instruction`` line of the Dockerfile (continuations joined)."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        line.split(None, 1)[1]
        for line in text.splitlines()
        if line.split(None, 1)[:1] == [instruction] and len(line.split(None, 1)) == 2
    ]


def _healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


# --- nginx.conf, read as nginx reads it: directives ending in `;`, blocks in braces -------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None  # None: a simple directive (`name args;`)

    def find(self, name: str, *args: str) -> list[Directive]:
        """The directives of this block named ``name`` whose arguments start with ``args``."""
        return [d for d in self.block or [] if d.name == name and d.args[: len(args)] == [*args]]

    def value(self, name: str) -> str | None:
        found = self.find(name)
        return " ".join(found[-1].args) if found else None


_TOKEN = re.compile(r"""\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};"'#]+""")


def parse_nginx(text: str) -> list[Directive]:
    """The directive tree; ValueError on an unbalanced brace or a directive without its `;`."""
    root = Directive("", [], [])
    stack, words = [root], []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unreadable at {position}: {text[position : position + 20]!r}")
        token, position = match.group(), match.end()
        if token.isspace() or token.startswith("#"):
            continue
        if token in (";", "{"):
            if not words:
                raise ValueError(f"{token!r} without a directive at {position}")
            directive = Directive(words[0], words[1:], [] if token == "{" else None)
            stack[-1].block.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            if words or len(stack) == 1:
                raise ValueError(f"unexpected '}}' at {position} (after {words})")
            stack.pop()
        else:
            words.append(token.strip("\"'"))
    if words or len(stack) != 1:
        raise ValueError("the file ends inside a directive or a block")
    return root.block


def _server(nginx: list[Directive]) -> Directive:
    (http,) = [d for d in nginx if d.name == "http"]
    (server,) = http.find("server")
    return server


def _location(nginx: list[Directive], *args: str) -> Directive:
    (location,) = _server(nginx).find("location", *args)
    return location


def _size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit.lower()]


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def _constant(path: Path, name: str) -> float:
    """A module-level constant read from the source, without importing the module."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise LookupError(name)


# --- compose.yaml -------------------------------------------------------------------------------


def test_compose_runs_postgres_two_replicas_and_a_load_balancer(compose, replicas):
    assert len(replicas) == 2
    assert {"postgres", "lb"} <= set(compose["services"])
    assert (REPO_ROOT / "Dockerfile").is_file()


def test_postgres_keeps_its_data_in_a_named_volume_and_reports_health(compose):
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:1[56](\..*)?", postgres["image"])
    assert "pg_isready" in _healthcheck_command(postgres)
    volumes = [volume.split(":") for volume in postgres["volumes"]]
    assert [target for _, target in volumes] == ["/var/lib/postgresql/data"]
    assert volumes[0][0] in compose["volumes"]


def test_replicas_share_one_data_volume_and_the_database(compose, replicas):
    (image_data_dir,) = re.findall(r"SEQLAB_DATA_DIR=(\S+)", " ".join(_dockerfile("ENV")))
    mounts = set()
    for name, service in replicas.items():
        environment = service["environment"]
        data_dir = environment.get("SEQLAB_DATA_DIR", image_data_dir)
        (volume,) = [v.split(":") for v in service["volumes"] if v.split(":")[1] == data_dir]
        assert volume[0] in compose["volumes"], f"{name}: /data must be a named volume"
        mounts.add(volume[0])
        url = urlsplit(environment["SEQLAB_DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgresql+psycopg"), name
        assert url.hostname in compose["services"], f"{name}: {url.hostname} is no service"
        assert service["depends_on"][url.hostname]["condition"] == "service_healthy", name
    assert len(mounts) == 1, f"the replicas mount different volumes: {mounts}"


def test_exactly_one_replica_runs_training_jobs(replicas):
    runs_jobs = sorted(str(s["environment"]["SEQLAB_RUN_JOBS"]).lower() for s in replicas.values())
    assert runs_jobs == ["false", "true"]


def test_replicas_are_healthy_when_ready_without_curl(replicas):
    (port,) = _dockerfile("EXPOSE")
    for name, service in replicas.items():
        command = _healthcheck_command(service)
        assert f"127.0.0.1:{port}/ready" in command, name
        assert "curl" not in command, f"{name}: the slim image has no curl"


def test_every_seqlab_variable_named_is_a_setting(replicas):
    from app.settings import Settings

    named = {variable for service in replicas.values() for variable in service["environment"]}
    named |= set(re.findall(r"\bSEQLAB_[A-Z0-9_]*[A-Z0-9]", DEPLOY_DOC.read_text(encoding="utf-8")))
    unknown = {
        variable
        for variable in named
        if variable.startswith("SEQLAB_")
        and variable.removeprefix("SEQLAB_").split("__")[0].lower() not in Settings.model_fields
    }
    assert not unknown, f"not settings of app/settings.py: {sorted(unknown)}"


# --- deploy/nginx.conf --------------------------------------------------------------------------


def test_the_load_balancer_mounts_the_nginx_config_read_only(compose):
    lb = compose["services"]["lb"]
    assert lb["image"].startswith("nginx")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert NGINX.is_file()
    assert len(lb["ports"]) == 1


def test_nginx_balances_over_every_replica_and_nothing_else(nginx, replicas):
    (http,) = [d for d in nginx if d.name == "http"]
    (upstream,) = http.find("upstream")
    servers = {d.args[0] for d in upstream.find("server")}
    (port,) = _dockerfile("EXPOSE")
    assert servers == {f"{name}:{port}" for name in replicas}
    pools = {d.args[0].removeprefix("http://") for d in _every(nginx, "proxy_pass")}
    assert pools == {upstream.args[0]}


def _every(directives: list[Directive], name: str) -> list[Directive]:
    found = []
    for directive in directives:
        if directive.name == name:
            found.append(directive)
        found += _every(directive.block or [], name)
    return found


@pytest.mark.parametrize("path", ["/train/0123abcd/events", "/generate"])
def test_event_streams_pass_unbuffered(nginx, path):
    locations = [
        location
        for location in _server(nginx).find("location")
        if (location.args[0] == "=" and location.args[1] == path)
        or (location.args[0] == "~" and re.search(location.args[1], path))
    ]
    assert len(locations) == 1, f"no single location for {path}"
    assert locations[0].value("proxy_buffering") == "off"


def test_only_the_event_stream_of_a_job_is_unbuffered(nginx):
    (events,) = [loc for loc in _server(nginx).find("location", "~") if "events" in loc.args[1]]
    for path in ("/train/0123abcd", "/train", "/train/0123abcd/events/x"):
        assert not re.search(events.args[1], path), path


def test_a_waiting_train_request_outlives_the_wait(nginx):
    wait = _constant(REPO_ROOT / "app" / "routers" / "training.py", "WAIT_LIMIT_SECONDS")
    assert _seconds(_location(nginx, "=", "/train").value("proxy_read_timeout")) > wait


def test_uploads_within_the_service_limits_pass_nginx(nginx):
    from app.settings import Limits

    limits = Limits()
    largest = max(limits.max_corpus_bytes, limits.max_binary_body_bytes, limits.max_body_bytes)
    allowed = _size(_server(nginx).value("client_max_body_size"))
    assert allowed > largest
    archive = _location(nginx, "=", "/models/import")
    assert _size(archive.value("client_max_body_size")) > limits.max_import_bytes
    assert archive.value("proxy_request_buffering") == "off"


def test_the_nginx_reader_refuses_broken_files():
    with pytest.raises(ValueError, match="ends inside"):
        parse_nginx("http { server { listen 80; }")
    with pytest.raises(ValueError, match="unexpected"):
        parse_nginx("http { listen 80 }")


# --- docs ---------------------------------------------------------------------------------------


def test_the_deployment_guide_is_linked_and_its_yaml_parses():
    assert "docs/deploy.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", DEPLOY_DOC.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        assert list(yaml.safe_load_all(block))
