# tfaas as a container, run the way TF Serving's image is run:
#   docker build -t tfaas .
#   docker run -p 8501:8501 -v /srv/models/my_model:/models/my_model -e MODEL_NAME=my_model tfaas
# Flags after the image name are passed to `tfaas serve` (e.g. --model_config_file=/models/models.config);
# TFAAS_<OPTION> variables set any option (-e TFAAS_LOG_FORMAT=json -e TFAAS_WORKERS=2); TFaaS's write
# calls are off unless -e TFAAS_ENABLE_MODEL_MANAGEMENT=true (README, "The TFaaS API").
# docker stop drains in-flight requests (graceful_timeout, 30 s: give `docker stop -t` more);
# docker kill -s HUP reloads the model config file.
FROM python:3.11-slim

# NOTE: a numeric, non-root user, so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 1000 tfaas \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/tfaas --shell /usr/sbin/nologin tfaas
WORKDIR /opt/tfaas
COPY setup.py README.md ./
COPY tfaas ./tfaas
RUN pip install --no-cache-dir .
COPY docker/entrypoint.sh /usr/local/bin/tfaas-entrypoint
RUN chmod 0755 /usr/local/bin/tfaas-entrypoint

ENV MODEL_NAME=model \
    MODEL_BASE_PATH=/models \
    TFAAS_HOST=0.0.0.0 \
    TFAAS_REST_API_PORT=8501 \
    TFAAS_WORKER_TMP_DIR=/dev/shm
RUN mkdir -p "$MODEL_BASE_PATH"
EXPOSE 8501
USER 1000:1000

# NOTE: exec form, and the script execs tfaas: gunicorn's master is PID 1 and gets the signals.
ENTRYPOINT ["/usr/local/bin/tfaas-entrypoint"]
