/** VAR pairing on disk: the coordinator link (from config or `arenacam pair`) and the deviceKey (mode 0600). */
import { join } from 'node:path';
import { AtomicFile, readJsonFile, writeFileAtomic } from '../util/atomic.js';
import { parsePairLink } from '../protocols/var/messages.js';
import type { Logger } from '../log.js';

interface Pairing {
  /** The coordinator the key belongs to. */
  url: string | null;
  deviceKey: string | null;
  assignedName: string | null;
  pairedAtMs: number | null;
  /** Tokens already used or refused (a token is single use). */
  spentTokens: string[];
}

interface Link {
  url: string;
  token: string;
  savedAtMs: number;
}

const EMPTY: Pairing = { url: null, deviceKey: null, assignedName: null, pairedAtMs: null, spentTokens: [] };

/** Save a pairing link given on the command line; the running unit picks it up at its next attempt. */
export async function savePairLink(dataDir: string, link: string, nowMs: number): Promise<{ url: string } | { error: string }> {
  const p = parsePairLink(link);
  if ('error' in p) return p;
  const rec: Link = { url: p.url, token: p.token, savedAtMs: nowMs };
  await writeFileAtomic(join(dataDir, 'var-link.json'), JSON.stringify(rec), 0o600);
  return { url: p.url };
}

/** Where to connect, which token to pair with, and the key once paired. */
export class PairingStore {
  private state: Pairing = { ...EMPTY };
  private link: Link | null = null;
  private readonly file: AtomicFile;
  private readonly linkFile: string;
  private badConfigLogged = false;

  constructor(
    dataDir: string,
    private readonly configured: string | null,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.file = new AtomicFile(join(dataDir, 'var-pairing.json'), 0o600);
    this.linkFile = join(dataDir, 'var-link.json');
  }

  /** Read the pairing state (once, at start; afterwards it changes only through this store) and the link. */
  async load(): Promise<void> {
    this.state = { ...EMPTY, ...(await readJsonFile<Partial<Pairing>>(this.file.path, {})) };
    await this.reloadLink();
  }

  /** Re-read the link file (before every connection attempt, so `arenacam pair` takes effect). */
  async reloadLink(): Promise<void> {
    this.link = await readJsonFile<Link | null>(this.linkFile, null).catch((err) => {
      this.log.error({ err: (err as Error).message }, 'cannot read the pairing link file');
      return null;
    });
  }

  private async save(): Promise<void> {
    await this.file.save(() => JSON.stringify(this.state));
  }

  /** The coordinator to reach and the pairing token to offer (null: nothing configured). */
  target(): { url: string; token: string | null } | null {
    let url: string | null = null;
    let token: string | null = null;
    if (this.link) {
      url = this.link.url;
      token = this.link.token || null;
    } else if (this.configured) {
      const p = parsePairLink(this.configured);
      if ('error' in p) {
        if (!this.badConfigLogged) this.log.error({ error: p.error }, 'var.coordinator is not a usable link');
        this.badConfigLogged = true;
        return null;
      }
      url = p.url;
      token = p.token || null;
    }
    if (!url) return null;
    if (token && this.state.spentTokens.includes(token)) token = null;
    return { url, token };
  }

  /** The deviceKey, when it belongs to the coordinator we are about to reach. */
  key(): string | null {
    const t = this.target();
    return t && this.state.deviceKey && this.state.url === t.url ? this.state.deviceKey : null;
  }

  /** The pairing token to offer, if any is left. */
  token(): string | null {
    return this.target()?.token ?? null;
  }

  /** The name the coordinator gave. */
  assignedName(): string | null {
    return this.state.assignedName;
  }

  /** Keep the key (atomically, mode 0600) and spend the token. */
  async paired(key: string, assignedName: string | null, token: string | null): Promise<void> {
    this.state.url = this.target()?.url ?? null;
    this.state.deviceKey = key;
    this.state.assignedName = assignedName;
    this.state.pairedAtMs = this.now();
    if (token) this.state.spentTokens = [...this.state.spentTokens, token].slice(-50);
    await this.save();
  }

  /** Forget the key (auth_failed, unpaired). */
  async forgetKey(why: string): Promise<void> {
    if (!this.state.deviceKey) return;
    this.log.warn({ why }, 'deviceKey forgotten');
    this.state.deviceKey = null;
    await this.save();
  }

  /** A token was refused as invalid or expired: never offer it again. */
  async rejected(token: string | null, reason: string): Promise<void> {
    if (reason === 'pairing_disabled') return; // the token may work once pairing is enabled
    if (!token || this.state.spentTokens.includes(token)) return;
    this.state.spentTokens = [...this.state.spentTokens, token].slice(-50);
    await this.save();
  }
}
