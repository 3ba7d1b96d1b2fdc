/** A throwaway CA and a server certificate for 127.0.0.1 (IP SAN), made with the openssl CLI, for https tests and benches. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the CA certificate, the server key and the server certificate. */
export interface TestCerts {
  ca: string;
  key: string;
  cert: string;
}

/** Make the CA and a 127.0.0.1 server certificate signed by it in `dir` (valid two days). */
export async function makeTestCerts(dir: string, name = 'arenacam test CA'): Promise<TestCerts> {
  await mkdir(dir, { recursive: true });
  const p = (n: string): string => join(dir, n);
  await writeFile(
    p('server.ext'),
    'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  const steps: string[][] = [
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1'],
    ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', '2', '-out', p('server.pem'), '-extfile', p('server.ext')],
  ];
  for (const args of steps) {
    try {
      await run('openssl', args);
    } catch (err) {
      throw new Error(`openssl ${args[0]} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
    }
  }
  return { ca: p('ca.pem'), key: p('server.key'), cert: p('server.pem') };
}
