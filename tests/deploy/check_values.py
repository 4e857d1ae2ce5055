"""Checks the Helm chart values under k8s/airflow/ the way the charts' templates read them.
Run by tests/deployment.rs with the deploy venv (tests/deploy/requirements.txt):

    check_values.py --k8s k8s

The charts cannot be had in a test run (their Helm and OCI repositories are out of this
machine's reach, and no copy of them may be committed), so `helm template` does not run here:
the few template helpers that matter are modelled, each citing the template it follows. Two
charts:

- airflow/values.yaml: Bitnami's chart (oci://registry-1.docker.io/bitnamicharts/airflow),
  read at chart 25.1.0 (appVersion 3.0.5): values.yaml, templates/_helpers.tpl, and the
  bitnami/common library's common.names.* helpers. Rendered once with `helm template` from the
  bitnami/charts repository's source (k8s/README.md says what the render showed), which agreed
  with every rule below;
- airflow/values-apache.yaml: the official chart (apache-airflow/airflow), read at chart
  1.18.0 (appVersion 3.0.2): values.yaml, templates/_helpers.yaml, templates/secrets/.

What it checks, per values file:

- the workers' (and the triggerer's and scheduler's) pods get a service-account token, which
  KubernetesPodOperator needs, and the chart lets them launch pods;
- none of the Secrets the chart creates or reads is one of ours (k8s/secrets.yaml), the
  names computed from the release name k8s/README.md's install command uses;
- the base URL the chart renders (alert links) is https and carries no port but 443;
- the images: the Bitnami ones from bitnamilegacy/ (docker.io/bitnami was emptied in August
  2025), Bitnami's Airflow tag the appVersion of the chart it installs (no newer one was
  published), the official chart's Airflow tag the version pinned in
  tests/deploy/requirements.txt;
- the DAGs: synced every 60 s from this repository's k8s/airflow/dags, from a repository URL
  that is a URL (no <placeholder>) and that the README's install command sets;
- DATA_JOBS_REGISTRY and DATA_JOBS_OPENLINEAGE_URL reach the workers' environment;
- k8s/README.md installs each chart at the version read here.

Every problem is printed as `error: <file>: <what>`, then a summary line
`checked N chart values files: M problems`; exit 1 if there was any, 0 if none, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
DAGS_PATH = "k8s/airflow/dags"
SYNC_SECONDS = 60
# What the DAG helper reads from the workers' environment.
WORKER_VARS = ("DATA_JOBS_REGISTRY", "DATA_JOBS_OPENLINEAGE_URL")

BITNAMI = "airflow/values.yaml"
APACHE = "airflow/values-apache.yaml"
# The chart versions the models below were read from, and how the README refers to each chart.
CHARTS = {
    BITNAMI: {"name": "the Bitnami chart", "ref": "bitnamicharts/airflow", "version": "25.1.0",
              "app_version": "3.0.5",
              "repo_set": "dags.repositories[0].repository="},
    APACHE: {"name": "the official chart", "ref": "apache-airflow/airflow", "version": "1.18.0",
             "repo_set": "dags.gitSync.repo="},
}
# Our own Secrets, whatever k8s/secrets.yaml says besides.
OUR_SECRETS = {"airflow", "data-jobs"}


class Report:
    def __init__(self) -> None:
        self.problems = 0

    def error(self, file: str, what: str) -> None:
        self.problems += 1
        print(f"error: {file}: {what}")


def get(values: dict, dotted: str, default=None):
    node = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node or node[key] is None:
            return default
        node = node[key]
    return node


def airflow_version() -> str | None:
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"\s*apache-airflow\s*==\s*([\w.]+)\s*$", line)
        if m:
            return m.group(1)
    return None


def our_secrets(k8s: Path) -> set[str]:
    names = set(OUR_SECRETS)
    path = k8s / "secrets.yaml"
    if path.exists():
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                name = get(doc, "metadata.name")
                if name:
                    names.add(name)
    return names


def install_commands(readme: str) -> list[str]:
    """The README's shell lines, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", readme)
    joined = joined.replace('"', "").replace("'", "")
    return [line.strip() for line in joined.splitlines() if re.search(r"\bhelm\s+(install|upgrade)\b", line)]


