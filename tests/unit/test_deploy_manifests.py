"""The deploy/ manifests agree with the CLI and the settings.

Docker, Kubernetes and systemd cannot run here, so these tests are what keeps deploy/
honest. They parse every manifest, take each `logad ...` command out of it (the systemd
ExecStart, the crontab line, the k8s container command and args, the compose command
behind the image's `logad` entrypoint, the commands in deploy/README.md), and run it
through the real parser (`stream.cli.build_parser`). Then they build the command's real
settings from the flags, the `LOGAD_*` environment and the config file that the manifest
ships. A misspelled flag, variable or key, or a bad value, is a failure. They also check
the wiring: probes and Prometheus on the metrics port, GPU requests, schedules, topics and
images.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from schemas.errors import LogadError
from schemas.runtime.secret import Secret
from schemas.runtime.settings import ENV_PREFIX, build_settings, leaves, sections
from stream.cli import build_parser
from stream.serve.settings import ServeSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
UNITS = DEPLOY / "systemd"
CRONTAB = DEPLOY / "cron" / "logad.crontab"
README = DEPLOY / "README.md"
DOCKERFILE = DEPLOY / "Dockerfile"

# The settings class each command builds: its fields are the command's setting flags,
# LOGAD_* variables and config-file keys.
COMMAND_SETTINGS = {
    "serve": "ServeSettings",
    "train": "TrainSettings",
    "retrain": "RetrainSettings",
}
GPU = "nvidia.com/gpu"


# --- the checker: one `logad` command line with its environment and config files ---


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]  # what follows the `logad` program
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # config files shipped, by path


@dataclass
class Checked:
    command: str | None
    settings: Any
    problems: list[str]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise AssertionError("the logad parser has no subcommands")


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def settings_class(ns: argparse.Namespace, command: str) -> type[Any] | None:
    """The settings class the parsed command builds (None for a command without one)."""
    found = getattr(ns, "settings_cls", None)
    if command not in COMMAND_SETTINGS or found is None:
        return None
    return found if found.__name__ == COMMAND_SETTINGS[command] else None


def port_of(s: ServeSettings) -> int:
    return s.metrics.metrics_port


def check_invocation(inv: Invocation, workdir: Path) -> Checked:
    parser = build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            ns, unknown = parser.parse_known_args(list(inv.argv))
    except SystemExit:
        why = (stderr.getvalue().strip().splitlines() or ["?"])[-1]
        return Checked(None, None, [f"{inv.where}: `logad {shlex.join(inv.argv)}`: {why}"])
    command: str = ns.command
    problems = [f"{inv.where}: unknown arguments {unknown}"] if unknown else []
    # argparse takes unambiguous prefixes (`--last-day`); a manifest must spell flags out.
    known = _option_strings(parser) | _option_strings(_subparser(parser, command))
    for tok in inv.argv:
        flag = tok.split("=", 1)[0]
        if flag.startswith("--") and flag not in known and flag not in unknown:
            problems.append(f"{inv.where}: `{flag}` is not the full name of a flag of {command}")
    cls = settings_class(ns, command)
    if cls is None:
        if command in COMMAND_SETTINGS:
            want = COMMAND_SETTINGS[command]
            problems.append(f"{inv.where}: no {want} found for `logad {command}`")
        elif inv.files or any(k.startswith(ENV_PREFIX) for k in inv.env):
            problems.append(f"{inv.where}: `logad {command}` has no settings to configure")
        return Checked(command, None, problems)
    fields = set(leaves(cls))
    tables = {sec.name: {leaf.name for leaf in sec.leaves} for sec in sections(cls) if sec.name}
    env = {k: v for k, v in inv.env.items() if k.startswith(ENV_PREFIX)}
    for key in env:
        if key.removeprefix(ENV_PREFIX).lower() not in fields:
            problems.append(f"{inv.where}: {key} is not a setting of {cls.__name__}")
    config_file = None
    config = getattr(ns, "config", None)
    if config is not None:
        text = inv.files.get(str(config))
        if text is None:
            problems.append(f"{inv.where}: --config {config} is not shipped with the manifest")
        else:
            data = tomllib.loads(text) if str(config).endswith(".toml") else json.loads(text)
            for key, value in data.items():
                if key in tables and isinstance(value, dict):
                    bad = [f"{key}.{k}" for k in value if k not in tables[key]]
                elif key not in fields:
                    bad = [key]
                else:
                    bad = []
                for k in bad:
                    problems.append(f"{inv.where}: {config}: {k} is not a {cls.__name__} field")
            config_file = workdir / Path(str(config)).name
            config_file.write_text(text)
    settings = None
    if not problems:
        flags = {name: getattr(ns, name) for name in fields if hasattr(ns, name)}
        try:
            settings = build_settings(cls, config_file=config_file, flags=flags, environ=env)
        except LogadError as e:
            problems.append(f"{inv.where}: {cls.__name__}: {e}")
    return Checked(command, settings, problems)


def logad_argv(tokens: list[str]) -> tuple[str, ...] | None:
    """The arguments after the `logad` program in a command line, or None if it runs another."""
    for i, tok in enumerate(tokens):
        if Path(tok).name == "logad":
            return tuple(tokens[i + 1 :])
        if tokens[i : i + 3] == ["python", "-m", "stream.cli"]:
            return tuple(tokens[i + 3 :])
    return None


# --- parsers for what is not YAML ---


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (keys such as Environment= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            line, pending = pending + " " + line, ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
        else:
            raise ValueError(f"not a unit file line: {raw!r}")
    return sections


def unit_env(unit: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in unit.get("Service", {}).get("Environment", []):
        for assignment in shlex.split(value):
            key, sep, val = assignment.partition("=")
            if not sep:
                raise ValueError(f"Environment={value!r} is not KEY=VALUE")
            env[key] = val
    return env


_CRON_ENV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_SHELL_OP = re.compile(r"^(\d*[<>]|[|;&])")
CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def parse_crontab(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A user crontab: its VAR=value lines and its (schedule, command) jobs."""
    env: dict[str, str] = {}
    jobs: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            macro, _, command = line.partition(" ")
            jobs.append((macro, command.strip()))
        elif m := _CRON_ENV.match(line):
            env[m[1]] = m[2].strip().strip("\"'")
        else:
            parts = line.split(None, 5)
            if len(parts) != 6:
                raise ValueError(f"not a crontab line: {raw!r}")
            jobs.append((" ".join(parts[:5]), parts[5]))
    return env, jobs


