#!/usr/bin/env python3
"""Static checks of the container and service assets in deploy/ (see
docs/deploy.md#tests): the Dockerfile, deploy/compose, deploy/swarm,
deploy/k8s and deploy/systemd.

    check_assets.py --bzzz BZZZ_BINARY --root REPO_ROOT --work TMPDIR

Every YAML file is parsed; each deployment is checked for the structure it
promises (service names, networks, secrets, rolling update, probes, PDB,
HPA, ingress TLS, ...); every bzzz configuration file is loaded by
`bzzz config validate`; the systemd units go through `systemd-analyze
verify`; and every `bzzz ...` command line of every file (Dockerfile
CMD/ENTRYPOINT/HEALTHCHECK/RUN, compose and swarm entrypoint/command and
healthchecks, Kubernetes command/args, init scripts, systemd Exec*, and the
shell blocks of docs/deploy.md) is checked against the real binary's help:
the subcommand exists, every flag is accepted, required options are given.
`serve` command lines are also loaded by `bzzz config validate` with their
environment and configuration file. Each problem is printed as
"FAIL: <file>: <what>"; the exit code is the number of problems (max 100).
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
QUICK = False  # --quick: skip the slow checks that do not look at deploy/ (mutation runs)
failures = 0
checked_commands = {}  # file -> count


def fail(where, msg):
    global failures
    failures += 1
    print("FAIL: %s: %s" % (where, msg), file=sys.stderr)


def ok(msg):
    print("ok: " + msg)


# --------------------------------------------------------------------------
# The real CLI: subcommands and options parsed from `bzzz ... --help`.
# --------------------------------------------------------------------------

class Cli:
    TYPE_RE = re.compile(r"^[A-Z]{2,}(?:[:=].*)?$")

    def __init__(self, binary, cache_file=None):
        self.binary = binary
        self.cache = {}
        self.extra = {}
        self.cache_file = cache_file
        if cache_file and os.path.isfile(cache_file):
            data = json.load(open(cache_file))
            self.extra = data.get("extra", {})
            for key, spec in data["help"]:
                self.cache[tuple(key)] = None if spec is None else dict(
                    spec, subcommands=set(spec["subcommands"]), required=set(spec["required"]))

    def save(self):
        if self.cache_file:
            data = [[list(k), None if v is None else dict(v, subcommands=sorted(v["subcommands"]), required=sorted(v["required"]))]
                    for k, v in self.cache.items()]
            with open(self.cache_file, "w") as f:
                json.dump({"help": data, "extra": self.extra}, f)

    def help(self, path):
        key = tuple(path)
        if key not in self.cache:
            r = subprocess.run([self.binary] + list(path) + ["--help"], capture_output=True, text=True,
                               timeout=20, env=clean_env())
            self.cache[key] = self.parse(r.stdout) if r.returncode == 0 else None
        return self.cache[key]

    @classmethod
    def parse(cls, text):
        spec = {"subcommands": set(), "options": {}, "positionals": [], "required": set()}
        section = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if not line.startswith(" "):
                section = line.rstrip(":") if line.endswith(":") else None
                continue
            if not line.startswith("  ") or line.startswith("   "):
                continue  # a continuation line of a description
            tokens = line.split()
            if section == "Subcommands":
                spec["subcommands"].add(tokens[0])
            elif section == "Options" and tokens[0].startswith("-"):
                names = [re.sub(r"\{.*\}$", "", n) for n in tokens[0].split(",")]
                takes_value = multi = required = False
                for tok in tokens[1:]:
                    if cls.TYPE_RE.match(tok) and tok != "REQUIRED":
                        takes_value = True
                    elif tok == "...":
                        multi = True
                    elif tok == "REQUIRED":
                        required = True
                    elif tok.startswith("(Env:"):
                        continue
                    else:
                        break
                opt = {"names": names, "value": takes_value, "multi": multi}
                for n in names:
                    spec["options"][n] = opt
                if required:
                    spec["required"].add(names[-1])
            elif section == "Positionals":
                spec["positionals"].append(tokens[0])
        return spec

    def check(self, argv, where):
        """argv: the arguments after the program name. Returns the
        subcommand path, or None after reporting a problem."""
        path = []
        spec = self.help(path)
        if argv[:1] in (["--version"], ["--help"], ["-h"], ["--help-all"]) and len(argv) == 1:
            return ["--version"]
        i = 0
        while i < len(argv) and argv[i] in spec["subcommands"]:
            path.append(argv[i])
            spec = self.help(path)
            if spec is None:
                fail(where, "`bzzz %s --help` fails" % " ".join(path))
                return None
            i += 1
        if not path:
            fail(where, "`bzzz %s`: no bzzz subcommand (known: %s)" % (" ".join(argv), ", ".join(sorted(spec["subcommands"]))))
            return None
        if spec["subcommands"]:
            fail(where, "`bzzz %s` needs one of the subcommands %s" % (" ".join(path), ", ".join(sorted(spec["subcommands"]))))
            return None
        cmd = "bzzz " + " ".join(path)
        seen, positionals = set(), 0
        while i < len(argv):
            tok = argv[i]
            if tok.startswith("-") and len(tok) > 1 and tok != "--":
                name, has_eq, _ = tok.partition("=")
                opt = spec["options"].get(name)
                if opt is None:
                    fail(where, "`%s` has no option %s (in: bzzz %s)" % (cmd, name, " ".join(argv)))
                    return None
                seen.update(opt["names"])
                i += 1
                if opt["value"] and not has_eq:
                    if i >= len(argv):
                        fail(where, "`%s %s` needs a value" % (cmd, name))
                        return None
                    i += 1
                    while opt["multi"] and i < len(argv) and not argv[i].startswith("-"):
                        i += 1
                elif not opt["value"] and has_eq:
                    fail(where, "`%s %s` takes no value" % (cmd, name))
                    return None
            else:
                positionals += 1
                i += 1
        if positionals > len(spec["positionals"]):
            fail(where, "`%s` takes %d positional argument(s), got %d (in: bzzz %s)"
                 % (cmd, len(spec["positionals"]), positionals, " ".join(argv)))
            return None
        for req in spec["required"]:
            if req not in seen:
                fail(where, "`%s` without its required option %s" % (cmd, req))
                return None
        return path


def clean_env(extra=None):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------
# Finding bzzz command lines.
# --------------------------------------------------------------------------

BZZZ_PROGRAMS = ("bzzz", "docker-entrypoint.sh")
SHELLS = ("sh", "bash", "dash")
SHELL_OPS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&", "<", ">", ">>", "<<", ">&", "<&", "$(", "`"}


def is_bzzz(word):
    return "=" not in word and os.path.basename(word) in BZZZ_PROGRAMS


def shell_commands(script):
    """Every bzzz invocation in a shell script, as argument lists."""
    text = re.sub(r"\\\n", " ", script)
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            lex = shlex.shlex(stripped, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            lex.commenters = "#"
            tokens = list(lex)
        except ValueError:
            continue
        # "$(" and "`" stay glued to the word after them; split them off.
        words = []
        for t in tokens:
            while t.startswith("$(") or t.startswith("`"):
                words.append(t[:2] if t.startswith("$(") else "`")
                t = t[2:] if t.startswith("$(") else t[1:]
            if t:
                words.append(t)
        i = 0
        while i < len(words):
            w = words[i]
            if is_bzzz(w) and words[i + 1:i + 2] in (["("], ["()"]):
                i += 1  # a shell function named bzzz: its body is scanned like the rest
            elif is_bzzz(w) and (i == 0 or words[i - 1] in SHELL_OPS or words[i - 1] == "--" or (i >= 2 and words[i - 2] == "exec") or words[i - 1] in ("exec", "then", "do", "else", "!", "if", "while")
                               or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i - 1]) or words[i - 1].endswith("=$(")):
                args = []
                j = i + 1
                while j < len(words) and words[j] not in SHELL_OPS and not set(words[j]) <= set("<>&|;()"):
                    args.append(words[j])
                    j += 1
                # A redirection like 2>/dev/null leaves its digit behind.
                if args and re.fullmatch(r"\d", args[-1]) and j < len(words) and words[j] in (">", ">>", ">&", "<"):
                    args.pop()
                found.append(args)
                i = j
            else:
                i += 1
    return found


def argv_commands(argv, where, scripts=None):
    """A container's or unit's argument vector: a bzzz invocation directly,
    through the image's entry point, or inside `sh -c SCRIPT` / `sh FILE`."""
    if not argv:
        return []
    if is_bzzz(argv[0]):
        return [argv[1:]]
    if os.path.basename(argv[0]) in SHELLS:
        if len(argv) >= 3 and argv[1] == "-c":
            return shell_commands(argv[2])
        if len(argv) >= 2 and not argv[1].startswith("-"):
            target = (scripts or {}).get(argv[1])
            if target is None:
                fail(where, "runs the script %s, which no file of the repository provides" % argv[1])
            return []  # the script itself is checked as a file
    return []


