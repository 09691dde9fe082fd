# syntax=docker/dockerfile:1
# sidecar-injector: one image for `serve` (the default), `certs` (the chart's
# certgen hook), `audit`, `inject` and `validate-config`.
#
# Node 20 pinned to an exact release on Debian bookworm (slim). For
# reproducible builds pin the digest too:
#   docker buildx imagetools inspect node:20.20.2-bookworm-slim
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Build: dev dependencies, TypeScript, the client-node bundle.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund && npm ls --all >/dev/null
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# Production dependencies only, no lifecycle scripts (nothing to build at run time).
# `npm ls` checks the installed tree against the lock file: npm 10 has exited 0
# after a network error ("Exit handler never called!") with the tree half there.
# No cache clean: only node_modules leaves this stage.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm ls --omit=dev --all >/dev/null

# Run: dist/ and production node_modules, owned by root and read-only to the
# numeric non-root user; nothing is written at run time (certificates come
# from a mounted Secret, logs go to stdout), so readOnlyRootFilesystem works.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config/example.yaml ./config/example.yaml
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["node", "/app/bin/sidecar-injector.js"]
CMD ["serve"]