def command_tokens(command: str) -> list[str]:
    """A shell command's words up to the first redirection or operator."""
    tokens = shlex.split(command)
    for i, tok in enumerate(tokens):
        if _SHELL_OP.match(tok):
            return tokens[:i]
    return tokens


_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_CRON_FIELDS = (
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day of month", 1, 31, None, 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)


def cron_problems(expr: str) -> list[str]:
    """Why `expr` is not a valid five-field cron schedule (empty if it is)."""
    if expr in CRON_MACROS:
        return []
    parts = expr.split()
    if len(parts) != 5:
        return [f"{expr!r} has {len(parts)} fields, not 5"]
    problems = []
    for part, (label, lo, hi, names, offset) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                problems.append(f"{expr!r}: bad step {item!r} in the {label}")
            if base == "*":
                continue
            values = []
            for v in base.split("-", 1):
                if v.isdigit():
                    values.append(int(v))
                elif names and v.lower() in names:
                    values.append(names.index(v.lower()) + offset)
                else:
                    values.append(-1)
            if any(not lo <= v <= hi for v in values) or values != sorted(values):
                problems.append(f"{expr!r}: {item!r} is not within {lo}-{hi} for the {label}")
    return problems


def readme_commands(text: str) -> Iterator[list[str]]:
    """The commands in the README's ```sh blocks (other blocks are diagrams and YAML)."""
    lang: str | None = None
    for raw in text.splitlines():
        if raw.startswith("```"):
            lang = raw[3:].strip() if lang is None else None
            continue
        line = raw.split("  #", 1)[0].strip()
        if lang in ("sh", "bash", "console") and line and not line.startswith("#"):
            yield shlex.split(line.removeprefix("$ "))


# --- the manifests, loaded ---


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml_docs(path):
            doc["_file"] = path.name
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        spec: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    spec = obj["spec"]["template"]["spec"]
    return spec


def k8s_invocations(
    obj: dict[str, Any], configmaps: Mapping[str, Mapping[str, str]]
) -> list[tuple[Invocation, dict[str, Any]]]:
    """Each container of a workload that runs `logad`, with its env and mounted config files."""
    spec = pod_spec(obj)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    found = []
    for c in spec["containers"]:
        argv = logad_argv([*c.get("command", []), *c.get("args", [])])
        if argv is None:
            continue
        env: dict[str, str] = {}
        for ref in c.get("envFrom", []):
            env.update(configmaps[ref["configMapRef"]["name"]])
        for e in c.get("env", []):
            env[e["name"]] = str(e["value"]) if "value" in e else _from_secret(e)
        files: dict[str, str] = {}
        for mount in c.get("volumeMounts", []):
            cm = volumes[mount["name"]].get("configMap")
            if cm is None:
                continue
            data = configmaps[cm["name"]]
            items = cm.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                path = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
                if "subPath" in mount:
                    if item["path"] != mount["subPath"]:
                        continue
                    path = mount["mountPath"]
                files[path] = data[item["key"]]
        where = f"k8s/{obj['_file']}: {obj['kind']}/{obj['metadata']['name']}/{c['name']}"
        found.append((Invocation(where, argv, env, files), c))
    return found


SECRET_REF = "<from Secret {name}/{key}>"
"""What the checker puts in for a variable a Kubernetes Secret fills in (the value itself
is the cluster's, not the manifest's)."""


def _from_secret(e: Mapping[str, Any]) -> str:
    ref = e.get("valueFrom", {}).get("secretKeyRef")
    assert ref, f"env {e['name']}: only value and valueFrom.secretKeyRef are understood"
    return SECRET_REF.format(**ref)


def configmaps_of(objects: Mapping[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {name: o.get("data", {}) for (kind, name), o in objects.items() if kind == "ConfigMap"}


def dockerfile_entrypoint() -> list[str]:
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert m, "deploy/Dockerfile has no exec-form ENTRYPOINT"
    entry: list[str] = json.loads(m[1])
    return entry


def logad_image() -> str:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return f"logad:{version}"


def _as_list(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(str(e).split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def compose_invocations(compose: Mapping[str, Any]) -> dict[str, Invocation]:
    """The services that run the logad image, as `logad` invocations, by service name."""
    found = {}
    for name, svc in compose["services"].items():
        if svc.get("image") != logad_image() and "build" not in svc:
            continue
        entry = _as_list(svc["entrypoint"]) if "entrypoint" in svc else dockerfile_entrypoint()
        argv = logad_argv([*entry, *_as_list(svc.get("command", []))])
        assert argv is not None, f"compose service {name} does not run logad"
        found[name] = Invocation(f"compose: {name}", argv, compose_env(svc))
    return found


def all_invocations() -> list[Invocation]:
    invs = []
    for path in sorted(UNITS.glob("*.service")):
        unit = parse_unit(path.read_text())
        for line in unit["Service"]["ExecStart"]:
            argv = logad_argv(shlex.split(line.lstrip("-@+!:")))
            assert argv is not None, f"{path.name}: ExecStart does not run logad"
            invs.append(Invocation(f"systemd/{path.name}", argv, unit_env(unit)))
    env, jobs = parse_crontab(CRONTAB.read_text())
    for _, command in jobs:
        argv = logad_argv(command_tokens(command))
        assert argv is not None, f"crontab job does not run logad: {command}"
        invs.append(Invocation("cron/logad.crontab", argv, env))
    objects = k8s_objects()
    cms = configmaps_of(objects)
    for obj in objects.values():
        if obj["kind"] in ("Deployment", "CronJob"):
            invs += [inv for inv, _ in k8s_invocations(obj, cms)]
    invs += compose_invocations(yaml.safe_load(COMPOSE.read_text())).values()
    return invs


ALL = all_invocations()


# --- the tests ---


def test_every_manifest_parses() -> None:
    kinds = {kind for kind, _ in k8s_objects()}
    assert {"Deployment", "CronJob", "PersistentVolumeClaim", "ConfigMap"} <= kinds
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    shipped = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped
    assert yaml.safe_load(COMPOSE.read_text())["services"]
    units = sorted(p.name for p in UNITS.iterdir())
    assert units == ["logad-retrain.service", "logad-retrain.timer", "logad-serve.service"]
    for p in UNITS.iterdir():
        assert parse_unit(p.read_text())
    assert parse_crontab(CRONTAB.read_text())[1]


def test_every_place_runs_serve_and_retrain() -> None:
    # Guards the extraction: a manifest whose commands the checker missed is not checked.
    by_place: dict[str, set[str]] = {}
    for inv in ALL:
        place = inv.where.split("/", 1)[0].split(":", 1)[0]
        by_place.setdefault(place, set()).add(next(a for a in inv.argv if not a.startswith("-")))
    assert by_place == {
        "systemd": {"serve", "retrain"},
        "cron": {"retrain"},
        "k8s": {"serve", "retrain"},
        "compose": {"serve", "retrain"},
    }


@pytest.mark.parametrize("inv", ALL, ids=[i.where for i in ALL])
def test_logad_command_matches_cli_and_settings(inv: Invocation, tmp_path: Path) -> None:
    checked = check_invocation(inv, tmp_path)
    assert checked.problems == []
    assert checked.settings is not None


def _scorer(objects: Mapping[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return next(o for (kind, _), o in objects.items() if kind == "Deployment")


def _retrain_job(objects: Mapping[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return next(o for (kind, _), o in objects.items() if kind == "CronJob")


def scorer_problems(
    deployment: dict[str, Any], configmaps: Mapping[str, Mapping[str, str]], workdir: Path
) -> list[str]:
    """The scorer Deployment's probes, Prometheus annotations and GPU against its settings."""
    [(inv, c)] = k8s_invocations(deployment, configmaps)
    checked = check_invocation(inv, workdir)
    if checked.problems:
        return checked.problems
    s: ServeSettings = checked.settings
    problems = []
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if s.metrics.metrics_port not in ports.values():
        problems.append(f"containerPort {sorted(ports.values())} != metrics_port {port_of(s)}")
    if s.metrics.metrics_host in ("127.0.0.1", "localhost", "::1"):
        problems.append(f"metrics_host {s.metrics.metrics_host} is unreachable for the kubelet")
    want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    if "startupProbe" in c:
        want["startupProbe"] = "/healthz"
    for probe, path in want.items():
        get = c.get(probe, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != path or port != s.metrics.metrics_port:
            problems.append(f"{probe} is {get}, want {path} on port {s.metrics.metrics_port}")
    notes = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") != "true":
        problems.append("no prometheus.io/scrape: 'true' annotation on the pod")
    if notes.get("prometheus.io/port") != str(s.metrics.metrics_port):
        problems.append(f"prometheus.io/port {notes.get('prometheus.io/port')!r} != metrics_port")
    if notes.get("prometheus.io/path", "/metrics") != "/metrics":
        problems.append("prometheus.io/path is not /metrics")
    gpus = c.get("resources", {}).get("limits", {}).get(GPU)
    if gpus != 1:
        problems.append(f"the scorer's {GPU} limit is {gpus!r}, want 1")
    if s.scoring.device == "cpu":
        problems.append("the scorer asks for a GPU but its device setting is cpu")
    return problems


def test_k8s_scorer_probes_metrics_and_gpu(tmp_path: Path) -> None:
    objects = k8s_objects()
    assert scorer_problems(_scorer(objects), configmaps_of(objects), tmp_path) == []


def _secret_leaves(cls: type) -> set[str]:
    return {n for n, leaf in leaves(cls).items() if Secret in (leaf.type, *get_args(leaf.type))}


def _config_values(inv: Invocation) -> dict[str, Any]:
    """Every key of the invocation's config files, flat (a section's table opened)."""
    out: dict[str, Any] = {}
    for path, text in inv.files.items():
        data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
        for k, v in data.items():
            out.update(v if isinstance(v, dict) else {k: v})
    return out


@pytest.mark.parametrize("inv", ALL, ids=[i.where for i in ALL])
def test_no_secret_is_written_into_a_manifest(inv: Invocation, tmp_path: Path) -> None:
    # A password or key comes from a Kubernetes Secret, a file or another variable; a
    # literal in a unit file, a ConfigMap or a compose file is readable by too many.
    checked = check_invocation(inv, tmp_path)
    assert checked.settings is not None
    config = _config_values(inv)
    for name in _secret_leaves(type(checked.settings)):
        given = [inv.env.get(ENV_PREFIX + name.upper()), config.get(name)]
        for value in (v for v in given if v is not None):
            assert str(value).startswith(("<from Secret ", "file:", "env:")), (inv.where, name)


def test_k8s_scorer_logs_in_to_kafka_with_secrets_from_secrets(tmp_path: Path) -> None:
    objects = k8s_objects()
    scorer = _scorer(objects)
    [(inv, c)] = k8s_invocations(scorer, configmaps_of(objects))
    checked = check_invocation(inv, tmp_path)
    assert checked.problems == []
    kafka = checked.settings.kafka
    assert kafka.security_protocol == "SASL_SSL" and kafka.sasl_password is not None
    assert inv.env["LOGAD_SASL_PASSWORD"].startswith("<from Secret ")
    # The CA file lies in a volume made from a Secret, mounted read-only.
    volumes = {v["name"]: v for v in pod_spec(scorer)["volumes"]}
    mounts = [
        m
        for m in c["volumeMounts"]
        if kafka.ssl_cafile is not None and kafka.ssl_cafile.is_relative_to(m["mountPath"])
    ]
    assert [("secret" in volumes[m["name"]], m.get("readOnly")) for m in mounts] == [(True, True)]


def test_the_checker_fills_in_secret_refs_and_refuses_literals(tmp_path: Path) -> None:
    objects = k8s_objects()
    scorer = copy.deepcopy(_scorer(objects))
    c = pod_spec(scorer)["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] != "LOGAD_SASL_PASSWORD"]
    [(inv, _)] = k8s_invocations(scorer, configmaps_of(objects))
    assert "needs sasl_password" in " ".join(check_invocation(inv, tmp_path).problems)
    c["env"].append({"name": "LOGAD_SASL_PASSWORD", "value": "hunter2"})
    [(inv, _)] = k8s_invocations(scorer, configmaps_of(objects))
    with pytest.raises(AssertionError):
        test_no_secret_is_written_into_a_manifest(inv, tmp_path)


def test_k8s_retrain_cronjob(tmp_path: Path) -> None:
    objects = k8s_objects()
    job = _retrain_job(objects)
    assert cron_problems(job["spec"]["schedule"]) == []
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"].get("timeZone") in ("Etc/UTC", "UTC")  # daily files are UTC days
    [(inv, c)] = k8s_invocations(job, configmaps_of(objects))
    checked = check_invocation(inv, tmp_path)
    assert checked.problems == [] and checked.command == "retrain"
    ns, _ = build_parser().parse_known_args(list(inv.argv))
    # --nproc ranks through torchrun, one per GPU the pod gets.
    gpus = c["resources"]["limits"][GPU]
    assert gpus >= 1 and int(ns.nproc) == gpus
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/dev/shm" in mounts  # NCCL and DataLoader workers outgrow the default 64 MiB


def test_k8s_workloads_share_the_volume_and_configmaps() -> None:
    objects = k8s_objects()
    pvcs = {name for kind, name in objects if kind == "PersistentVolumeClaim"}
    cms = configmaps_of(objects)
    claims = []
    for obj in (_scorer(objects), _retrain_job(objects)):
        spec = pod_spec(obj)
        for v in spec["volumes"]:
            if "persistentVolumeClaim" in v:
                claims.append(v["persistentVolumeClaim"]["claimName"])
            if "configMap" in v:
                assert v["configMap"]["name"] in cms
        for c in spec["containers"]:
            assert c["image"] == logad_image()
            for ref in c.get("envFrom", []):
                assert ref["configMapRef"]["name"] in cms
    assert len(claims) == 2 and set(claims) <= pvcs and len(set(claims)) == 1


def test_compose_kafka_topics_and_scorer(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    kenv = compose_env(kafka)
    assert set(kenv["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}  # KRaft
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kenv
    advertised = {u.split("://", 1)[1] for u in kenv["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    invs = compose_invocations(compose)
    scorer = check_invocation(invs["scorer"], tmp_path)
    assert scorer.problems == []
    s: ServeSettings = scorer.settings
    assert s.kafka.bootstrap in advertised
    # The topics the init job creates are the ones the scorer reads and writes.
    script = " ".join(_as_list(services["kafka-init"]["command"]))
    m = re.search(r"for t in (.*?); do", script)
    assert m, "kafka-init no longer creates the topics in a `for t in ...` loop"
    t = s.topics
    assert set(m[1].split()) == {t.input_topic, t.scores_topic, t.alerts_topic, t.dlq_topic}
    assert services["kafka-init"]["image"] == kafka["image"]
    assert services["scorer"]["depends_on"]["kafka-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert f"{s.metrics.metrics_port}/healthz" in " ".join(
        _as_list(services["scorer"]["healthcheck"]["test"])
    )
    # The published port reaches the container's interface, not its loopback.
    assert any(str(p).endswith(f":{s.metrics.metrics_port}") for p in services["scorer"]["ports"])
    assert s.metrics.metrics_host not in ("127.0.0.1", "localhost", "::1")
    assert services["retrain"]["profiles"] == ["retrain"]
    assert next(a for a in invs["retrain"].argv if not a.startswith("-")) == "retrain"
    # Both logad services share the volume holding the registry and the archive.
    assert set(services["scorer"]["volumes"]) == set(services["retrain"]["volumes"])


def test_compose_builds_the_image_from_the_dockerfile() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    build = compose["services"]["scorer"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert {s.get("image") for s in compose["services"].values() if "build" in s} == {logad_image()}
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+\s*$", DOCKERFILE.read_text(), re.MULTILINE):
        for name in source.split():
            assert (REPO / name).exists(), f"Dockerfile copies {name}, which is not in the repo"
    assert dockerfile_entrypoint() == ["logad"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["logad"] == "stream.cli:main"


def test_systemd_units() -> None:
    serve = parse_unit((UNITS / "logad-serve.service").read_text())
    assert serve["Service"]["Restart"] == ["on-failure"]
    assert serve["Install"]["WantedBy"] == ["multi-user.target"]
    retrain = parse_unit((UNITS / "logad-retrain.service").read_text())
    assert retrain["Service"]["Type"] == ["oneshot"]
    assert "Install" not in retrain  # started by the timer only
    timer = parse_unit((UNITS / "logad-retrain.timer").read_text())
    assert timer["Timer"]["Unit"] == ["logad-retrain.service"]
    [calendar] = timer["Timer"]["OnCalendar"]
    # DayOfWeek? Y-M-D HH:MM:SS [zone]: a fixed daily time in UTC, like the other schedules.
    assert re.fullmatch(r"\*-\*-\* ([01]\d|2[0-3]):[0-5]\d:[0-5]\d UTC", calendar), calendar
    assert timer["Timer"]["Persistent"] == ["true"]


def test_crontab_line() -> None:
    text = CRONTAB.read_text()
    env, jobs = parse_crontab(text)
    assert env.get("CRON_TZ") == "UTC"
    [(schedule, command)] = jobs
    assert cron_problems(schedule) == []
    assert "%" not in command  # cron turns an unescaped % into a newline
    argv = logad_argv(command_tokens(command))
    assert argv is not None and "retrain" in argv


@pytest.mark.slow  # imports torch for torchrun's own argument parser
def test_readme_commands_match_the_cli(tmp_path: Path) -> None:
    from torch.distributed.run import get_args_parser

    from stream.cli.train import build_parser as trainer_parser

    compose_logad = compose_invocations(yaml.safe_load(COMPOSE.read_text()))
    seen: set[str] = set()
    for tokens in readme_commands(README.read_text()):
        argv = None
        if tokens[0] == "torchrun":
            targs = get_args_parser().parse_args(tokens[1:])
            assert targs.module and targs.training_script == "stream.cli.train", tokens
            assert targs.nnodes != "1" and targs.rdzv_backend == "c10d" and targs.rdzv_endpoint
            _, unknown = trainer_parser().parse_known_args(targs.training_script_args)
            assert unknown == [], tokens
            seen.add("torchrun")
            continue
        if tokens[:2] == ["docker", "compose"] and "run" in tokens:
            rest = tokens[tokens.index("run") + 1 :]
            while rest[0].startswith("-"):
                takes_value = rest[0] in ("-v", "--volume", "-e", "--env", "-w", "--name")
                assert takes_value or rest[0] in ("--rm", "--no-deps"), rest[0]
                rest = rest[2:] if takes_value else rest[1:]
            service, *args = rest
            if not args:  # the service's own command, checked with the compose file
                assert service in compose_logad
                continue
            argv = logad_argv([*dockerfile_entrypoint(), *args])
        elif tokens[0] == "logad":
            argv = logad_argv(tokens)
        if argv is None:
            continue
        checked = check_invocation(Invocation(f"README: {shlex.join(tokens)}", argv), tmp_path)
        assert checked.command is not None and checked.problems == []
        seen.add(checked.command)
    assert {"torchrun", "train", "promote", "models", "rollback"} <= seen


# --- the checker itself must be able to fail ---


def _without_archive(args: list[str]) -> list[str]:
    # The checker's own tests start from a scorer command that does not need the archive
    # feature, so they test the checker whether or not `serve --archive-dir` exists.
    if "--archive-dir" not in args:
        return args
    i = args.index("--archive-dir")
    return args[:i] + args[i + 2 :]


def _with_args(obj: dict[str, Any], edit: Callable[[list[str]], list[str]]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    c = pod_spec(obj)["containers"][0]
    c["args"] = edit(_without_archive(list(c["args"])))
    return obj


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda a: [*a, "--metrics-prot", "9108"], "--metrics-prot"),
        (lambda a: [*a, "--metrics-po", "9108"], "not the full name"),
        (lambda a: ["serv" if x == "serve" else x for x in a], "invalid choice"),
        (lambda a: [*a, "--metrics-port", "http"], "must be int"),
        (lambda a: [*a, "--config", "/etc/logad/missing.toml"], "not shipped"),
    ],
    ids=["misspelled-flag", "abbreviated-flag", "unknown-command", "bad-value", "no-config"],
)
def test_checker_rejects_a_broken_command(
    edit: Callable[[list[str]], list[str]], expect: str, tmp_path: Path
) -> None:
    objects = k8s_objects()
    cms = configmaps_of(objects)
    [(good, _)] = k8s_invocations(_with_args(_scorer(objects), lambda a: a), cms)
    assert check_invocation(good, tmp_path).problems == []
    [(inv, _)] = k8s_invocations(_with_args(_scorer(objects), edit), cms)
    problems = check_invocation(inv, tmp_path).problems
    assert any(expect in p for p in problems), problems


def test_checker_rejects_unknown_env_and_config_keys(tmp_path: Path) -> None:
    base = Invocation("test", ("serve", "--model", "/m"))
    bad_env = Invocation("test", base.argv, {"LOGAD_METRIC_PORT": "9108"})
    assert "LOGAD_METRIC_PORT" in " ".join(check_invocation(bad_env, tmp_path).problems)
    bad_key = Invocation(
        "test", (*base.argv, "--config", "/c/serve.toml"), files={"/c/serve.toml": "gap = 5\n"}
    )
    assert "gap is not a ServeSettings field" in " ".join(
        check_invocation(bad_key, tmp_path).problems
    )
    missing_model = Invocation("test", ("serve",))
    assert "no model" in " ".join(check_invocation(missing_model, tmp_path).problems)
    assert check_invocation(base, tmp_path).problems == []


def test_checker_rejects_broken_scorer_wiring(tmp_path: Path) -> None:
    objects = k8s_objects()
    cms = configmaps_of(objects)
    scorer = _with_args(_scorer(objects), lambda a: a)
    assert scorer_problems(scorer, cms, tmp_path) == []
    broken = copy.deepcopy(scorer)
    c = pod_spec(broken)["containers"][0]
    c["readinessProbe"]["httpGet"]["path"] = "/healthz"
    c["resources"]["limits"].pop(GPU)
    broken["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9100"
    problems = " ".join(scorer_problems(broken, cms, tmp_path))
    assert "readinessProbe" in problems and GPU in problems and "prometheus.io/port" in problems
    # A port moved in the config file but not in the probes is caught too.
    moved = {**cms, "logad-config": dict(cms["logad-config"])}
    toml = moved["logad-config"]["serve.toml"]
    moved["logad-config"]["serve.toml"] = toml.replace("metrics_port = 9108", "metrics_port = 9200")
    assert "livenessProbe" in " ".join(scorer_problems(scorer, moved, tmp_path))


@pytest.mark.parametrize(
    "expr", ["30 2 * * *", "*/15 * * * 1-5", "0 0 1 jan,jul sun", "@daily", "5 4 * * 7"]
)
def test_cron_checker_accepts(expr: str) -> None:
    assert cron_problems(expr) == []


@pytest.mark.parametrize(
    "expr", ["61 2 * * *", "30 2 * *", "30 24 * * *", "0 0 0 * *", "*/0 * * * *", "5-1 * * * *"]
)
def test_cron_checker_rejects(expr: str) -> None:
    assert cron_problems(expr) != []


def test_unit_and_crontab_parsers_catch_a_misspelled_flag(tmp_path: Path) -> None:
    unit = parse_unit(
        '[Service]\nEnvironment=LOGAD_GAP_MS=100 "LOGAD_DEVICE=cpu"\n'
        "ExecStart=/opt/logad/.venv/bin/logad serve \\\n    --model /m --gap-mss 5\n"
    )
    assert unit_env(unit) == {"LOGAD_GAP_MS": "100", "LOGAD_DEVICE": "cpu"}
    argv = logad_argv(shlex.split(unit["Service"]["ExecStart"][0]))
    assert argv == ("serve", "--model", "/m", "--gap-mss", "5")
    inv = Invocation("unit", argv, unit_env(unit))
    assert "--gap-mss" in " ".join(check_invocation(inv, tmp_path).problems)
    _, [(_, command)] = parse_crontab("0 3 * * * logad serve --model /m --gapms 1 >>/l 2>&1\n")
    assert command_tokens(command) == ["logad", "serve", "--model", "/m", "--gapms", "1"]


def test_settings_class_lookup_follows_the_cli() -> None:
    parser = build_parser()
    serve = parser.parse_args(["serve"])
    assert settings_class(serve, "serve") is ServeSettings
    train = parser.parse_args(["train", "--data", "d", "--out", "o"])
    trainer_settings = importlib.import_module("trainer.settings").TrainSettings
    assert settings_class(train, "train") is trainer_settings
