# The image every Kubeflow step runs in: the same pinned stack as .venv, the project's notebooks and raw data.
# Steps install and download nothing at run time, so the pipeline runs on air-gapped clusters.
#
#   docker build -t REGISTRY/urbanlab:TAG --build-arg URBANLAB_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker push REGISTRY/urbanlab:TAG
#   urbanlab kfp compile --image REGISTRY/urbanlab:TAG
#
# torch and tensorflow-cpu come from the registry as pinned in requirements.txt. For GPU training steps build
# on a CUDA base image and swap tensorflow-cpu for tensorflow[and-cuda] at the same version.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/urbanlab
COPY requirements.txt setup.py settings.ini ./
RUN pip install --no-cache-dir pip==25.2 \
 && pip install --no-cache-dir -r requirements.txt

COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m ipykernel install --sys-prefix --name python3

ARG URBANLAB_COMMIT=unknown
ENV URBANLAB_ROOT=/opt/urbanlab \
    URBANLAB_COMMIT=${URBANLAB_COMMIT} \
    SPARK_LOCAL_IP=127.0.0.1 \
    PYTHONUNBUFFERED=1