def check_commands(cli, where, commands, validate=None):
    for args in commands:
        if '"$@"' in args or "$@" in args:
            continue  # the entry point passing its arguments on
        checked_commands[where] = checked_commands.get(where, 0) + 1
        path = cli.check(args, where)
        if path in (["serve"], ["dht-bootstrap"]) and validate is not None:
            validate(args)


# --------------------------------------------------------------------------
# bzzz config validate, for configuration files and serve command lines.
# --------------------------------------------------------------------------

class Validator:
    def __init__(self, binary, work, cache=None):
        self.binary = binary
        self.work = work
        self.cache = cache  # a Cli: its cache file keeps the token for the next run
        self.join_token = None

    def token(self):
        """A real join token (some keys are checked for their form)."""
        if self.join_token is None and self.cache is not None:
            self.join_token = self.cache.extra.get("join_token")
        if self.join_token is None:
            d = os.path.join(self.work, "founder")
            subprocess.run([self.binary, "cluster", "init", "--data-dir", d], capture_output=True, env=clean_env(), timeout=20)
            r = subprocess.run([self.binary, "cluster", "token", "create", "--data-dir", d, "--ttl", "1h"],
                               capture_output=True, text=True, env=clean_env(), timeout=20)
            self.join_token = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else ""
            if self.cache is not None:
                self.cache.extra["join_token"] = self.join_token
        return self.join_token

    def run(self, where, args, env=None):
        r = subprocess.run([self.binary, "config", "validate"] + args, capture_output=True, text=True,
                           env=clean_env(env), timeout=20)
        problems = [l for l in (r.stdout + r.stderr).splitlines() if "error" in l or "warning" in l.lower() or "unknown" in l]
        if r.returncode != 0 or problems:
            fail(where, "bzzz config validate %s: %s" % (" ".join(args), "; ".join(problems) or r.stderr.strip() or r.stdout.strip()))
            return False
        return True

    @staticmethod
    def bootstrap_flags(flags):
        """dht-bootstrap's flags as `config validate` takes them:
        --port and --listen-host become --p2p-listen HOST:PORT."""
        out, host, port, i = [], "127.0.0.1", None, 0
        while i < len(flags):
            f, has_eq, v = flags[i].partition("=")
            if f in ("--port", "--listen-host"):
                if not has_eq:
                    i += 1
                    v = flags[i] if i < len(flags) else ""
                if f == "--port":
                    port = v
                else:
                    host = v
            else:
                out.append(flags[i])
            i += 1
        if port:
            out += ["--p2p-listen", "%s:%s" % (host, port)]
        return out

    def file(self, where, path):
        if self.run(where, ["-c", path]):
            ok("%s: bzzz config validate" % where)

    def serve(self, where, args, env, config_file, paths=None):
        """Loads a serve command line as serve would: its flags, its
        environment (secrets from *_FILE become values) and its file.
        paths maps files of the target system to files of the repository."""
        env = dict(env or {})
        args = [(paths or {}).get(a, a) for a in args]
        for name in list(env):
            if name.endswith("_FILE") and (name.startswith("BZZZ_") or name.startswith("NO_")):
                del env[name]
                env[name[:-5]] = self.token() if name == "BZZZ_JOIN_TOKEN_FILE" else "placeholder-secret-value"
        env.pop("BZZZ_CONFIG", None)
        flags = [a for a in args[1:]]
        if args[0] == "dht-bootstrap":
            flags = self.bootstrap_flags(flags)
        if config_file and not any(a in ("-c", "--config") or a.startswith("--config=") for a in flags):
            flags = ["-c", config_file] + flags
        self.run(where, flags, {k: str(v) for k, v in env.items()})


def substitute(value, mapping):
    for k, v in mapping.items():
        value = value.replace(k, v)
    return value


SAMPLE = {"$(POD_IP)": "10.1.2.3", "$(POD_NAME)": "bzzz-1", "{{.Task.Slot}}": "1", "%i": "9101"}


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------

def load_yaml_docs(path, where):
    try:
        with open(path) as f:
            return [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]
    except yaml.YAMLError as e:
        fail(where, "invalid YAML: %s" % e)
        return []


def rel(root, path):
    return os.path.relpath(path, root)


def as_list(v):
    if v is None:
        return []
    if isinstance(v, str):
        return shlex.split(v)
    return [str(x) for x in v]


def env_dict(env):
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    out = {}
    for item in env:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def healthcheck_commands(test):
    if test is None:
        return []
    if isinstance(test, str):
        return shell_commands(test)
    test = [str(t) for t in test]
    if test[0] == "CMD":
        return argv_commands(test[1:], "healthcheck")
    if test[0] == "CMD-SHELL":
        return shell_commands(" ".join(test[1:]))
    return []


# --------------------------------------------------------------------------
# Dockerfile.
# --------------------------------------------------------------------------

def dockerfile_instructions(text):
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        word, _, rest = s.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(rest):
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]


def package_list(run_text):
    m = re.search(r"apt-get install (.*?)(?:&&|$)", run_text)
    if not m:
        return set()
    return {w for w in m.group(1).split() if not w.startswith("-")}