def helm_install(commands: list[str], chart_ref: str) -> tuple[str | None, str | None, str | None]:
    """(release, --version, the whole command) of the README's install of chart_ref."""
    for cmd in commands:
        words = cmd.split()
        refs = [i for i, w in enumerate(words) if w.endswith(chart_ref)]
        if not refs:
            continue
        i = refs[0]
        release = words[i - 1] if i >= 1 and not words[i - 1].startswith("-") else None
        if release in ("install", "--install"):
            release = None
        version = None
        for j, w in enumerate(words):
            if w == "--version" and j + 1 < len(words):
                version = words[j + 1]
            elif w.startswith("--version="):
                version = w.split("=", 1)[1]
        return release, version, cmd
    return None, None, None


def check_readme(k8s: Path, report: Report) -> dict[str, str]:
    """The release name each chart is installed under, from the README's install commands."""
    releases: dict[str, str] = {}
    readme_path = k8s / "README.md"
    readme = readme_path.read_text() if readme_path.exists() else ""
    commands = install_commands(readme)
    for file, chart in CHARTS.items():
        release, version, cmd = helm_install(commands, chart["ref"])
        if cmd is None:
            report.error("README.md", f"no `helm install RELEASE ...{chart['ref']}` for {chart['name']} ({file})")
            continue
        if release is None:
            report.error("README.md", f"the install of {chart['name']} names no release")
        else:
            releases[file] = release
        if version != chart["version"]:
            report.error(
                "README.md",
                f"the install of {chart['name']} pins --version {version or '(none)'}, not "
                f"{chart['version']}, the chart these values are checked against",
            )
        if f"--set {chart['repo_set']}" not in cmd and f"--set={chart['repo_set']}" not in cmd:
            report.error(
                "README.md",
                f"the install of {chart['name']} does not set the DAG repository "
                f"(--set {chart['repo_set']}...): the values hold a placeholder",
            )
    return releases


def check_repo_url(file: str, key: str, url, report: Report) -> None:
    if not isinstance(url, str) or not url:
        report.error(file, f"{key} is not set: no repository to sync the DAGs from")
    elif "<" in url or ">" in url:
        report.error(file, f"{key} {url} holds a <placeholder>, which git cannot clone: use YOUR-ORG and --set")


def url_problem(url: str) -> str | None:
    if not url.startswith("https://"):
        return "is not https"
    m = re.match(r"https://[^/]*?(:\d+)?(/|$)", url)
    if m and m.group(1) and m.group(1) != ":443":
        return f"carries port {m.group(1)[1:]}"
    host = re.match(r"https://([^/:]*)", url).group(1)
    if not host or host == "127.0.0.1":
        return "has no public host"
    return None


def full_name(release: str, values: dict, chart: str = "airflow") -> str:
    # bitnami/common templates/_names.tpl common.names.fullname; the official chart's
    # templates/_helpers.yaml airflow.fullname is the same logic.
    override = get(values, "fullnameOverride")
    if override:
        return str(override)[:63].rstrip("-")
    name = get(values, "nameOverride") or chart
    if name in release:
        return release[:63].rstrip("-")
    return f"{release}-{name}"[:63].rstrip("-")


def check_tag(
    file: str,
    key: str,
    tag,
    version: str,
    report: Report,
    whose: str = "the version tests/deploy/requirements.txt tests",
) -> None:
    tag = "" if tag is None else str(tag)
    if tag != version and not tag.startswith(version + "-"):
        report.error(file, f"{key} {tag or '(unset: the chart default)'} is not Airflow {version}, {whose}")


# Who needs the Kubernetes API, by the components' names in both charts.
TOKEN_USERS = {
    "worker": "the KubernetesPodOperator tasks",
    "workers": "the KubernetesPodOperator tasks",
    "triggerer": "deferrable tasks",
    "scheduler": "the scheduler",
    "dagProcessor": "the alert of a timed-out run (the DAGs' on_failure_callback)",
}


def check_tokens(file: str, v: dict, components: tuple[str, ...], key_pattern: str, chart_default: bool,
                 report: Report) -> None:
    """Each component's pods must mount a service-account token (`key_pattern` names the value)."""
    for component in components:
        key = key_pattern.format(component)
        if get(v, key, chart_default) is not True:
            report.error(
                file,
                f"{component} pods get no service-account token ({key} is not true): "
                f"{TOKEN_USERS[component]} cannot reach the Kubernetes API",
            )


