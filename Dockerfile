# syntax=docker/dockerfile:1
# Newsgraph API image: one uvicorn process per container (`newsgraph serve`), run as a
# non-root numeric user on a read-only root filesystem; only /tmp needs to be writable.
#
#   docker build -t newsgraph:0.1.0 .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://… newsgraph:0.1.0
#   docker run --rm newsgraph:0.1.0 migrate      # what the k8s migration Job runs
#
# Without DATABASE_URL, `serve` starts the embedded PostgreSQL in /tmp (a demo, not for k8s).
# Every dependency installs from a binary wheel (linux/amd64), so no compiler is needed.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY service/ service/
COPY migrations/ migrations/
COPY schema/ schema/
# The same pins as `make` and CI (constraints.txt); the app gets a venv of its own, copied
# whole into the runtime stage at the same path.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/newsgraph \
    && /opt/newsgraph/bin/python -m pip install --only-binary=:all: \
        --constraint constraints.txt /wheels/newsgraph-*.whl

FROM ${PYTHON_IMAGE} AS runtime
# HOME and the XDG directories point into /tmp (an emptyDir in k8s), so nothing tries to
# write to the read-only root filesystem; bytecode was compiled at install time. The mode
# (NEWSGRAPH_ENV) and everything else is the deployment's to set (k8s/base: production).
ENV PATH=/opt/newsgraph/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    XDG_DATA_HOME=/tmp/.local/share \
    NEWSGRAPH_PORT=8000 \
    NEWSGRAPH_DATA_DIR=/tmp/newsgraph-data
RUN groupadd --system --gid 10001 newsgraph \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin newsgraph
COPY --from=build /opt/newsgraph /opt/newsgraph
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['NEWSGRAPH_PORT']}/healthz\", timeout=2)"]
# Exec form: `newsgraph` is PID 1 and receives SIGTERM itself (graceful shutdown, exit 0).
ENTRYPOINT ["newsgraph"]
CMD ["serve", "--host", "0.0.0.0"]