def check_dockerfile(root, cli, validator):
    path = os.path.join(root, "deploy/docker/Dockerfile")
    where = rel(root, path)
    if not os.path.isfile(path):
        fail(where, "missing")
        return None
    text = open(path).read()
    ins = dockerfile_instructions(text)
    args = {}
    stages = []  # [{name, base, ins}]
    for word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"name": name, "base": base, "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, rest))
    if len(stages) < 2:
        fail(where, "not a multi-stage build (%d FROM)" % len(stages))
        return None
    build, runtime = stages[0], stages[-1]
    for st, want in ((build, "debian:12"), (runtime, "debian:12-slim")):
        if st["base"] != want:
            fail(where, "stage %s is based on %r, expected %s" % (st["name"], st["base"], want))
    build_runs = " ".join(r for w, r in build["ins"] if w == "RUN")
    if "-G Ninja" not in build_runs or "--target bzzz" not in build_runs or "BZZZ_BUILD_TESTS=OFF" not in build_runs:
        fail(where, "the build stage must configure with -G Ninja, -DBZZZ_BUILD_TESTS=OFF and build --target bzzz")
    # Build packages: the toolchain and library groups of scripts/setup.sh.
    setup = open(os.path.join(root, "scripts/setup.sh")).read()
    groups, current = {}, None
    body = setup[setup.index("packages=("):setup.index(")", setup.index("packages=("))]
    for line in body.splitlines()[1:]:
        s = line.strip()
        if s.startswith("#"):
            current = s.lstrip("# ").split()[0]
            groups[current] = set()
        elif current:
            groups[current].update(s.split())
    build_pkgs = package_list(build_runs)
    needed = (groups.get("toolchain", set()) - {"ccache", "git", "make"}) | {p for p in groups.get("libraries", set()) if p.endswith("-dev")}
    missing = sorted(needed - build_pkgs)
    if missing:
        fail(where, "the build stage does not install these packages of scripts/setup.sh: %s" % " ".join(missing))
    # Runtime: only runtime packages; one for every shared library of the binary.
    runtime_runs = " ".join(r for w, r in runtime["ins"] if w == "RUN")
    runtime_pkgs = package_list(runtime_runs)
    dev = sorted(p for p in runtime_pkgs if p.endswith("-dev") or p in ("g++", "cmake", "ninja-build", "gcc"))
    if dev:
        fail(where, "the runtime stage installs build packages: %s" % " ".join(dev))
    if not QUICK and shutil.which("dpkg-query") and shutil.which("readelf") and shutil.which("ldd"):
        r = subprocess.run(["readelf", "-d", cli.binary], capture_output=True, text=True)
        sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
        r = subprocess.run(["ldd", cli.binary], capture_output=True, text=True)
        where_is = dict(re.findall(r"^\s*(\S+) => (/\S+)", r.stdout, re.M))
        base = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1"}
        paths = {so: os.path.realpath(where_is.get(so, "")) for so in sonames if so not in base}
        r = subprocess.run(["dpkg-query", "-S"] + [p for p in paths.values() if p], capture_output=True, text=True)
        owner = {}
        for line in r.stdout.splitlines():
            pkg, _, f = line.partition(": ")
            owner[f.strip()] = pkg.split(":")[0]
        for so, p in sorted(paths.items()):
            pkg = owner.get(p) or owner.get(p.replace("/usr/lib/", "/lib/", 1))
            if not pkg:
                fail(where, "cannot tell which Debian package provides %s (%s; dpkg-query -S)" % (so, p or "not found by ldd"))
            elif pkg not in runtime_pkgs:
                fail(where, "the binary needs %s (package %s), which the runtime stage does not install" % (so, pkg))
        ok("%s: runtime packages cover the %d shared libraries of the binary" % (where, len(paths)))
    if "bubblewrap" not in runtime_pkgs:
        fail(where, "the runtime stage does not install bubblewrap (command and llm executors)")
    # Non-root, volume, ports, health check, entry point.
    rt = runtime["ins"]
    users = [r for w, r in rt if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        fail(where, "the runtime stage does not switch to a non-root USER")
    elif not users[-1].split(":")[0].isdigit():
        fail(where, "USER %s: use a numeric uid (Kubernetes' runAsNonRoot can only verify a number)" % users[-1])
    if not any(w == "VOLUME" and "/app/data" in r for w, r in rt):
        fail(where, "no VOLUME for /app/data")
    exposed = set(" ".join(r for w, r in rt if w == "EXPOSE").split())
    for port in ("8080/tcp", "8081/tcp", "9000/udp"):
        if port not in exposed:
            fail(where, "does not EXPOSE %s" % port)
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s", text, re.M):
        if not os.path.exists(os.path.join(root, src)):
            fail(where, "COPY %s: no such file in the repository" % src)
    image = {"entrypoint": None, "cmd": None, "healthcheck": None}
    commands = []
    for w, r in build["ins"] + rt:
        if w == "RUN":
            commands += [c for c in shell_commands(r)]
    for w, r in rt:
        if w == "ENTRYPOINT":
            image["entrypoint"] = exec_form(r)
        elif w == "CMD":
            image["cmd"] = exec_form(r)
        elif w == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", r)
            image["healthcheck"] = exec_form(m.group(1)) if m else None
    if not image["healthcheck"]:
        fail(where, "no HEALTHCHECK")
    else:
        hc = argv_commands(image["healthcheck"], where)
        if not any(c[:1] == ["health"] for c in hc):
            fail(where, "the HEALTHCHECK does not run `bzzz health`")
        commands += hc
    if not image["entrypoint"] or not is_bzzz(image["entrypoint"][0]):
        fail(where, "the ENTRYPOINT is not bzzz or its entry point script")
    else:
        commands += argv_commands(image["entrypoint"] + (image["cmd"] or []), where)
    check_commands(cli, where, commands)
    # The entry point script.
    ep = os.path.join(root, "deploy/docker/docker-entrypoint.sh")
    if os.path.isfile(ep) and not re.search(r'^exec /app/bzzz "\$@"\s*$', open(ep).read(), re.M):
        fail(rel(root, ep), 'does not end in exec /app/bzzz "$@"')
    # The health check's port is the probe listener of the image's configuration.
    cfg = os.path.join(root, "deploy/docker/config.yaml")
    if os.path.isfile(cfg):
        validator.file(rel(root, cfg), cfg)
        c = yaml.safe_load(open(cfg)) or {}
        hl = str(c.get("http", {}).get("health_listen", ""))
        if image["healthcheck"] and hl.rsplit(":", 1)[-1] not in " ".join(image["healthcheck"]):
            fail(where, "the HEALTHCHECK does not use the probe listener of config.yaml (%s)" % hl)
    # .dockerignore: keeps build trees and data out, lets the sources in.
    di = os.path.join(root, ".dockerignore")
    if not os.path.isfile(di):
        fail(".dockerignore", "missing")
    else:
        pats = [l.strip() for l in open(di) if l.strip() and not l.startswith("#")]
        def ignored(p):
            return any(fnmatch.fnmatch(p, pat.rstrip("/")) or fnmatch.fnmatch(p.split("/")[0], pat.rstrip("/"))
                       for pat in pats if not pat.startswith("!"))
        for p in ("build", "build-asan", ".git", "data"):
            if not ignored(p):
                fail(".dockerignore", "does not exclude %s" % p)
        for p in ("CMakeLists.txt", "src", "cmake", "bench/p2p/CMakeLists.txt", "deploy/docker/docker-entrypoint.sh",
                  "deploy/docker/config.yaml"):
            if ignored(p):
                fail(".dockerignore", "excludes %s, which the build needs" % p)
    ok("%s: multi-stage debian:12, non-root, health check, volume, ports" % where)
    return image


def check_entrypoint_runs(root, binary, validator, work):
    """The entry point script for real: a *_FILE secret reaches bzzz."""
    ep = os.path.join(root, "deploy/docker/docker-entrypoint.sh")
    where = rel(root, ep)
    if not os.path.isfile(ep):
        fail(where, "missing")
        return
    copy = os.path.join(work, "entrypoint.sh")
    with open(copy, "w") as f:
        f.write(open(ep).read().replace("/app/bzzz", binary))
    secret = os.path.join(work, "join-token")
    with open(secret, "w") as f:
        f.write(validator.token() + "\n")
    r = subprocess.run(["sh", copy, "config", "show", "--format", "json"], capture_output=True, text=True, timeout=20,
                       env=clean_env({"BZZZ_JOIN_TOKEN_FILE": secret}))
    try:
        shown = json.loads(r.stdout)["p2p"]["join_token"]
    except (ValueError, KeyError):
        shown = None
    if r.returncode != 0 or shown != "***":
        fail(where, "with BZZZ_JOIN_TOKEN_FILE, bzzz did not get p2p.join_token (exit %d, shown %r): %s"
             % (r.returncode, shown, r.stderr.strip()))
    else:
        ok("%s: BZZZ_JOIN_TOKEN_FILE reaches bzzz as p2p.join_token" % where)


def read_image(root):
    """ENTRYPOINT and CMD of the Dockerfile's last stage, unchecked."""
    image = {"entrypoint": None, "cmd": None}
    path = os.path.join(root, "deploy/docker/Dockerfile")
    if not os.path.isfile(path):
        return image
    for w, r in dockerfile_instructions(open(path).read()):
        if w == "FROM":
            image = {"entrypoint": None, "cmd": None}
        elif w == "ENTRYPOINT":
            image["entrypoint"] = exec_form(r)
        elif w == "CMD":
            image["cmd"] = exec_form(r)
    return image


def image_argv(image, entrypoint, command):
    """The argument vector of a container: compose/swarm semantics."""
    ep = as_list(entrypoint) if entrypoint is not None else (image or {}).get("entrypoint") or []
    if command is not None:
        cmd = as_list(command)
    elif entrypoint is not None:
        cmd = []
    else:
        cmd = (image or {}).get("cmd") or []
    return ep + cmd


# --------------------------------------------------------------------------
# Compose and swarm.
# --------------------------------------------------------------------------

def interpolate(value):
    """Compose's ${NAME:-default} and ${NAME}, with the defaults."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def uses_bzzz_image(svc):
    b = svc.get("build")
    if isinstance(b, dict) and "deploy/docker/Dockerfile" in str(b.get("dockerfile", "")):
        return True
    return "bzzz" in interpolate(svc.get("image", "")).split(":")[0].split("/")[-1]


def service_mounts(svc):
    out = []
    for v in svc.get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            out.append({"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0],
                        "type": "bind" if parts[0].startswith((".", "/")) else "volume"})
        else:
            out.append(v)
    return out


def compose_config_file(svc, base_dir, configs=None):
    """The local file mounted at /app/config/config.yaml, if any."""
    for m in service_mounts(svc):
        if m.get("target") == "/app/config/config.yaml" and m.get("type") == "bind":
            return os.path.normpath(os.path.join(base_dir, m["source"]))
    for c in svc.get("configs", []) or []:
        if isinstance(c, dict) and c.get("target") == "/app/config/config.yaml" and configs:
            f = (configs.get(c.get("source")) or {}).get("file")
            if f:
                return os.path.normpath(os.path.join(base_dir, f))
    return None


def check_bzzz_services(root, cli, validator, image, where, doc, base_dir, configs=None, scripts=None):
    for name, svc in (doc.get("services") or {}).items():
        if not uses_bzzz_image(svc):
            continue
        argv = image_argv(image, svc.get("entrypoint"), svc.get("command"))
        env = env_dict(svc.get("environment"))
        env = {k: substitute(v, SAMPLE) for k, v in env.items()}
        cfg = compose_config_file(svc, base_dir, configs)
        commands = argv_commands([substitute(a, SAMPLE) for a in argv], "%s: service %s" % (where, name), scripts)

        def validate(args, cfg=cfg, env=env, name=name):
            validator.serve("%s: service %s" % (where, name), args, env, cfg)

        check_commands(cli, where, commands, validate)
        hc = (svc.get("healthcheck") or {})
        if not hc.get("disable"):
            check_commands(cli, where, healthcheck_commands(hc.get("test")))


def check_compose(root, cli, validator, image):
    path = os.path.join(root, "deploy/compose/compose.yml")
    where = rel(root, path)
    docs = load_yaml_docs(path, where)
    if not docs:
        fail(where, "missing or empty")
        return
    doc = docs[0]
    base = os.path.dirname(path)
    services = doc.get("services") or {}
    expected = ["bzzz-init", "dht-bootstrap", "bzzz-1", "bzzz-2", "bzzz-3", "prometheus", "alertmanager", "grafana"]
    for s in expected:
        if s not in services:
            fail(where, "no service %s" % s)
    for s in services:
        if re.search(r"postgres|redis", s):
            fail(where, "service %s: the PostgreSQL and Redis backends are not built; only SQLite exists" % s)
    # Files mounted from the repository exist.
    for name, svc in services.items():
        for m in service_mounts(svc):
            if m.get("type") == "bind" and not os.path.exists(os.path.normpath(os.path.join(base, m["source"]))):
                fail(where, "service %s mounts %s, which does not exist" % (name, m["source"]))
            if m.get("type") == "volume" and m.get("source") not in (doc.get("volumes") or {}):
                fail(where, "service %s uses the undeclared volume %s" % (name, m.get("source")))
        for p in svc.get("ports", []) or []:
            if not str(p).startswith("127.0.0.1:"):
                fail(where, "service %s publishes %s beyond the host's loopback" % (name, p))
        if uses_bzzz_image(svc) and "bzzz-internal" not in (svc.get("networks") or []):
            fail(where, "service %s is not on the network bzzz-internal" % name)
    data = {}
    for name, svc in services.items():
        if not uses_bzzz_image(svc):
            continue
        vols = [m["source"] for m in service_mounts(svc) if m.get("target") == "/app/data"]
        if not vols:
            fail(where, "service %s has no volume at /app/data" % name)
        elif name != "bzzz-init":
            if vols[0] in data.values():
                fail(where, "services %s share the data volume %s" % (name, vols[0]))
            data[name] = vols[0]
        if name not in ("bzzz-init",) and \
                (svc.get("depends_on") or {}).get("bzzz-init", {}).get("condition") != "service_completed_successfully":
            fail(where, "service %s does not wait for bzzz-init to complete" % name)
    # Membership: bzzz-init founds in bzzz-1's volume; the others join with its tokens.
    init_vols = {m.get("target"): m.get("source") for m in service_mounts(services.get("bzzz-init", {}))}
    if init_vols.get("/app/data") != data.get("bzzz-1"):
        fail(where, "bzzz-init does not found the cluster in bzzz-1's data volume")
    for name in ("bzzz-2", "bzzz-3", "dht-bootstrap"):
        svc = services.get(name, {})
        tok = env_dict(svc.get("environment")).get("BZZZ_JOIN_TOKEN_FILE", "")
        mounts = {m.get("target"): m.get("source") for m in service_mounts(svc)}
        if not tok or os.path.dirname(tok) not in mounts or mounts[os.path.dirname(tok)] != init_vols.get(os.path.dirname(tok)):
            fail(where, "service %s does not read a join token written by bzzz-init (BZZZ_JOIN_TOKEN_FILE)" % name)
    script = None
    for m in service_mounts(services.get("bzzz-init", {})):
        if m.get("type") == "bind" and m.get("source", "").endswith(".sh"):
            script = os.path.normpath(os.path.join(base, m["source"]))
            scripts = {m["target"]: script}
    if script is None:
        fail(where, "bzzz-init mounts no script")
        scripts = {}
    else:
        s = open(script).read()
        for needle, what in (("cluster init", "founds the cluster"), ("--role admin-capable", "signs node tokens"),
                             ("--role bootstrap", "signs bootstrap tokens")):
            if needle not in s:
                fail(rel(root, script), "never %s (%s)" % (what, needle))
    # Prometheus scrapes every bzzz container's probe listener.
    prom = os.path.join(base, "prometheus.yml")
    if os.path.isfile(prom):
        p = yaml.safe_load(open(prom))
        targets = set()
        for job in p.get("scrape_configs", []):
            if job.get("job_name") == "bzzz":
                for sc in job.get("static_configs", []):
                    targets.update(sc.get("targets", []))
        for name, svc in services.items():
            if uses_bzzz_image(svc) and name != "bzzz-init" and "%s:8081" % name not in targets:
                fail(rel(root, prom), "job bzzz does not scrape %s:8081" % name)
    check_grafana_mounts(root, where, services.get("grafana", {}), base)
    check_bzzz_services(root, cli, validator, image, where, doc, base, scripts=scripts)
    ok("%s: %d services, cluster founded by bzzz-init, joins, monitoring" % (where, len(services)))


def check_grafana_mounts(root, where, svc, base):
    provider = yaml.safe_load(open(os.path.join(root, "deploy/grafana/provisioning/dashboards/bzzz.yml")))
    dash_path = provider["providers"][0]["options"]["path"]
    targets = {m.get("target"): m.get("source") for m in service_mounts(svc)}
    if os.path.normpath(os.path.join(base, targets.get(dash_path, "/nonexistent"))) != os.path.join(root, "deploy/grafana/dashboards"):
        fail(where, "grafana: deploy/grafana/dashboards is not mounted at the provider's path %s" % dash_path)


SWARM_BOOTSTRAPS = {"dht-bootstrap-walnut": 9101, "dht-bootstrap-ironwood": 9102, "dht-bootstrap-acacia": 9103}


def check_swarm(root, cli, validator, image):
    path = os.path.join(root, "deploy/swarm/bzzz-stack.yml")
    where = rel(root, path)
    docs = load_yaml_docs(path, where)
    if not docs:
        fail(where, "missing or empty")
        return
    doc, base = docs[0], os.path.dirname(path)
    services = doc.get("services") or {}
    for s in ["bzzz-agent"] + list(SWARM_BOOTSTRAPS):
        if s not in services:
            fail(where, "no service %s (the runbook's name)" % s)
    for s in services:
        if re.search(r"postgres|redis", s):
            fail(where, "service %s: the PostgreSQL and Redis backends are not built; only SQLite exists" % s)
    net = (doc.get("networks") or {}).get("bzzz-internal") or {}
    if net.get("driver") != "overlay" or net.get("name") != "bzzz-internal" or not net.get("attachable"):
        fail(where, "network bzzz-internal must be an attachable overlay network named bzzz-internal")
    for name, svc in services.items():
        if "bzzz-internal" not in (svc.get("networks") or []):
            fail(where, "service %s is not on bzzz-internal" % name)
        for sec in svc.get("secrets", []) or []:
            sname = sec if isinstance(sec, str) else sec.get("source")
            if sname not in (doc.get("secrets") or {}):
                fail(where, "service %s uses the undeclared secret %s" % (name, sname))
        for c in svc.get("configs", []) or []:
            if c.get("source") not in (doc.get("configs") or {}):
                fail(where, "service %s uses the undeclared config %s" % (name, c.get("source")))
        for m in service_mounts(svc):
            if m.get("type") == "volume" and m.get("source") not in (doc.get("volumes") or {}):
                fail(where, "service %s uses the undeclared volume %s" % (name, m.get("source")))
        env = env_dict(svc.get("environment"))
        for k, v in env.items():
            if k.endswith("_FILE") and v.startswith("/run/secrets/"):
                if os.path.basename(v) not in [s if isinstance(s, str) else s.get("target", s.get("source"))
                                               for s in svc.get("secrets", []) or []]:
                    fail(where, "service %s reads %s from %s, a secret it does not mount" % (name, k, v))
        dep = svc.get("deploy") or {}
        uc = dep.get("update_config") or {}
        for key, want in (("parallelism", None), ("delay", None), ("failure_action", "rollback"), ("order", "stop-first")):
            if key not in uc or (want and uc[key] != want):
                fail(where, "service %s: update_config.%s must be %s" % (name, key, want or "set"))
        if not dep.get("rollback_config"):
            fail(where, "service %s has no rollback_config" % name)
        if not compose_config_file(svc, base, doc.get("configs")):
            fail(where, "service %s gets no configuration at /app/config/config.yaml" % name)
    agent = services.get("bzzz-agent", {})
    dep = agent.get("deploy") or {}
    if dep.get("mode", "replicated") != "replicated" or int(dep.get("replicas", 0)) < 1:
        fail(where, "bzzz-agent must be replicated")
    if (dep.get("placement") or {}).get("max_replicas_per_node") != 1:
        fail(where, "bzzz-agent: placement.max_replicas_per_node must be 1 (one data volume per host)")
    if "BZZZ_JOIN_TOKEN_FILE" not in env_dict(agent.get("environment")):
        fail(where, "bzzz-agent has no join token (BZZZ_JOIN_TOKEN_FILE)")
    for name, port in SWARM_BOOTSTRAPS.items():
        svc = services.get(name) or {}
        argv = image_argv(image, svc.get("entrypoint"), svc.get("command"))
        if "dht-bootstrap" not in argv or "--port" not in argv or argv[argv.index("--port") + 1] != str(port):
            fail(where, "%s does not run dht-bootstrap --port %d" % (name, port))
        ports = svc.get("ports") or []
        if not any(isinstance(p, dict) and p.get("published") == port and p.get("protocol") == "udp" for p in ports):
            fail(where, "%s does not publish %d/udp" % (name, port))
        if (svc.get("deploy") or {}).get("endpoint_mode") != "dnsrr":
            fail(where, "%s: endpoint_mode must be dnsrr (its UDP peers must reach the task itself)" % name)
        if "BZZZ_JOIN_TOKEN_FILE" not in env_dict(svc.get("environment")):
            fail(where, "%s has no join token (BZZZ_JOIN_TOKEN_FILE)" % name)
    for cname, c in (doc.get("configs") or {}).items():
        if c.get("file") and not os.path.isfile(os.path.join(base, c["file"])):
            fail(where, "config %s: no file %s" % (cname, c["file"]))
        elif c.get("file"):
            validator.file("%s (config %s)" % (where, cname), os.path.join(base, c["file"]))
    init = os.path.join(base, "init-cluster.sh")
    if not os.path.isfile(init):
        fail(rel(root, init), "missing")
    else:
        s = open(init).read()
        for sname in (doc.get("secrets") or {}):
            if "docker secret create %s" % sname not in s:
                fail(rel(root, init), "does not create the secret %s" % sname)
        if "bzzz.founder=true" not in s or "bzzz cluster init" not in s:
            fail(rel(root, init), "does not found the cluster and label the founder's node")
    check_bzzz_services(root, cli, validator, image, where, doc, base, configs=doc.get("configs"))
    # The monitoring stack.
    mpath = os.path.join(base, "monitoring-stack.yml")
    mwhere = rel(root, mpath)
    mdocs = load_yaml_docs(mpath, mwhere)
    if mdocs:
        m = mdocs[0]
        for s in ("prometheus", "alertmanager", "grafana"):
            if s not in (m.get("services") or {}):
                fail(mwhere, "no service %s (the runbook's bzzz-monitoring_%s)" % (s, s))
        if not ((m.get("networks") or {}).get("bzzz-internal") or {}).get("external"):
            fail(mwhere, "does not join the external network bzzz-internal")
        for cname, c in (m.get("configs") or {}).items():
            if not os.path.isfile(os.path.join(base, c.get("file", ""))):
                fail(mwhere, "config %s: no file %s" % (cname, c.get("file")))
        prom = yaml.safe_load(open(os.path.join(base, "prometheus.yml")))
        names = set()
        for job in prom.get("scrape_configs", []):
            for sd in job.get("dns_sd_configs", []) or []:
                if job.get("job_name") == "bzzz":
                    names.update(sd.get("names", []))
        for sname in services:
            if "tasks.bzzz-v2_%s" % sname not in names:
                fail("deploy/swarm/prometheus.yml", "job bzzz does not discover tasks.bzzz-v2_%s" % sname)
    ok("%s: services, bzzz-internal, secrets, configs, rolling updates; monitoring stack" % where)


# --------------------------------------------------------------------------
# Kubernetes.
# --------------------------------------------------------------------------

def k8s_argv(image, container):
    if container.get("command") is not None:
        return as_list(container["command"]) + as_list(container.get("args"))
    ep = (image or {}).get("entrypoint") or []
    if container.get("args") is not None:
        return ep + as_list(container["args"])
    return ep + ((image or {}).get("cmd") or [])


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_k8s(root, cli, validator, image, work):
    kdir = os.path.join(root, "deploy/k8s")
    kust_path = os.path.join(kdir, "kustomization.yaml")
    kust = (load_yaml_docs(kust_path, rel(root, kust_path)) or [{}])[0]
    files = sorted(glob.glob(os.path.join(kdir, "*.yaml")))
    resources = kust.get("resources") or []
    for f in files:
        if os.path.basename(f) != "kustomization.yaml" and os.path.basename(f) not in resources:
            fail(rel(root, kust_path), "does not list %s" % os.path.basename(f))
    for r in resources:
        if not os.path.isfile(os.path.join(kdir, r)):
            fail(rel(root, kust_path), "lists %s, which does not exist" % r)
    objs = []
    for f in files:
        if os.path.basename(f) == "kustomization.yaml":
            continue
        for d in load_yaml_docs(f, rel(root, f)):
            for key in ("apiVersion", "kind", "metadata"):
                if key not in d:
                    fail(rel(root, f), "an object without %s" % key)
            objs.append((rel(root, f), d))
    by_kind = {}
    for where, d in objs:
        by_kind.setdefault(d.get("kind"), {})[d["metadata"]["name"]] = (where, d)
    for kind in ("Namespace", "ConfigMap", "Secret", "StatefulSet", "Service", "Ingress", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget"):
        if kind not in by_kind:
            fail("deploy/k8s", "no %s" % kind)
    configmaps = {n: d for n, (_, d) in by_kind.get("ConfigMap", {}).items()}
    secrets = {n: d for n, (_, d) in by_kind.get("Secret", {}).items()}
    services = {n: d for n, (_, d) in by_kind.get("Service", {}).items()}
    # The Secret's values are placeholders, marked as such and refused by bzzz.
    for n, (where, d) in by_kind.get("Secret", {}).items():
        text = open(os.path.join(root, where)).read()
        if "PLACEHOLDER" not in text:
            fail(where, "secret %s: placeholder values must be marked PLACEHOLDER" % n)
    # The configuration and the scripts of the ConfigMaps.
    cfg_text = (configmaps.get("bzzz-config") or {}).get("data", {}).get("config.yaml")
    cfg_file = None
    if cfg_text is None:
        fail("deploy/k8s/configmap.yaml", "ConfigMap bzzz-config has no config.yaml")
    else:
        cfg_file = os.path.join(work, "k8s-config.yaml")
        open(cfg_file, "w").write(cfg_text)
        validator.file("deploy/k8s/configmap.yaml (bzzz-config/config.yaml)", cfg_file)
    scripts = {}
    for n, cm in configmaps.items():
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".sh"):
                p = os.path.join(work, "k8s-%s-%s" % (n, key))
                open(p, "w").write(text)
                r = subprocess.run(["sh", "-n", p], capture_output=True, text=True)
                if r.returncode != 0:
                    fail("deploy/k8s/configmap.yaml", "%s/%s: sh -n: %s" % (n, key, r.stderr.strip()))
                check_commands(cli, "deploy/k8s/configmap.yaml", shell_commands(text))
                scripts[n] = {key}
    health_port = None
    if cfg_text:
        health_port = str((yaml.safe_load(cfg_text).get("http") or {}).get("health_listen", "")).rsplit(":", 1)[-1]
    # Workloads.
    for n, (where, ss) in by_kind.get("StatefulSet", {}).items():
        spec = ss.get("spec", {})
        tpl = spec.get("template", {})
        pod_labels = tpl.get("metadata", {}).get("labels", {})
        if not labels_match(spec.get("selector", {}).get("matchLabels"), pod_labels):
            fail(where, "StatefulSet %s: the selector does not match the pod labels" % n)
        svc = services.get(spec.get("serviceName"))
        if not svc or svc["spec"].get("clusterIP") != "None":
            fail(where, "StatefulSet %s: serviceName %s is not a headless Service" % (n, spec.get("serviceName")))
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        pspec = tpl.get("spec", {})
        sc = pspec.get("securityContext", {})
        if not sc.get("runAsNonRoot") or not sc.get("runAsUser"):
            fail(where, "StatefulSet %s: pods must run as non-root (runAsNonRoot, runAsUser)" % n)
        volumes = {v["name"]: v for v in pspec.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                fail(where, "StatefulSet %s: volume %s uses the missing ConfigMap %s" % (n, v["name"], v["configMap"]["name"]))
        for c in pspec.get("initContainers", []) + pspec.get("containers", []):
            cname = "%s/%s" % (n, c["name"])
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    fail(where, "%s mounts the undefined volume %s" % (cname, m["name"]))
            if mounts.get("/app/data") not in claims:
                fail(where, "%s: /app/data is not on the pod's own PersistentVolumeClaim" % cname)
            env = {}
            for e in c.get("env", []):
                if "valueFrom" in e:
                    ref = e["valueFrom"].get("secretKeyRef") or e["valueFrom"].get("configMapKeyRef")
                    if ref:
                        store = secrets if "secretKeyRef" in e["valueFrom"] else configmaps
                        obj = store.get(ref["name"])
                        keys = set((obj or {}).get("data", {}) or {}) | set((obj or {}).get("stringData", {}) or {})
                        if ref["key"] not in keys:
                            fail(where, "%s: env %s refers to %s/%s, which does not exist" % (cname, e["name"], ref["name"], ref["key"]))
                        env[e["name"]] = "0123456789abcdef0123456789abcdef"
                    else:
                        env[e["name"]] = "10.1.2.3" if "podIP" in str(e) else "bzzz-1"
                else:
                    env[e["name"]] = substitute(str(e.get("value", "")), SAMPLE)
            argv = [substitute(a, SAMPLE) for a in k8s_argv(image, c)]
            sh_scripts = {}
            for path_, vname in mounts.items():
                cm = (volumes.get(vname) or {}).get("configMap", {}).get("name")
                for key in scripts.get(cm, ()):
                    sh_scripts[os.path.join(path_, key)] = key
            commands = argv_commands(argv, "%s: %s" % (where, cname), sh_scripts)
            is_bzzz_main = bool(commands)

            def validate(args, env=env, cname=cname):
                validator.serve("%s: %s" % (where, cname), args, env, cfg_file)

            check_commands(cli, where, commands, validate)
            for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.get(probe_name)
                if probe and "exec" in probe:
                    check_commands(cli, where, argv_commands(probe["exec"]["command"], where))
            if c in pspec.get("containers", []) and is_bzzz_main:
                ports = {p["name"]: p for p in c.get("ports", [])}
                for probe_name, paths in (("livenessProbe", ("/health/live",)), ("readinessProbe", ("/health/ready",)),
                                          ("startupProbe", ("/health/live", "/health/ready"))):
                    probe = c.get(probe_name)
                    if not probe:
                        fail(where, "%s has no %s" % (cname, probe_name))
                        continue
                    hg = probe.get("httpGet")
                    if hg:
                        if hg.get("path") not in paths:
                            fail(where, "%s: %s path %s is not %s" % (cname, probe_name, hg.get("path"), " or ".join(paths)))
                        port = ports.get(hg.get("port"), {}).get("containerPort", hg.get("port"))
                        if str(port) != health_port:
                            fail(where, "%s: %s on port %s, but the probe listener is :%s" % (cname, probe_name, port, health_port))
                if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                    fail(where, "%s: allowPrivilegeEscalation must be false" % cname)
    nodes = by_kind.get("StatefulSet", {}).get("bzzz")
    if not nodes:
        fail("deploy/k8s", "no StatefulSet bzzz")
    else:
        node_labels = nodes[1]["spec"]["template"]["metadata"]["labels"]
        # Services select pods that exist.
        for n, (where, s) in by_kind.get("Service", {}).items():
            sel = s["spec"].get("selector", {})
            if not any(labels_match(sel, ss["spec"]["template"]["metadata"]["labels"])
                       for _, ss in by_kind.get("StatefulSet", {}).values()):
                fail(where, "Service %s selects no pods" % n)
        if not any(s["spec"].get("clusterIP") != "None" and labels_match(s["spec"].get("selector"), node_labels)
                   for s in services.values()):
            fail("deploy/k8s", "no client Service for the nodes' API")
        # Ingress with TLS onto an existing Service port.
        for n, (where, ing) in by_kind.get("Ingress", {}).items():
            tls = ing["spec"].get("tls") or []
            if not tls or not all(t.get("secretName") and t.get("hosts") for t in tls):
                fail(where, "Ingress %s: no TLS section with hosts and secretName" % n)
            hosts = {h for t in tls for h in t.get("hosts", [])}
            for rule in ing["spec"].get("rules", []):
                if rule.get("host") not in hosts:
                    fail(where, "Ingress %s: host %s is not covered by TLS" % (n, rule.get("host")))
                for p in rule.get("http", {}).get("paths", []):
                    b = p["backend"]["service"]
                    s = services.get(b["name"])
                    if not s or not any(pp.get("name") == b["port"].get("name") or pp.get("port") == b["port"].get("number")
                                        for pp in s["spec"]["ports"]):
                        fail(where, "Ingress %s: backend %s:%s does not exist" % (n, b["name"], b["port"]))
        # HPA on the StatefulSet, with a slow scale-down.
        for n, (where, h) in by_kind.get("HorizontalPodAutoscaler", {}).items():
            if h.get("apiVersion") != "autoscaling/v2":
                fail(where, "HPA %s: use autoscaling/v2" % n)
            ref = h["spec"].get("scaleTargetRef", {})
            if ref.get("kind") != "StatefulSet" or ref.get("name") not in by_kind.get("StatefulSet", {}):
                fail(where, "HPA %s scales %s/%s, not a StatefulSet of this directory" % (n, ref.get("kind"), ref.get("name")))
            if int(h["spec"].get("minReplicas", 1)) < 3:
                fail(where, "HPA %s: minReplicas below 3 cannot keep an electorate majority through a loss" % n)
            down = (h["spec"].get("behavior") or {}).get("scaleDown") or {}
            if not down.get("policies") or any(p.get("type") != "Pods" or p.get("value") != 1 for p in down["policies"]):
                fail(where, "HPA %s: scale down one pod at a time (behavior.scaleDown.policies)" % n)
            for m in h["spec"].get("metrics", []):
                if m.get("type") == "Resource":
                    res = m["resource"]["name"]
                    cont = nodes[1]["spec"]["template"]["spec"]["containers"][0]
                    if res not in (cont.get("resources", {}).get("requests") or {}):
                        fail(where, "HPA %s scales on %s, which the pods do not request" % (n, res))
        # PDBs cover the nodes.
        pdbs = by_kind.get("PodDisruptionBudget", {})
        if not any(labels_match(p["spec"].get("selector", {}).get("matchLabels"), node_labels) for _, p in pdbs.values()):
            fail("deploy/k8s", "no PodDisruptionBudget selects the nodes")
        for n, (where, p) in pdbs.items():
            if "maxUnavailable" not in p["spec"] and "minAvailable" not in p["spec"]:
                fail(where, "PDB %s sets neither maxUnavailable nor minAvailable" % n)
    if not QUICK and shutil.which("kubectl"):
        r = subprocess.run(["kubectl", "kustomize", kdir], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail("deploy/k8s", "kubectl kustomize: %s" % r.stderr.strip())
        else:
            ok("deploy/k8s: kubectl kustomize builds %d objects" % len([d for d in yaml.safe_load_all(r.stdout) if d]))
    ok("deploy/k8s: %d objects: StatefulSets, Services, Ingress with TLS, HPA, PDB, ConfigMaps, Secret" % len(objs))


def check_placeholder_token(root, binary, work):
    """The Secret's placeholder admin token must stop bzzz serve."""
    s = yaml.safe_load(open(os.path.join(root, "deploy/k8s/secret.yaml")))
    value = (s.get("stringData") or {}).get("admin-token")
    if value is None:
        fail("deploy/k8s/secret.yaml", "no admin-token")
        return
    d = os.path.join(work, "placeholder-node")
    try:
        r = subprocess.run([binary, "serve", "--data-dir", d, "--http-listen", "127.0.0.1:0", "--p2p-listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=15, env=clean_env({"BZZZ_ADMIN_TOKEN": value}))
        refused = r.returncode != 0 and "too weak" in r.stderr
    except subprocess.TimeoutExpired:
        refused = False
    if not refused:
        fail("deploy/k8s/secret.yaml", "bzzz serve does not refuse the placeholder admin-token %r" % value)
    else:
        ok("deploy/k8s/secret.yaml: bzzz serve refuses the placeholder admin-token")


# --------------------------------------------------------------------------
# systemd.
# --------------------------------------------------------------------------

def unit_directives(text):
    out = []
    section = None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("["):
            section = s.strip("[]")
            continue
        k, _, v = s.partition("=")
        out.append((section, k.strip(), v.strip()))
    return out


def check_systemd(root, cli, validator, work):
    sdir = os.path.join(root, "deploy/systemd")
    units = sorted(glob.glob(os.path.join(sdir, "*.service")))
    if not any(os.path.basename(u) == "bzzz.service" for u in units):
        fail("deploy/systemd", "no bzzz.service")
    vdir = os.path.join(work, "systemd")
    os.makedirs(vdir, exist_ok=True)
    copies = []
    for u in units:
        where = rel(root, u)
        text = open(u).read()
        d = unit_directives(text)
        svc = {k: v for s, k, v in d if s == "Service"}
        allv = [(k, v) for s, k, v in d if s == "Service"]
        if not svc.get("User") or svc.get("User") in ("root", "0"):
            fail(where, "User= must name a non-root user")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict")):
            if svc.get(key) != want:
                fail(where, "%s=%s expected" % (key, want))
        for key in ("StateDirectory", "ReadWritePaths", "ExecStart", "TimeoutStopSec"):
            if not svc.get(key):
                fail(where, "no %s=" % key)
        m = re.match(r"(\d+)s?$", svc.get("TimeoutStopSec", ""))
        if m and int(m.group(1)) <= 30:
            fail(where, "TimeoutStopSec=%s leaves no room for operations.shutdown_timeout (30 s)" % svc["TimeoutStopSec"])
        env = {}
        for k, v in allv:
            if k == "Environment":
                for item in shlex.split(v):
                    a, _, b = item.partition("=")
                    env[a] = b
        execs = [(k, v) for k, v in allv if k.startswith("Exec")]
        runs_tasks = False
        for k, v in execs:
            line = v.lstrip("-@:+!")
            line = substitute(line, {"%i": "9101"})
            line = re.sub(r"\$\{(\w+)\}", lambda mm: env.get(mm.group(1), "x"), line)
            argv = shlex.split(line)
            cmds = argv_commands(argv, where)
            check_commands(cli, where, cmds, lambda args, where=where: validator.serve(
                where, args, {}, None, {"/etc/bzzz/bzzz.yaml": os.path.join(sdir, "bzzz.yaml")}))
            runs_tasks = runs_tasks or any(c[:1] == ["serve"] for c in cmds)
        if runs_tasks:
            # bubblewrap needs user namespaces and a fully visible /proc.
            for key, bad in (("RestrictNamespaces", None), ("PrivateUsers", None), ("SystemCallFilter", None),
                             ("ProtectKernelTunables", None), ("ProtectKernelLogs", None), ("ProtectProc", None),
                             ("ProcSubset", None), ("MemoryDenyWriteExecute", None)):
                if key in svc and svc[key] not in ("no", "false", "default", ""):
                    fail(where, "%s=%s breaks the bubblewrap sandbox of the command and llm executors" % (key, svc[key]))
            if "AF_NETLINK" not in svc.get("RestrictAddressFamilies", "AF_NETLINK"):
                fail(where, "RestrictAddressFamilies= without AF_NETLINK breaks the sandbox's loopback setup")
        name = os.path.basename(u)
        if name.endswith("@.service"):
            name = name.replace("@.service", "@9101.service")
        copy = os.path.join(vdir, name)
        with open(copy, "w") as f:
            f.write(re.sub(r"(?<=[= ])/usr/local/bin/bzzz\b", cli.binary, text))
        copies.append((where, copy))
    for where, copy in copies:
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", copy], capture_output=True, text=True, timeout=60,
                           cwd=vdir)
        out = "\n".join(l for l in (r.stdout + r.stderr).splitlines() if l.strip())
        if r.returncode != 0 or out:
            fail(where, "systemd-analyze verify: %s" % (out or "exit %d" % r.returncode))
        else:
            ok("%s: systemd-analyze verify" % where)
    for y in glob.glob(os.path.join(sdir, "*.yaml")):
        validator.file(rel(root, y), y)


# --------------------------------------------------------------------------
# docs/deploy.md: bzzz commands in its shell blocks.
# --------------------------------------------------------------------------

def check_doc(root, cli):
    path = os.path.join(root, "docs/deploy.md")
    text = open(path).read()
    for block in re.findall(r"```(?:sh|bash|shell)?\n(.*?)```", text, re.S):
        cmds = [c for c in shell_commands(block) if c]
        check_commands(cli, "docs/deploy.md", cmds)


SECTIONS = ("yaml", "scripts", "docker", "compose", "swarm", "k8s", "systemd", "doc")


def main():
    global QUICK
    ap = argparse.ArgumentParser()
    ap.add_argument("--bzzz", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    ap.add_argument("--quick", action="store_true", help="skip the checks that do not read deploy/ (dpkg, kubectl, live runs)")
    ap.add_argument("--help-cache", help="a file to keep the parsed --help outputs in, for the next run")
    a = ap.parse_args()
    QUICK = a.quick
    only = set(a.only or SECTIONS)
    root = os.path.abspath(a.root)
    cli = Cli(os.path.abspath(a.bzzz), a.help_cache)
    if cli.help([]) is None or "serve" not in cli.help([])["subcommands"]:
        fail(a.bzzz, "`bzzz --help` does not list serve")
        return 1
    validator = Validator(cli.binary, a.work, cli)
    if "yaml" in only:
        n = 0
        for path in sorted(glob.glob(os.path.join(root, "deploy/**/*.y*ml"), recursive=True)):
            load_yaml_docs(path, rel(root, path))
            n += 1
        ok("%d YAML files of deploy/ parse" % n)
    if "scripts" in only:
        for sh in sorted(glob.glob(os.path.join(root, "deploy/**/*.sh"), recursive=True)):
            r = subprocess.run(["sh", "-n", sh], capture_output=True, text=True)
            if r.returncode != 0:
                fail(rel(root, sh), "sh -n: %s" % r.stderr.strip())
            check_commands(cli, rel(root, sh), shell_commands(open(sh).read()))
    image = read_image(root)
    if "docker" in only:
        check_dockerfile(root, cli, validator)
        if not QUICK:
            check_entrypoint_runs(root, cli.binary, validator, a.work)
    if "compose" in only:
        check_compose(root, cli, validator, image)
    if "swarm" in only:
        check_swarm(root, cli, validator, image)
    if "k8s" in only:
        check_k8s(root, cli, validator, image, a.work)
        if not QUICK:
            check_placeholder_token(root, cli.binary, a.work)
    if "systemd" in only:
        check_systemd(root, cli, validator, a.work)
    if "doc" in only:
        check_doc(root, cli)
    # Each asset yields bzzz commands: an extraction that finds nothing fails.
    expected = {"docker": ["deploy/docker/Dockerfile"],
                "compose": ["deploy/compose/compose.yml"],
                "scripts": ["deploy/compose/init-cluster.sh", "deploy/swarm/init-cluster.sh"],
                "swarm": ["deploy/swarm/bzzz-stack.yml"],
                "k8s": ["deploy/k8s/statefulset.yaml", "deploy/k8s/bootstrap.yaml", "deploy/k8s/configmap.yaml"],
                "systemd": ["deploy/systemd/bzzz.service", "deploy/systemd/bzzz-bootstrap@.service"]}
    for section, files in expected.items():
        for where in files if section in only else []:
            if not checked_commands.get(where):
                fail(where, "no bzzz command line found in it")
    cli.save()
    total = sum(checked_commands.values())
    ok("%d bzzz command lines in %d files checked against `bzzz ... --help`: %s"
       % (total, len(checked_commands), ", ".join("%s %d" % kv for kv in sorted(checked_commands.items()))))
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