def check_bitnami(file: str, v: dict, release: str | None, secrets: set[str], version: str, report: Report) -> None:
    # Tokens: templates/worker/statefulset.yaml, triggerer/statefulset.yaml and
    # scheduler/deployment.yaml render `automountServiceAccountToken: {{ .Values.<c>.automountServiceAccountToken }}`
    # into the pod spec (values.yaml default false), which overrides the ServiceAccount's.
    # dag-processor/deployment.yaml likewise, with the chart's ServiceAccount (airflow.serviceAccountName).
    check_tokens(
        file, v, ("worker", "triggerer", "scheduler", "dagProcessor"), "{}.automountServiceAccountToken", False, report
    )
    if get(v, "rbac.create", False) is not True:
        report.error(file, "rbac.create is not true: the workers' ServiceAccount may not start pods")

    # Secrets: templates/_helpers.tpl airflow.secretName (auth.existingSecret or the fullname),
    # airflow.database.secretName / airflow.redis.secretName (`<fullname>-externaldb`/-externalredis,
    # or the subcharts' common.names.dependency.fullname `<release>-postgresql`/-redis),
    # airflow.ldap.secretName, airflow.dags.ssh.secretName, airflow.web.tls.secretName.
    if release is not None:
        fullname = full_name(release, v)
        names = {"the chart's own Secret (fernet, JWT, web secret keys, admin password)":
                 get(v, "auth.existingSecret") or fullname}
        if get(v, "postgresql.enabled", True) is not False:
            names["the PostgreSQL subchart's Secret"] = (
                get(v, "postgresql.auth.existingSecret") or get(v, "postgresql.fullnameOverride")
                or f"{release}-postgresql")
        else:
            names["the external database's Secret"] = get(v, "externalDatabase.existingSecret") or f"{fullname}-externaldb"
        if get(v, "redis.enabled", True) is not False:
            names["the Redis subchart's Secret"] = (
                get(v, "redis.auth.existingSecret") or get(v, "redis.fullnameOverride") or f"{release}-redis")
        else:
            names["the external Redis' Secret"] = get(v, "externalRedis.existingSecret") or f"{fullname}-externalredis"
        if get(v, "ldap.enabled", False):
            names["the LDAP Secret"] = get(v, "ldap.existingSecret") or f"{fullname}-ldap"
        if get(v, "dags.sshKey") or get(v, "dags.existingSshKeySecret"):
            names["the DAG repositories' SSH key Secret"] = get(v, "dags.existingSshKeySecret") or f"{fullname}-ssh"
        for what, name in names.items():
            if name in secrets:
                report.error(
                    file,
                    f"{what} is named {name} (release {release}, fullnameOverride "
                    f"{get(v, 'fullnameOverride') or '(unset)'}): it clashes with our Secret {name} (k8s/secrets.yaml)",
                )

    # Base URL: templates/_helpers.tpl airflow.baseUrl.
    base = str(get(v, "web.baseUrl", "") or "")
    service_ip = "127.0.0.1" if get(v, "service.type", "ClusterIP") == "ClusterIP" else (
        get(v, "service.loadBalancerIP") or "127.0.0.1")
    host = base or service_ip
    port = f":{int(get(v, 'service.ports.http', 8080))}"
    ingress = get(v, "ingress.enabled", False) is True
    tls = get(v, "web.tls.enabled", False) is True or (ingress and get(v, "ingress.tls", False) is True)
    schema = "https://" if tls else "http://"
    if re.match(r"^https?://", base):
        schema = ""
    if re.search(r":\d+$", base) or port in (":80", ":443"):
        port = ""
    hostname = get(v, "ingress.hostname", "airflow.local")
    if ingress and hostname:
        host = hostname
    rendered = f"{schema}{host}{port}"
    problem = url_problem(rendered)
    if problem:
        report.error(file, f"the chart renders base_url {rendered}, which {problem}: alert links would be wrong")

    # Images: templates/_helpers.tpl airflow.image / airflow.metrics.image (common.images.image),
    # and the subcharts' own image values.
    images = [("image", True), ("metrics.image", True),
              ("postgresql.image", get(v, "postgresql.enabled", True) is not False),
              ("redis.image", get(v, "redis.enabled", True) is not False)]
    for key, used in images:
        if not used:
            continue
        repository = get(v, f"{key}.repository")
        if not repository:
            report.error(file, f"{key}.repository is not set: the chart's default is not bitnamilegacy/")
        elif str(repository).startswith("bitnami/"):
            report.error(
                file,
                f"{key}.repository is {repository}: Bitnami's images moved to bitnamilegacy/ in August 2025",
            )
    # Bitnami published no image of a newer Airflow than its last chart's appVersion (k8s/README.md,
    # "The pins"): its tag is that one, not the version the DAGs are tested with.
    chart = CHARTS[BITNAMI]
    check_tag(
        file,
        "image.tag",
        get(v, "image.tag"),
        chart["app_version"],
        report,
        f"the Airflow chart {chart['version']} ships",
    )

    # DAGs: templates/_git_helpers.tpl (clone and sync of each dags.repositories entry, the
    # sidecar sleeping defaultSidecars.syncDAGsPlugins.interval seconds, default 60).
    if get(v, "dags.enabled", False) is not True:
        report.error(file, "dags.enabled is not true: no DAGs are synced")
    repositories = get(v, "dags.repositories", []) or []
    if not repositories:
        report.error(file, "dags.repositories is empty: no DAGs are synced")
    for i, repository in enumerate(repositories):
        check_repo_url(file, f"dags.repositories[{i}].repository", get(repository, "repository"), report)
    paths = [str(get(r, "path", "")).strip("/") for r in repositories]
    if repositories and DAGS_PATH not in paths:
        report.error(file, f"no dags.repositories entry has path {DAGS_PATH} (paths: {', '.join(paths)})")
    interval = get(v, "defaultSidecars.syncDAGsPlugins.interval", 60)
    if interval != SYNC_SECONDS:
        report.error(file, f"defaultSidecars.syncDAGsPlugins.interval is {interval}, not {SYNC_SECONDS} s")

    # Environment: extraEnvVars go into every Airflow container, worker.extraEnvVars the workers'.
    env = (get(v, "extraEnvVars", []) or []) + (get(v, "worker.extraEnvVars", []) or [])
    names = {get(e, "name") for e in env if isinstance(e, dict)}
    for var in WORKER_VARS:
        if var not in names:
            report.error(file, f"{var} is not in the workers' environment (extraEnvVars)")


