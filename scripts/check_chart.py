"""Renders charts/tokengate with every values file in charts/tokengate/ci, offline, and checks it:
helm lint (strict), yamllint on the output, strict validation of every manifest against the
Kubernetes schemas (kubernetes-validate), and the properties the chart promises (hardened
security context, probes, sidecar modes, admin port kept inside the namespace)."""
import pathlib
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

CHART = pathlib.Path("charts/tokengate")
BIN = pathlib.Path(sys.executable).parent
KUBERNETES = "1.33.0"


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def tokengate_container(pod, native):
    pool = pod.get("initContainers", []) if native else pod["containers"]
    found = [c for c in pool if c["name"] == "tokengate"]
    if len(found) != 1:
        fail(f"tokengate container not found among {'initContainers' if native else 'containers'}")
    return found[0]


def check_properties(name, values, docs):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployment = next((d for d in docs if d["kind"] == "Deployment"), None)
    if deployment is None:
        fail(f"{name}: no Deployment")
    pod = deployment["spec"]["template"]["spec"]
    native = values.get("nativeSidecar", True)
    c = tokengate_container(pod, native)
    if native and c.get("restartPolicy") != "Always":
        fail(f"{name}: a native sidecar needs restartPolicy: Always")
    if not native and "restartPolicy" in c:
        fail(f"{name}: a classic container must not set restartPolicy")
    sc = c["securityContext"]
    if not (sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]):
        fail(f"{name}: the tokengate container is not hardened: {sc}")
    psc = pod["securityContext"]
    if not (psc["runAsNonRoot"] and psc["runAsUser"] != 0):
        fail(f"{name}: the pod may run as root: {psc}")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        if c[probe]["httpGet"]["path"] != path:
            fail(f"{name}: {probe} should probe {path}")
    config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["tokengate.yaml"])
    store = values.get("store", {}).get("type", "embedded")
    if store not in config["store"]:
        fail(f"{name}: config store is {config['store']}, expected {store}")
    if values.get("identity", {}).get("oidc"):
        identity = config["identity"]
        if identity["sessions"]["keys_file"] != "/etc/tokengate/secrets/session-keys":
            fail(f"{name}: session keys must come from the Secret")
        if identity["oidc"].get("client_secret_file") != "/etc/tokengate/secrets/oidc-client-secret":
            fail(f"{name}: the OIDC client secret must come from the Secret")
        secret = next(d for d in docs if d["kind"] == "Secret")
        if "session-keys" not in secret.get("stringData", {}):
            fail(f"{name}: the Secret must hold session keys")
        if "ci-oidc-client-secret" in yaml.safe_dump(config):
            fail(f"{name}: the OIDC client secret leaked into the ConfigMap")
    if store == "redis":
        env = {e["name"]: e for e in c.get("env", [])}
        if "secretKeyRef" not in env["TOKENGATE_STORE__REDIS__URL"]["valueFrom"]:
            fail(f"{name}: the Redis URL must come from the Secret")
        if "s3cret" in yaml.safe_dump(config):
            fail(f"{name}: the Redis password leaked into the ConfigMap")
    if values.get("networkPolicy", {}).get("enabled"):
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
        admin_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == config_port(config))
        if admin_rule.get("from") != [{"podSelector": {}}]:
            fail(f"{name}: the admin port must be limited to the namespace")
    if values.get("secret", {}).get("existingSecret") and ("Secret", "tg-tokengate") in kinds:
        fail(f"{name}: an existing Secret was given, yet one is created")


def config_port(config):
    return int(config["admin"]["listen"].rsplit(":", 1)[1])


def render_and_validate(chart, values, label, out):
    """Renders, yamllints and strictly validates; returns the documents."""
    rendered = chart.render(values, name="tg", namespace="apps", is_install=True)
    docs, texts = [], []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")) or not text.strip():
            continue
        texts.append(text)
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    manifest = pathlib.Path(out) / f"{label}.yaml"
    manifest.write_text("---\n".join(t.strip() + "\n" for t in texts))
    subprocess.run([BIN / "yamllint", "-c", ".yamllint.yaml", str(manifest)], check=True)
    core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    core_file = pathlib.Path(out) / f"{label}-core.yaml"
    core_file.write_text(yaml.safe_dump_all(core))
    subprocess.run([BIN / "kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES, str(core_file)], check=True)
    for d in docs:
        if d["kind"] == "ServiceMonitor":
            ep = d["spec"]["endpoints"][0]
            if ep["port"] != "admin" or ep["path"] != "/metrics":
                fail(f"{label}: ServiceMonitor does not scrape admin /metrics")
    return docs


def main():
    chart = helm.Chart.load(CHART)
    with tempfile.TemporaryDirectory() as out:
        for path in sorted((CHART / "ci").glob("*.yaml")):
            values = yaml.safe_load(path.read_text()) or {}
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES}")
            problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
            if problems:
                fail(f"helm lint {path.name}: {problems}")
            docs = render_and_validate(chart, values, path.stem, out)
            check_properties(path.name, values, docs)
            print(f"ok: {path.name}: {len(docs)} manifests ({', '.join(sorted({d['kind'] for d in docs}))})")

        # The example application chart that adds tokengate to its own workload through the
        # named templates (the subchart is placed under charts/, as `helm dependency build` does).
        example = pathlib.Path(out) / "my-app"
        shutil.copytree("charts/examples/my-app", example)
        shutil.copytree(CHART, example / "charts" / "tokengate")
        docs = render_and_validate(helm.Chart.load(example), {}, "example-my-app", out)
        app = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("my-app"))
        pod = app["spec"]["template"]["spec"]
        tokengate_container(pod, native=True)
        service = next(d for d in docs if d["kind"] == "Service" and "admin" not in d["metadata"]["name"])
        labels = app["spec"]["template"]["metadata"]["labels"]
        if not set(service["spec"]["selector"].items()) <= set(labels.items()):
            fail("example: the tokengate Service does not select the application's pods")
        if any(d["kind"] == "Deployment" and d["metadata"]["name"] == "tg-tokengate" for d in docs):
            fail("example: the demo Deployment should be off")
        print(f"ok: examples/my-app: {len(docs)} manifests, tokengate as a native sidecar of the application")


if __name__ == "__main__":
    main()
