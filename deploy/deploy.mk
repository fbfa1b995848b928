# Deployment checks. The top Makefile includes this and `make test` depends on deploy-check;
# standalone: make -f deploy/deploy.mk deploy-check
#
# deploy-check = deploy-manifests (kubectl kustomize + kubernetes-validate --strict + checkov on
# the renders and the Dockerfile + hadolint, see deploy/check.py) + deploy-test (pytest tests/deploy with the
# project venv: Dockerfile static checks, manifest cross-references, check-config of the fleet
# files). The tools live in their own venv, .venv-deploy, built once: the stamp is rebuilt only
# when deploy/requirements-check.txt changes.

# VENV, PY, PYTHON and STAMP come from the top Makefile when it includes this file (STAMP, the
# project venv's stamp, is empty when this file runs on its own).
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTHON ?= python3
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
DEPLOY_REQUIREMENTS := deploy/requirements-check.txt
DEPLOY_OUT := $(DEPLOY_VENV)/rendered
# 1.30: the oldest release supported (preStop's sleep action is on by default from there; GA in
# 1.34); 1.37: the newest that kubernetes-validate knows.
K8S_VERSIONS ?= 1.30.0 1.37.0

.PHONY: deploy-check deploy-tools deploy-manifests deploy-test deploy-clean

deploy-check: deploy-manifests deploy-test

deploy-tools: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): $(DEPLOY_REQUIREMENTS)
	rm -rf $(DEPLOY_VENV)
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r $(DEPLOY_REQUIREMENTS)
	touch $@

deploy-manifests: $(DEPLOY_STAMP)
	$(DEPLOY_VENV)/bin/python deploy/check.py --out $(DEPLOY_OUT) \
		$(addprefix --kubernetes-version ,$(K8S_VERSIONS))

# After the stamp, so the tests find .venv-deploy/bin/kubectl rather than skipping.
deploy-test: $(DEPLOY_STAMP) $(STAMP)
	$(PY) -m pytest tests/deploy -q

deploy-clean:
	rm -rf $(DEPLOY_VENV)
