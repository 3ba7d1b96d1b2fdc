/** A minimal MultiCam client for the CLI: one connection, one command, the whole reply. */
import { connect } from 'node:net';

/** Send one command and resolve with the parsed JSON reply (reads until the device closes). */
export function sendMultiCam(host: string, port: number, command: Record<string, unknown>, timeoutMs = 65000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect({ host, port }, () => sock.write(JSON.stringify({ timestamp: Date.now() / 1000, deviceId: 'cli', ...command })));
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`no reply within ${timeoutMs} ms`)));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text) as Record<string, unknown>);
      } catch {
        reject(new Error(`device sent no JSON reply (${JSON.stringify(text.slice(0, 80))})`));
      }
    });
  });
}
