# syntax=docker/dockerfile:1
# conviva-exporter: multi-stage build on Node 24 LTS; the runtime image has production
# dependencies only and runs as the unprivileged `node` user.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# config/demo.yml serves --demo; config/example.yml documents every key.
COPY config ./config
USER node
EXPOSE 19440
# Mount the configuration here (read-only); secrets come from files (client_secret_file), e.g.
# Docker or Kubernetes secrets under /run/secrets.
VOLUME ["/etc/conviva-exporter"]
# Liveness only; readiness (/-/ready) waits for every collector's first success. Assumes the
# default port: change it here too if --web.listen-address moves it.
# Plain HTTP, or HTTPS when --web.config.file turns TLS on (the process's own port on loopback:
# its certificate is not checked, only that it answers); /-/healthy needs no password. With
# client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert it cannot pass: override it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const get = (m, o) => new Promise((ok) => { const r = require(m).get({ host: '127.0.0.1', port: 19440, path: '/-/healthy', timeout: 2000, ...o }, (s) => { s.resume(); ok(s.statusCode === 200); }); r.on('error', () => ok(false)); r.on('timeout', () => r.destroy()); }); get('http', {}).then((ok) => ok || get('https', { rejectUnauthorized: false })).then((ok) => process.exit(ok ? 0 : 1))"]
ENTRYPOINT ["node", "dist/main.js"]
CMD ["--config", "/etc/conviva-exporter/config.yml"]
