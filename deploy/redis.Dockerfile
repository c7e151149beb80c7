# Redis from Debian's package, for machines that cannot pull the official redis image.
# Same contract as the official image: `redis-server` on PATH, data in /data, port 6379.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# The official image's entrypoint turns protected mode off for the container network; say it here.
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
