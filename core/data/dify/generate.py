#!/usr/bin/env python3
"""Derives envseal's Dify catalogue from Dify's own deployment files.

Usage: generate.py ENV_EXAMPLE DOCKER_COMPOSE ROOT_SECRETS OUTSIDE_SECRETS > secrets.tsv

ENV_EXAMPLE and DOCKER_COMPOSE are Dify's single-file layout (`docker/.env.example`,
`docker/docker-compose.yaml`); ROOT_SECRETS and OUTSIDE_SECRETS list the secret
variables of the split layout (`docker/.env.example` and `docker/envs/**`, compose-only
and code-only secrets) as `NAME=default` lines. Writes one record per line,
tab-separated:

    secret  NAME                  a variable Dify treats as a secret
    default NAME  VALUE           a value Dify ships for NAME (.env.example or compose)
    alias   SERVICE NAME SOURCE   in compose service SERVICE, NAME is set from ${SOURCE}
    uses    SERVICE NAME          compose gives SERVICE the secret NAME

Hand-written rules (required variables, linked values, templates, chart names) live
in `rules.tsv` next to this file; they are not generated.
"""
import re
import sys

SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|_KEY$|_KEY_ID$|API_KEY|_TOKEN$|CREDENTIALS|SENTRY_DSN$|"
    r"CONNECTION_STRING$|ALLOWED_KEYS$|ACCESS_KEY|SECRET_ID$|^REDISCLI_AUTH$|^ORACLE_PWD$)"
)
# Look-alikes that are configuration: prefixes, durations, switches, paths, names.
CONFIG_SUFFIX = re.compile(
    r"(_PREFIX|_EXPIRE_MINUTES|_EXPIRY_MINUTES|_EXPIRE_DAYS|_ENABLED|_TYPE|_PATH|"
    r"_LOCATION|_FILE|_MODE|_VERSION|_LENGTH|_TIMEOUT|_URL|_HOST|_PORT|_NAME|_REGION)$"
)
# URLs that carry a password in Dify's defaults.
SECRET_EXTRA = {"CELERY_BROKER_URL", "EVENT_BUS_REDIS_URL", "DIFY_AGENT_REDIS_URL"}
# Matched by the pattern but not secret: a connection string whose default holds no
# credential (the password is COUCHBASE_PASSWORD).
NOT_SECRET = {"COUCHBASE_CONNECTION_STRING"}


def is_secret(name):
    if name in NOT_SECRET:
        return False
    if name in SECRET_EXTRA:
        return True
    return bool(SECRET_NAME.search(name)) and not CONFIG_SUFFIX.search(name)


def unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def plain_default(value):
    """A shipped value, or None when it is empty or itself a reference."""
    value = unquote(value)
    # "{}" is an empty header map, not a credential.
    if not value or value.startswith("${") or value == "{}":
        return None
    return value


def read_secret_list(path, secrets, defaults):
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        m = re.match(r"^# compose default for ([A-Z_][A-Z0-9_]*)\b.*: (\S+)$", line)
        if m:
            defaults.add((m.group(1), m.group(2)))
            continue
        if line.startswith("# hard-coded in compose"):
            for name, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line):
                secrets.add(name)
                defaults.add((name, value))
            continue
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if not m or m.group(1) in NOT_SECRET:
            continue
        secrets.add(m.group(1))
        value = plain_default(m.group(2))
        if value:
            defaults.add((m.group(1), value))


def main(env_example, compose, root_secrets, outside_secrets):
    secrets = set()
    defaults = set()
    aliases = set()
    uses = set()
    for line in open(env_example, encoding="utf-8"):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.rstrip("\n"))
        if not m or not is_secret(m.group(1)):
            continue
        secrets.add(m.group(1))
        value = plain_default(m.group(2))
        if value:
            defaults.add((m.group(1), value))
    read_secret_list(root_secrets, secrets, defaults)
    read_secret_list(outside_secrets, secrets, defaults)

    service = None
    in_services = False
    shared = set()
    merges_shared = set()
    for line in open(compose, encoding="utf-8"):
        line = line.rstrip("\n")
        if re.match(r"^services:\s*$", line):
            in_services = True
            continue
        top = re.match(r"^([A-Za-z_][\w-]*):", line)
        if top:
            in_services = False
            service = "shared" if top.group(1).startswith("x-shared-env") else None
            continue
        svc = re.match(r"^  ([A-Za-z_][\w-]*):\s*$", line)
        if in_services and svc:
            service = svc.group(1)
            continue
        if service and re.match(r"^\s+<<: \*shared-api-worker-env\s*$", line):
            merges_shared.add(service)
            continue
        m = re.match(
            r"^\s+([A-Za-z_][A-Za-z0-9_]*):\s*\$\{([A-Za-z_][A-Za-z0-9_]*):-(.*)\}\s*$", line
        )
        if not m or service is None:
            continue
        name, source, value = m.group(1), m.group(2), unquote(m.group(3))
        if not (is_secret(source) or is_secret(name)):
            continue
        secrets.add(source)
        if service == "shared":
            shared.add(source)
        else:
            uses.add((service, source))
        if name != source:
            secrets.add(name)
            aliases.add((service, name, source))
        if value and not value.startswith("${"):
            defaults.add((source, value))
            defaults.add((name, value))
    for service in merges_shared:
        for name in shared:
            uses.add((service, name))

    print("# Generated by generate.py from Dify's docker/.env.example,")
    print("# docker/docker-compose.yaml and the split layout's secret lists;")
    print("# do not edit by hand.")
    for name in sorted(secrets):
        print(f"secret\t{name}")
    for name, value in sorted(defaults):
        print(f"default\t{name}\t{value}")
    for service, name, source in sorted(aliases):
        print(f"alias\t{service}\t{name}\t{source}")
    for service, name in sorted(uses):
        print(f"uses\t{service}\t{name}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
