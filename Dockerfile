# syntax=docker/dockerfile:1
# lesson-chat: one self-contained executable on a minimal glibc image.
#   docker build --build-arg LESSON_CHAT_COMMIT=$(git rev-parse --short HEAD) -t lesson-chat .
#   docker run -p 8080:8080 -v chat-data:/data --stop-timeout 20 lesson-chat

# ---- build: npm ci, then `npm run build` (bun build --compile) -> dist/lesson-chat
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything else the build reads (src/, examples/directory.json, which is bundled in); .dockerignore keeps the rest out.
COPY . .
# .git stays out of the image's context, so `--version` learns the commit from the build argument.
ARG LESSON_CHAT_COMMIT=unknown
ENV LESSON_CHAT_COMMIT=${LESSON_CHAT_COMMIT}
RUN npm run build \
 && mkdir -p /volume/data

# ---- runtime: glibc and nothing else (no shell, no package manager, no node_modules)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/lesson-chat /app/lesson-chat
# A named volume starts as a copy of this folder, so it is writable by the service's user.
COPY --from=build --chown=65532:65532 /volume/data /data
ENV PORT=8080 \
    HOST=0.0.0.0 \
    SQLITE_PATH=/data/chat.db
VOLUME /data
EXPOSE 8080
USER 65532:65532
# The service drains on SIGTERM within SHUTDOWN_GRACE_MS (10 s): give `docker stop` longer.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/app/lesson-chat", "--healthcheck"]
ENTRYPOINT ["/app/lesson-chat"]
