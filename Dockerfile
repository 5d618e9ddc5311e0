# tfaas as a container, run the way TF Serving's image is run:
#   docker build -t tfaas .
#   docker run -p 8500:8500 -p 8501:8501 -v /srv/models/my_model:/models/my_model -e MODEL_NAME=my_model tfaas
# Flags after the image name are passed to `tfaas serve` (e.g. --model_config_file=/models/models.config);
# TFAAS_<OPTION> variables set any option (-e TFAAS_LOG_FORMAT=json -e TFAAS_WORKERS=2); TFaaS's write
# calls are off unless -e TFAAS_ENABLE_MODEL_MANAGEMENT=true (README, "The TFaaS API").
# docker stop drains in-flight requests (graceful_timeout, 30 s: give `docker stop -t` more);
# docker kill -s HUP reloads the model config file.
# Build arguments: BASE_IMAGE, any Debian-based image (with its own python3 ≥ 3.11, or Debian's is
# installed: e.g. one made with debootstrap, README "Containers without Docker"); TENSORFLOW, the
# TensorFlow distribution (tensorflow-cpu, or tensorflow for its GPU kernels); PIP_CERT, a CA bundle
# for pip, for builds behind a TLS-intercepting proxy (mounted into the build, not kept in the image).
ARG BASE_IMAGE=python:3.11-slim

# The runtime: Python and the user, shared by the build stage so that the venv finds its interpreter.
FROM ${BASE_IMAGE} AS runtime
# NOTE: python:3.11-slim has its own python3 (/usr/local/bin); a plain Debian base gets Debian's.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# NOTE: a numeric, non-root user, so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 1000 tfaas \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/tfaas --shell /usr/sbin/nologin tfaas

# The build: tfaas and its requirements into a venv; pip, its caches and the sources stay here.
FROM runtime AS build
ARG TENSORFLOW=tensorflow-cpu
ARG PIP_CERT=
RUN if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/tfaas
WORKDIR /src
COPY setup.py README.md ./
COPY tfaas ./tfaas
COPY docker/requirements.py ./
# NOTE: tfaas and tensorflow-serving-api without their requirements, then the others with TensorFlow as
# $TENSORFLOW (docker/requirements.py says why). TensorFlow's C++ headers (~290 MB) are for compiling
# custom ops, which a server does not do: they go, with pip.
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    && /opt/tfaas/bin/pip install --no-deps . \
    && /opt/tfaas/bin/pip install --no-deps $(/opt/tfaas/bin/python requirements.py --no-deps "$TENSORFLOW") \
    && /opt/tfaas/bin/pip install $(/opt/tfaas/bin/python requirements.py "$TENSORFLOW") \
    && /opt/tfaas/bin/pip uninstall -y pip \
    && rm -rf /opt/tfaas/lib/python3*/site-packages/tensorflow/include

FROM runtime
COPY --from=build /opt/tfaas /opt/tfaas
COPY docker/entrypoint.sh /usr/local/bin/tfaas-entrypoint
RUN chmod 0755 /usr/local/bin/tfaas-entrypoint

# NOTE: TMPDIR in /dev/shm (a tmpfs in Docker, podman and Kubernetes), like the workers' heartbeat
# files: the server's lifecycle socket and metrics files are written there, so a read-only root
# filesystem (--read-only, readOnlyRootFilesystem) needs no other writable mount.
ENV PATH=/opt/tfaas/bin:$PATH \
    MODEL_NAME=model \
    MODEL_BASE_PATH=/models \
    TFAAS_HOST=0.0.0.0 \
    TFAAS_REST_API_PORT=8501 \
    TFAAS_GRPC_PORT=8500 \
    TFAAS_WORKER_TMP_DIR=/dev/shm \
    TMPDIR=/dev/shm
RUN mkdir -p "$MODEL_BASE_PATH"
EXPOSE 8500 8501
USER 1000:1000

# NOTE: exec form, and the script execs tfaas: gunicorn's master is PID 1 and gets the signals.
ENTRYPOINT ["/usr/local/bin/tfaas-entrypoint"]
