# The image the README's Kubernetes example runs (registry.example.com/uit:0.1.0), made from a
# bundle that includes Node, so that the image needs nothing else (docs/airgap.md):
#
#   npm ci && npm run bundle -- --with-node        # writes uit-0.1.0-linux-x64.tar.gz here
#   docker build -t registry.example.com/uit:0.1.0 .
#   docker save registry.example.com/uit:0.1.0 | gzip > uit-image-0.1.0.tar.gz   # to carry it
#
# Another bundle (another version, or one made with --model or --with-cuda):
#   docker build --build-arg BUNDLE=uit-0.2.0-linux-x64.tar.gz -t registry.example.com/uit:0.2.0 .
# --device cuda also needs CUDA 12 and cuDNN 9 in the image: a bundle made with --with-cuda on
# a base that has them, e.g. --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# libvulkan1: the Vulkan loader for the WebGPU route (--device webgpu); the GPU's Vulkan driver
# comes from the host (NVIDIA's container toolkit mounts it for the "graphics" capability below).
# jq: the merge step of docs/pipeline.md checks the run's JSON summary with it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 jq \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it and fsGroup can match it.
# XDG_RUNTIME_DIR must be a private, writable folder, or Dawn (WebGPU) complains on every start.
RUN groupadd --gid 10001 uit \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/uit --shell /bin/bash uit \
 && install -d -m 700 -o 10001 -g 10001 /home/uit/.run

ARG BUNDLE=uit-0.1.0-linux-x64.tar.gz
# ADD unpacks a local .tar.gz: /opt/uit-VERSION-PLATFORM-ARCH/, and /opt/uit points at it.
ADD ${BUNDLE} /opt/
RUN set -e; dir=$(ls -d /opt/uit-*/); ln -s "${dir%/}" /opt/uit; \
    test -x /opt/uit/node/bin/node || { echo "${BUNDLE} has no Node: make it with npm run bundle -- --with-node" >&2; exit 1; }

ENV PATH=/opt/uit/bin:$PATH \
    XDG_RUNTIME_DIR=/home/uit/.run \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
USER 10001:10001
WORKDIR /home/uit
# Every file against the bundle's SHA256SUMS, and Node and onnxruntime load: a bad bundle fails here.
RUN uit doctor

CMD ["uit", "--help"]
