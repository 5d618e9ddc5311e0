#!/bin/sh
# The container's entrypoint, run as TF Serving's image runs its own (tf_serving_entrypoint.sh):
#   docker run -p 8501:8501 -v /srv/models/my_model:/models/my_model -e MODEL_NAME=my_model tfaas
# serves $MODEL_BASE_PATH/$MODEL_NAME as $MODEL_NAME. Arguments after the image name come after ours,
# so they add to or override them: --model_config_file=/models/models.config, --rest_api_port=8080.
# Outside a container it works the same, with `tfaas` on PATH. TFaaS's upload/delete/params calls are
# off unless TFAAS_ENABLE_MODEL_MANAGEMENT=true (with TFAAS_MODEL_REPOSITORY and TFAAS_ADMIN_TOKEN).
set -eu

MODEL_NAME="${MODEL_NAME:-model}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-/models}"

# WEB_CONCURRENCY is the usual worker count of gunicorn hosts; TFAAS_WORKERS wins over it.
if [ -n "${WEB_CONCURRENCY:-}" ] && [ -z "${TFAAS_WORKERS:-}" ]; then
    export TFAAS_WORKERS="$WEB_CONCURRENCY"
fi

# NOTE: exec: tfaas (gunicorn's master) replaces this shell, becomes PID 1 and gets `docker stop`'s
# SIGTERM (and `docker kill -s HUP`'s reload) itself.
exec tfaas serve --model_name="$MODEL_NAME" --model_base_path="$MODEL_BASE_PATH/$MODEL_NAME" "$@"
