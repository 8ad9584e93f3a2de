# Shipyard: one image that trains, serves, runs the MLflow server and runs batch and retrain jobs.
# The command picks the role (see compose.yaml):
#   docker run IMAGE                                  serve the champions on 0.0.0.0:8000 (the default)
#   docker run IMAGE train -c configs/iris.yaml       train, register and gate a model
#   docker run IMAGE monitor --host 0.0.0.0           drift and live quality over the monitoring store (:8100)
#   docker run IMAGE batch worker                     take batch jobs from Redis
#   docker run IMAGE retrain housing --if-drift       retrain when the served data drifted
#   docker run --entrypoint mlflow IMAGE server ...   the MLflow tracking server
# Build: docker build -t shipyard .   (--build-arg EXTRAS=postgres,notebook adds JupyterLab, as compose.yaml does)

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: resolve every dependency from the lock file into a venv ----
FROM ${PYTHON_IMAGE} AS builder

# Optional dependency groups of pyproject.toml to install besides the base set. `postgres` is the
# PostgreSQL driver (psycopg 3): the MLflow server's backend store and the shared monitoring store.
ARG EXTRAS=postgres

# PIP_CONSTRAINT applies the lock to every pip call below, the package's build environment included.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or the lock changes.
# Every package is a pinned wheel from constraints.txt (--only-binary: no compiler is needed, and none
# is installed in any stage).
COPY pyproject.toml constraints.txt ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" > /tmp/requirements.txt \
    && pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt

# Then the package itself (no dependencies: they are all above), and a consistency check.
COPY README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && python -c "import os, importlib, shipyard.cli.main, mlflow.server; 'postgres' in os.environ['EXTRAS'].split(',') and importlib.import_module('psycopg')"

# ---- runtime: the venv, the configs and the example data; no build tools, no caches, not root ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="shipyard" \
      org.opencontainers.image.description="Shipyard: train, track, register, serve and monitor tabular models" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid (10001) so volume ownership and Kubernetes' runAsUser agree.
RUN groupadd --system --gid 10001 shipyard \
    && useradd --system --no-log-init --uid 10001 --gid shipyard --create-home \
       --home-dir /home/shipyard --shell /usr/sbin/nologin shipyard \
    && mkdir -p /var/lib/shipyard /var/lib/mlflow/artifacts /srv/batch \
    && chown shipyard:shipyard /var/lib/shipyard /var/lib/mlflow /var/lib/mlflow/artifacts /srv/batch

COPY --from=builder /opt/venv /opt/venv

# Code and configs stay root-owned (read-only to the service); the notebooks are the user's to edit.
WORKDIR /app
COPY configs ./configs
COPY data/raw ./data/raw
COPY --chown=shipyard:shipyard notebooks ./notebooks

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/shipyard \
    MPLCONFIGDIR=/tmp/matplotlib \
    SHIPYARD_HOME=/var/lib/shipyard \
    SHIPYARD_BATCH_ROOT=/srv/batch \
    SHIPYARD_PORT=8000 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    DVC_NO_ANALYTICS=1 \
    ZENML_ANALYTICS_OPT_IN=false

USER 10001:10001
# 8000: the api (the default command); 8100: `shipyard monitor`
EXPOSE 8000 8100

# Alive check for the service (the default command), with Python's standard library: no curl in the image.
# Other roles set their own check or none (compose.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SHIPYARD_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["shipyard"]
CMD ["serve", "--host", "0.0.0.0"]
