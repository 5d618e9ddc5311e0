# tfaas as a container, run the way TF Serving's image is run:
#   docker run -p 8501:8501 -v /srv/models/my_model:/models/my_model -e MODEL_NAME=my_model tfaas
# Flags after the image name are passed to `tfaas serve` (e.g. --model_config_file=/models/models.config).
FROM python:3.11-slim

RUN useradd --system --create-home --home-dir /home/tfaas tfaas
WORKDIR /opt/tfaas
COPY setup.py README.md ./
COPY tfaas ./tfaas
RUN pip install --no-cache-dir .

ENV MODEL_NAME=model \
    MODEL_BASE_PATH=/models \
    TFAAS_HOST=0.0.0.0 \
    TFAAS_REST_API_PORT=8501
EXPOSE 8501
USER tfaas

# NOTE: `exec` makes tfaas (gunicorn's master) PID 1, so it receives SIGTERM from `docker stop`.
ENTRYPOINT ["sh", "-c", "exec tfaas serve --model_name=\"$MODEL_NAME\" --model_base_path=\"$MODEL_BASE_PATH/$MODEL_NAME\" \"$@\"", "tfaas"]
