# PostgreSQL 15 from Debian's package, for machines that cannot pull the official postgres image.
# Same contract as the official image for what docker-compose.yml uses: PGDATA in
# /var/lib/postgresql/data, POSTGRES_DB created on first start, POSTGRES_HOST_AUTH_METHOD.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
CMD ["postgres-entrypoint.sh"]
