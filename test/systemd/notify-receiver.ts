/**
 * Test helper: a real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET.
 *
 * Node cannot receive AF_UNIX datagrams, so a tiny Perl program does (perl-base is Essential on
 * Debian, unlike python3). Not socat: `socat UNIX-RECV:` reads with an ancillary-data buffer and
 * so keeps the pipe fd that systemd-notify's BARRIER=1 message carries; the barrier then never
 * lifts and systemd-notify gives up after 5 s with exit code 1 (seen with socat 1.7.4.4). Perl's
 * recv() passes no control buffer, so the kernel closes the passed fd at once — what PID 1 does
 * after processing the message — and the barrier lifts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { findExecutable } from '../helpers/chronyd.js';

/** One datagram: its fields and when this process read it (Date.now()). */
export interface NotifyMessage {
  at: number;
  fields: string[];
}

/** A listening notify socket. */
export interface NotifyReceiver {
  /** Path for NOTIFY_SOCKET. */
  socket: string;
  /** The receiving process (SIGSTOP it to play a busy PID 1). */
  pid: number;
  /** Every datagram so far, BARRIER=1 ones left out. */
  messages: NotifyMessage[];
  /** Called for each new message (BARRIER=1 left out). */
  onMessage(fn: (m: NotifyMessage) => void): void;
  /** Resolve with the first message (from index `from` on) that has `field`, or throw after timeoutMs. */
  waitFor(field: string | RegExp, timeoutMs: number, from?: number): Promise<NotifyMessage>;
  stop(): Promise<void>;
}

const PERL = `
use strict; use warnings; use Socket; use IO::Socket::UNIX;
$| = 1;
my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $ARGV[0]) or die "cannot bind $ARGV[0]: $!\\n";
print "LISTENING\\n";
while (1) {
  my $buf;
  defined($s->recv($buf, 65536)) or die "recv: $!\\n";
  $buf =~ s/\\\\/\\\\\\\\/g; $buf =~ s/\\n/\\\\n/g;
  print "$buf\\n";
}
`;

/** Why these tests cannot run here (no perl or no systemd-notify), or null. */
export function notifyReceiverSkipReason(): string | null {
  if (findExecutable('perl') === null) return 'perl is not installed';
  if (findExecutable('systemd-notify') === null) return 'systemd-notify is not installed (package systemd)';
  return null;
}

/** Bind `dir/notify` and start collecting messages. */
export async function startNotifyReceiver(dir: string): Promise<NotifyReceiver> {
  const socket = join(dir, 'notify');
  const child: ChildProcess = spawn('perl', ['-e', PERL, socket], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const messages: NotifyMessage[] = [];
  const listeners: Array<(m: NotifyMessage) => void> = [];
  let err = '';
  let partial = '';
  let listening: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'LISTENING') {
        listening();
        continue;
      }
      const text = line.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
      const fields = text.split('\n').filter((f) => f !== '');
      if (fields.length === 1 && fields[0] === 'BARRIER=1') continue;
      const m = { at: Date.now(), fields };
      messages.push(m);
      for (const fn of listeners) fn(m);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    ready,
    exited.then(() => {
      throw new Error(`notify receiver exited: ${err}`);
    }),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`notify receiver did not start: ${err}`)), 5000).unref()),
  ]);
  return {
    socket,
    pid: child.pid ?? -1,
    messages,
    onMessage: (fn) => listeners.push(fn),
    waitFor: async (field, timeoutMs, from = 0) => {
      const match = (m: NotifyMessage) => m.fields.some((f) => (typeof field === 'string' ? f === field : field.test(f)));
      const end = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.slice(from).find(match);
        if (found) return found;
        if (Date.now() > end) {
          throw new Error(`no ${String(field)} within ${timeoutMs} ms; got ${JSON.stringify(messages.slice(from).map((m) => m.fields))}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
