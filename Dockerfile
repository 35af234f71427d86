# Two images from one base and one pinned stack (requirements.txt, the same pins as .venv):
#   step  (the last stage, so the default): the image every Kubeflow step runs in, with the project's notebooks and
#         raw data. Steps install and download nothing at run time, so the pipeline runs on air-gapped clusters.
#   serve: the HTTP API (`urbanlab serve`) as deploy/k8s/ runs it: non-root (UID 10001), nothing written in the
#         image (HOME and caches in /tmp), the pipeline's outputs read from /mnt/urbanlab.
#
#   docker build -t REGISTRY/urbanlab:TAG --build-arg URBANLAB_COMMIT=$(git rev-parse --short=12 HEAD) .   # or --target step
#   docker push REGISTRY/urbanlab:TAG
#   urbanlab kfp compile --image REGISTRY/urbanlab:TAG
#
#   docker build --target serve -t REGISTRY/urbanlab-api:TAG --build-arg URBANLAB_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker push REGISTRY/urbanlab-api:TAG                 # then set REGISTRY and TAG in deploy/k8s/kustomization.yaml
#   docker run -p 8000:8000 -e URBANLAB_API_TOKEN=... -v "$PWD":/mnt/urbanlab:ro REGISTRY/urbanlab-api:TAG
#
# The serve image takes `urbanlab serve` options after the image name; they replace `--root /mnt/urbanlab`
# (`docker run ... REGISTRY/urbanlab-api:TAG --root /data --workers 2`).
#
# torch and tensorflow-cpu come from the registry as pinned in requirements.txt. For GPU training steps build
# on a CUDA base image and swap tensorflow-cpu for tensorflow[and-cuda] at the same version.
FROM python:3.11-slim-bookworm AS stack

WORKDIR /opt/urbanlab
COPY requirements.txt setup.py settings.ini ./
RUN pip install --no-cache-dir pip==25.2 \
 && pip install --no-cache-dir -r requirements.txt

ENV URBANLAB_ROOT=/opt/urbanlab \
    PYTHONUNBUFFERED=1


FROM stack AS serve

COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m compileall -q urbanlab \
 && groupadd --gid 10001 urbanlab \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin urbanlab

ARG URBANLAB_COMMIT=unknown
ENV URBANLAB_COMMIT=${URBANLAB_COMMIT} \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["urbanlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--root", "/mnt/urbanlab"]


FROM stack AS step

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m ipykernel install --sys-prefix --name python3

ARG URBANLAB_COMMIT=unknown
ENV URBANLAB_COMMIT=${URBANLAB_COMMIT} \
    SPARK_LOCAL_IP=127.0.0.1