def go_seconds(duration) -> float | None:
    """A Go duration string ("60s", "1m", "1m30s") in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", str(duration or ""))
    if not parts or "".join(n + u for n, u in parts) != str(duration):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def check_apache(file: str, v: dict, release: str | None, secrets: set[str], version: str, report: Report) -> None:
    # Tokens: templates/{workers,triggerer,scheduler}/*-serviceaccount.yaml render
    # `automountServiceAccountToken: {{ .Values.<c>.serviceAccount.automountServiceAccountToken }}`
    # (values.yaml default true); pods inherit their ServiceAccount's.
    check_tokens(file, v, ("workers", "triggerer", "scheduler", "dagProcessor"), "{}.serviceAccount.automountServiceAccountToken",
                 True, report)
    if get(v, "allowPodLaunching", True) is not True:
        report.error(file, "allowPodLaunching is not true: the workers' ServiceAccount may not start pods")

    # Secrets: templates/_helpers.yaml (fernet_key_secret, webserver_secret_key_secret,
    # redis_password_secret, airflow_metadata_secret, airflow_result_backend_secret, the broker URL)
    # name them after the release unless a *SecretName is given, which the chart then reads;
    # templates/secrets/api-secret-key-secret.yaml and jwt-secret.yaml after airflow.fullname.
    if release is not None:
        fullname = full_name(release, v)
        names = {
            "the fernet key Secret": get(v, "fernetKeySecretName") or f"{release}-fernet-key",
            "the API secret key Secret": get(v, "apiSecretKeySecretName") or f"{fullname}-api-secret-key",
            "the JWT Secret": get(v, "jwtSecretName") or f"{fullname}-jwt-secret",
            "the webserver secret key Secret": get(v, "webserverSecretKeySecretName") or f"{release}-webserver-secret-key",
            "the metadata database Secret": get(v, "data.metadataSecretName") or f"{release}-airflow-metadata",
            "the result backend Secret": get(v, "data.resultBackendSecretName") or f"{release}-airflow-result-backend",
            "the broker URL Secret": get(v, "data.brokerUrlSecretName") or f"{release}-broker-url",
            "the Redis password Secret": get(v, "redis.passwordSecretName") or f"{release}-redis-password",
            "the PostgreSQL subchart's Secret": f"{release}-postgresql",
        }
        for what, name in names.items():
            if name in secrets:
                report.error(
                    file,
                    f"{what} is named {name} (release {release}): it clashes with our Secret {name} (k8s/secrets.yaml)",
                )

    # Base URL: Airflow 3's [api] base_url, from config.api (rendered into airflow.cfg by
    # templates/configmaps/configmap.yaml); unset, links have no host.
    base = get(v, "config.api.base_url")
    if not base:
        report.error(file, "config.api.base_url is not set: alert links would have no host")
    else:
        problem = url_problem(str(base))
        if problem:
            report.error(file, f"config.api.base_url {base} {problem}: alert links would be wrong")
        elif get(v, "ingress.apiServer.enabled", False) is True:
            host = re.match(r"https://([^/:]*)", str(base)).group(1)
            hosts = get(v, "ingress.apiServer.hosts", []) or []
            match = [h for h in hosts if isinstance(h, dict) and h.get("name") == host]
            if not match:
                report.error(file, f"no ingress.apiServer.hosts entry serves {host}, the base_url's host")
            elif get(match[0], "tls.enabled", False) is not True:
                report.error(file, f"the ingress serves {host} without TLS, but base_url is https")

    # Images: templates/_helpers.yaml airflow_image (images.airflow.* or the defaults).
    check_tag(file, "defaultAirflowTag", get(v, "defaultAirflowTag"), version, report)
    if get(v, "images.airflow.tag"):
        check_tag(file, "images.airflow.tag", get(v, "images.airflow.tag"), version, report)
    if str(get(v, "airflowVersion", "")) != version:
        report.error(file, f"airflowVersion {get(v, 'airflowVersion')} is not Airflow {version}: the chart picks its templates by it")
    for key in ("defaultAirflowRepository", "images.airflow.repository"):
        if str(get(v, key, "")).startswith("bitnami/"):
            report.error(file, f"{key} is {get(v, key)}: not Airflow's image")
    if get(v, "postgresql.enabled", True) is not False:
        repository = get(v, "postgresql.image.repository")
        if not repository or str(repository).startswith("bitnami/"):
            report.error(
                file,
                f"postgresql.image.repository is {repository or '(unset: bitnami/postgresql)'}: Bitnami's images "
                "moved to bitnamilegacy/ in August 2025",
            )

    # DAGs: templates/_helpers.yaml git_sync_container (GITSYNC_REPO, GITSYNC_PERIOD from
    # dags.gitSync.period; the DAG folder is the repo's dags.gitSync.subPath).
    if get(v, "dags.gitSync.enabled", False) is not True:
        report.error(file, "dags.gitSync.enabled is not true: no DAGs are synced")
    check_repo_url(file, "dags.gitSync.repo", get(v, "dags.gitSync.repo"), report)
    sub_path = str(get(v, "dags.gitSync.subPath", "tests/dags")).strip("/")
    if sub_path != DAGS_PATH:
        report.error(file, f"dags.gitSync.subPath is {sub_path}, not {DAGS_PATH}")
    period = get(v, "dags.gitSync.period", "5s")
    if go_seconds(period) != SYNC_SECONDS:
        report.error(file, f"dags.gitSync.period is {period}, not {SYNC_SECONDS}s")

    # Environment: `env` goes into every Airflow container (templates/_helpers.yaml
    # custom_airflow_environment), the workers' included.
    env = (get(v, "env", []) or []) + (get(v, "workers.env", []) or [])
    names = {get(e, "name") for e in env if isinstance(e, dict)}
    for var in WORKER_VARS:
        if var not in names:
            report.error(file, f"{var} is not in the workers' environment (env)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k8s", required=True, type=Path, help="the k8s/ directory")
    args = parser.parse_args(argv)
    report = Report()
    version = airflow_version()
    if version is None:
        report.error("tests/deploy/requirements.txt", "no apache-airflow==VERSION pin")
        version = "(unknown)"
    releases = check_readme(args.k8s, report)
    secrets = our_secrets(args.k8s)
    checked = 0
    for file, check in ((BITNAMI, check_bitnami), (APACHE, check_apache)):
        path = args.k8s / file
        checked += 1
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            report.error(file, f"cannot be read: {e}")
            continue
        if not isinstance(values, dict):
            report.error(file, "is not a mapping of values")
            continue
        check(file, values, releases.get(file), secrets, version, report)
    print(f"checked {checked} chart values files: {report.problems} problems")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
