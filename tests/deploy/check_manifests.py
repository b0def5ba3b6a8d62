#!/opt/kiln-py/bin/python
"""Checks deploy/'s manifests beyond yamllint: the kinds and fields each needs, the probes on
the Open Inference Protocol's health endpoints, and that every option the containers pass
to kiln-serve is one kiln-serve accepts (its --help).

Usage: check_manifests.py DEPLOY_DIR KILN_SERVE_BINARY
"""

import glob
import os
import re
import subprocess
import sys

import yaml


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def options_of(binary):
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))


def main():
    deploy, binary = sys.argv[1:3]
    accepted = options_of(binary)
    documents = []
    for path in sorted(glob.glob(os.path.join(deploy, "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            documents += [(path, d) for d in yaml.safe_load_all(f) if d is not None]
    kinds = {}
    for path, doc in documents:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in doc:
                fail("%s: a document without '%s'" % (path, field))
        kinds.setdefault(doc["kind"], []).append((path, doc))
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "ServingRuntime", "InferenceService"):
        if kind not in kinds:
            fail("no %s in %s" % (kind, deploy))

    containers = []
    for path, doc in kinds["Deployment"]:
        spec = doc["spec"]["template"]["spec"]
        for c in spec["containers"]:
            containers.append((path, c))
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/v2/health/ready":
                fail("%s: container %s's readiness probe is not /v2/health/ready" % (path, c["name"]))
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/v2/health/live":
                fail("%s: container %s's liveness probe is not /v2/health/live" % (path, c["name"]))
        labels = doc["spec"]["selector"]["matchLabels"]
        if any(doc["spec"]["template"]["metadata"]["labels"].get(k) != v for k, v in labels.items()):
            fail("%s: the selector does not match the pod template's labels" % path)
    for path, doc in kinds["ServingRuntime"]:
        if "v2" not in doc["spec"].get("protocolVersions", []):
            fail("%s: the ServingRuntime does not declare protocol v2" % path)
        containers += [(path, c) for c in doc["spec"]["containers"]]
    runtimes = {doc["metadata"]["name"] for _, doc in kinds["ServingRuntime"]}
    for path, doc in kinds["InferenceService"]:
        model = doc["spec"]["predictor"]["model"]
        if model.get("runtime") not in runtimes:
            fail("%s: runtime %r is not a ServingRuntime here" % (path, model.get("runtime")))
    for path, c in containers:
        for arg in c.get("args", []):
            if str(arg).startswith("--") and arg not in accepted:
                fail("%s: container %s passes %s, which kiln-serve does not accept" % (path, c["name"], arg))
    print("%d documents, %d containers: ok" % (len(documents), len(containers)))


if __name__ == "__main__":
    main()
