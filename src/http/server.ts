/** HTTP side of the unit (fastify): health now; clips, snapshot and preview come with the VAR node. */
import Fastify, { type FastifyInstance, type FastifyBaseLogger } from 'fastify';
import type { Logger } from '../log.js';

/** What /health reports. */
export interface HealthReport {
  ok: boolean;
  [k: string]: unknown;
}

/** Build the HTTP server; `health` is read on each request. */
export function buildHttpServer(opts: { log: Logger; health: () => HealthReport }): FastifyInstance {
  // pino's Logger and fastify's base logger differ only in typing details.
  const app = Fastify({ loggerInstance: opts.log as unknown as FastifyBaseLogger, disableRequestLogging: true, bodyLimit: 16 * 1024 });
  app.get('/health', async (_req, reply) => {
    const h = opts.health();
    return reply.code(h.ok ? 200 : 503).send(h);
  });
  return app;
}
