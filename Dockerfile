# The lake_pipelines code location as an image: the same definitions serve the Dagster user
# deployment (gRPC code server), the run pods the K8s run launcher starts, and the Celery workers
# (deploy/k8s/celery-workers.yaml). Dependencies come from uv.lock only (`uv sync --frozen`),
# with the extras of the distributed profile: PostgreSQL (instance and Iceberg catalog) and
# Celery (executor and workers). Settings come from the environment (a Secret), never the image.
#
#   docker build -t lake-pipelines:0.1.0 .
FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv>=0.9"
WORKDIR /opt/lake
# Dependencies first (a layer that changes only with the lock), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra postgres --extra celery --extra gcs --extra azure \
        --no-install-project
COPY lake_pipelines ./lake_pipelines
COPY workspace.yaml dagster.yaml dagster.celery.yaml ./
RUN uv sync --frozen --no-dev --extra postgres --extra celery --extra gcs --extra azure

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 lake
WORKDIR /opt/lake
COPY --from=build --chown=lake:lake /opt/lake /opt/lake
ENV PATH=/opt/lake/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    LAKE_EXECUTOR=celery
# The instance the Celery workers load (the Helm chart mounts its own for the other pods).
RUN mkdir -p /opt/dagster/home && cp dagster.celery.yaml /opt/dagster/home/dagster.yaml \
    && chown -R lake:lake /opt/dagster/home
USER lake
EXPOSE 3030
# The code server; the Helm chart passes its own arguments (dagsterApiGrpcArgs), and the Celery
# workers' Deployment runs `dagster-celery worker start` in the same image.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "lake_pipelines.definitions"]
