/** HTTP side of the unit (fastify): health, clip download, snapshot and MJPEG preview. */
import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyBaseLogger, type FastifyReply } from 'fastify';
import type { Logger } from '../log.js';
import type { RecordingHandle } from '../device/types.js';
import type { Snapshotter } from '../media/snapshot.js';
import type { PreviewHub } from '../media/preview.js';
import type { ClipListItem } from '../device/clips.js';

/** What /health reports. */
export interface HealthReport {
  ok: boolean;
  [k: string]: unknown;
}

/** Where clips come from: an exact clip id (already checked against CLIP_NAME) or null. */
export interface ClipSource {
  open(clipId: string): Promise<RecordingHandle | null>;
  /** The whole file went out to a client (optional). */
  delivered?(clipId: string): void | Promise<void>;
}

/** Options of buildHttpServer; the optional parts answer 404 (clips) or 503 (media) when absent. */
export interface HttpServerOptions {
  log: Logger;
  health: () => HealthReport;
  clips?: ClipSource;
  snapshot?: Snapshotter;
  preview?: PreviewHub;
  /** GET /clips: every clip on the unit (absent: an empty list). */
  listClips?: () => ClipListItem[];
}

/** The only clip file names served: `<id>.mp4` with a plain id. */
export const CLIP_NAME = /^([A-Za-z0-9_-]{1,128})\.mp4$/;

/** Boundary between the parts of the /preview multipart stream. */
export const PREVIEW_BOUNDARY = 'arenacam-preview-frame';

/**
 * One byte range of a `Range` header against a body of `size` bytes: the range, 'unsatisfiable'
 * (answer 416), or null for no usable range (absent, malformed or several: answer 200 in full).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}

/** Build the HTTP server; `health` is read on each request. */
export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  // pino's Logger and fastify's base logger differ only in typing details.
  // maxParamLength: find-my-way's default of 100 would refuse the longest clip names (132).
  const app = Fastify({
    loggerInstance: opts.log as unknown as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: 16 * 1024,
    routerOptions: { maxParamLength: 256 },
  });
  app.get('/health', async (_req, reply) => {
    const h = opts.health();
    return reply.code(h.ok ? 200 : 503).send(h);
  });

  app.get('/clips', async (_req, reply) => reply.header('Cache-Control', 'no-store').send({ clips: opts.listClips?.() ?? [] }));

  // Clip responses being sent; cut at shutdown so a slow download cannot hold up close().
  const downloads = new Set<ServerResponse>();
  let closing = false;
  app.route<{ Params: { name: string } }>({
    method: ['GET', 'HEAD'],
    url: '/clips/:name',
    exposeHeadRoute: false,
    handler: async (req, reply) => {
      const m = CLIP_NAME.exec(req.params.name);
      const handle = m && opts.clips ? await opts.clips.open(m[1]) : null;
      if (!handle) return reply.code(404).send({ error: 'no such clip' });
      if (closing) {
        handle.release();
        return reply.code(503).header('Connection', 'close').send({ error: 'the unit is shutting down' });
      }
      const res = reply.raw;
      downloads.add(res);
      res.once('close', () => downloads.delete(res));
      const sent = sendClip(req.method === 'HEAD', req.headers, handle, reply);
      if (reply.statusCode === 200 && req.method === 'GET' && opts.clips?.delivered) {
        const clips = opts.clips;
        // 'finish': every byte was handed to the kernel (not just started); an aborted download does not count.
        reply.raw.once('finish', () => void Promise.resolve(clips.delivered?.(m![1])).catch(() => undefined));
      }
      return sent;
    },
  });

  app.get('/snapshot', async (_req, reply) => {
    if (!opts.snapshot) return reply.code(503).send({ error: 'snapshots are not available on this unit' });
    try {
      const snap = await opts.snapshot.latest();
      if (!snap) return reply.code(503).send({ error: 'no footage yet' });
      return reply
        .type('image/jpeg')
        .header('Cache-Control', 'no-store')
        .header('X-Capture-Time', String(Math.round(snap.captureMs)))
        .send(snap.jpeg);
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'snapshot failed');
      return reply.code(503).send({ error: `snapshot failed: ${(err as Error).message}` });
    }
  });

  const streams = new Set<ServerResponse>();
  app.get('/preview', { exposeHeadRoute: false }, (_req, reply) => {
    const hub = opts.preview;
    if (!hub || !hub.available()) return reply.code(503).send({ error: hub ? 'no footage yet' : 'preview is not available on this unit' });
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': `multipart/x-mixed-replace; boundary=${PREVIEW_BOUNDARY}`,
      'Cache-Control': 'no-store, no-cache, must-revalidate',
      Pragma: 'no-cache',
      // Each stream holds its connection; never keep it alive for reuse after.
      Connection: 'close',
    });
    streams.add(res);
    const unsubscribe = hub.subscribe({
      buffered: () => res.writableLength,
      send: (jpeg) => {
        if (res.writableEnded || res.destroyed) return; // ending at shutdown; 'close' unsubscribes
        res.write(`--${PREVIEW_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
        res.write(jpeg);
        res.write('\r\n');
      },
      end: () => endStream(res),
    });
    res.once('close', () => {
      streams.delete(res);
      unsubscribe();
    });
  });
  // Open preview streams would hold server.close() forever: end them first. Clip downloads are
  // cut (their handles are released on 'close'); the client may retry with a Range request.
  app.addHook('preClose', (done) => {
    closing = true;
    for (const res of streams) endStream(res);
    for (const res of downloads) res.destroy();
    downloads.clear();
    done();
  });
  return app;
}

/** End a preview stream with the closing boundary; cut it if the client does not take it soon. */
function endStream(res: ServerResponse): void {
  if (res.writableEnded) return;
  res.end(`--${PREVIEW_BOUNDARY}--\r\n`);
  setTimeout(() => res.destroy(), 1000).unref();
}

/** Answer a clip request (full, one range, or 416) and release the handle once the response is over. */
function sendClip(head: boolean, headers: Record<string, string | string[] | undefined>, handle: RecordingHandle, reply: FastifyReply): FastifyReply {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    handle.release();
  };
  reply.raw.once('close', release);
  try {
    const size = handle.size;
    // Without validators of our own, a conditional range cannot be honoured: send it whole.
    const range = headers['if-range'] ? null : parseRange(typeof headers.range === 'string' ? headers.range : undefined, size);
    reply.header('Accept-Ranges', 'bytes').header('Cache-Control', 'private, max-age=3600');
    if (range === 'unsatisfiable') {
      return reply.code(416).header('Content-Range', `bytes */${size}`).send({ error: 'range not satisfiable' });
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    reply.type('video/mp4').header('Content-Length', String(end - start + 1));
    if (range) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`);
    if (head || size === 0) return reply.send();
    return reply.send(createReadStream(handle.path, { start, end }));
  } catch (err) {
    release();
    throw err;
  }
}
