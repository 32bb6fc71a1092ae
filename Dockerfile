# One image for every role: `npm run web` (default), `npm run worker`, `npm run migrate`.
FROM node:24-slim

WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first so code changes do not reinstall them. Dev dependencies are kept:
# the processes run the TypeScript sources through tsx.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force

COPY --chown=node:node . .

# Set after `npm ci`, which would otherwise skip dev dependencies.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
# npm does not pass SIGTERM on to the app (its `sh -c` dies and leaves tsx running), so run
# the container with an init (`docker run --init`, compose `init: true`) and have that init
# signal the whole process group: then `docker stop` reaches the app and it shuts down cleanly.
ENV TINI_KILL_PROCESS_GROUP=1
EXPOSE 3000

CMD ["npm", "run", "web"]
