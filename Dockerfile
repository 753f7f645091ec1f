# syntax=docker/dockerfile:1
# Tessera: build stage compiles TypeScript and native modules; the runtime stage has only
# production dependencies and runs as a non-root user. Keys and SQLite data live on volumes.

FROM node:22-bookworm-slim AS build
WORKDIR /app
# Toolchain for better-sqlite3 should its prebuilt binary be unavailable.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# packages/verifier (the @tessera/verifier workspace) is left out on purpose: the issuer does not
# import the kit, and npm ci skips a workspace whose folder is absent, so the image gets neither
# the kit nor a link to it (checked by hand with npm 11: npm ci and npm prune succeed).
COPY package.json package-lock.json ./
# Install scripts are run explicitly below (only better-sqlite3 needs one), the same decision
# package.json's allowScripts records for npm 11.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY src ./src
# Writes prisma/postgres/schema.prisma (generated, not in git) and both Prisma clients.
RUN node scripts/prisma-generate.mjs \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim AS runtime
# METRICS_HOST: in a container, 127.0.0.1 is reachable from that container only; with
# METRICS_PORT set (e.g. 9464) the metrics listener binds the pod/container network, which no
# ingress routes to and which is not published unless you map the port. Nothing listens there
# while METRICS_PORT is unset.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    METRICS_HOST=0.0.0.0 \
    DATABASE_URL=file:/data/tessera.db \
    KEYS_DIR=/keys
WORKDIR /app
RUN groupadd --system --gid 10001 tessera \
 && useradd --system --uid 10001 --gid tessera --home-dir /app --shell /usr/sbin/nologin tessera \
 && mkdir -p /data /keys \
 && chown tessera:tessera /data /keys \
 && chmod 700 /keys
# Application files are owned by root and read-only for the service user.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/prisma.config.ts /app/package.json ./
USER tessera
VOLUME ["/data", "/keys"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# server.js applies migrations, creates a signing key on first start, and drains on SIGTERM.
CMD ["node", "dist/src/server.js"]
