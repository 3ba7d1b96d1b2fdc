/** VAR sessions and their marks, kept on disk (var-sessions.json) with the recording they produced. */
import { join } from 'node:path';
import { AtomicFile, readJsonFile } from '../util/atomic.js';

/** One incident mark as the unit received it. */
export interface MarkRecord {
  markId: string;
  /** The coordinator's clock at the mark, when it sent one. */
  coordinatorTs: number | null;
  /** This unit's clock when the mark arrived. */
  deviceTs: number;
  note: string | null;
  /** 'coordinator' or 'button' (a local mark). */
  source: 'coordinator' | 'button';
}

/** One recording session (start_record … stop_record). */
export interface SessionRecord {
  sessionId: string | null;
  meta: Record<string, unknown>;
  profile: { width: number; height: number; fps: number; bitrateKbps: number } | null;
  /** Capture time of the first frame. */
  startedAtMs: number | null;
  /** Capture time of the last frame. */
  stoppedAtMs: number | null;
  /** The recording in the catalog, once finished. */
  fileName: string | null;
  marks: MarkRecord[];
}

/** Sessions kept (oldest dropped beyond this; their recordings stay in the catalog). */
const KEEP_SESSIONS = 500;
/** Marks kept that arrived outside any session. */
const KEEP_LOOSE_MARKS = 1000;

/** The session book: the open session, past ones, and marks that arrived outside any session. */
export class SessionBook {
  private sessions: SessionRecord[] = [];
  private readonly file: AtomicFile;

  constructor(dataDir: string) {
    this.file = new AtomicFile(join(dataDir, 'var-sessions.json'));
  }

  /** Load the book; a session left open by a crash is closed (its recording is recovered by the recorder). */
  async load(): Promise<SessionRecord | null> {
    this.sessions = await readJsonFile<SessionRecord[]>(this.file.path, []);
    return this.sessions.find((s) => s.sessionId !== null && s.stoppedAtMs === null && s.fileName === null) ?? null;
  }

  private async save(): Promise<void> {
    if (this.sessions.length > KEEP_SESSIONS) this.sessions = this.sessions.slice(-KEEP_SESSIONS);
    await this.file.save(() => JSON.stringify(this.sessions));
  }

  /** Open a session: it is in the book at once; `saved` resolves once it is on disk. */
  open(s: Omit<SessionRecord, 'marks' | 'stoppedAtMs' | 'fileName'>): { rec: SessionRecord; saved: Promise<void> } {
    const rec: SessionRecord = { ...s, stoppedAtMs: null, fileName: null, marks: [] };
    this.sessions.push(rec);
    return { rec, saved: this.save() };
  }

  /** Record the capture time of a session's first frame. */
  async started(rec: SessionRecord, startedAtMs: number): Promise<void> {
    rec.startedAtMs = startedAtMs;
    await this.save();
  }

  /** Record the end of a session. */
  async close(rec: SessionRecord, stoppedAtMs: number | null, fileName: string | null): Promise<void> {
    rec.stoppedAtMs = stoppedAtMs;
    rec.fileName = fileName;
    await this.save();
  }

  /** Keep a mark with `rec`, or with the catch-all entry for marks outside a session. */
  async addMark(rec: SessionRecord | null, mark: MarkRecord): Promise<void> {
    let target = rec;
    if (!target) {
      target = this.sessions.find((s) => s.sessionId === null && s.startedAtMs === null) ?? null;
      if (!target) {
        target = { sessionId: null, meta: {}, profile: null, startedAtMs: null, stoppedAtMs: null, fileName: null, marks: [] };
        this.sessions.push(target);
      }
    }
    target.marks.push(mark);
    // Marks outside any session are kept in one entry; only the newest are kept there.
    if (target.sessionId === null && target.marks.length > KEEP_LOOSE_MARKS) target.marks.splice(0, target.marks.length - KEEP_LOOSE_MARKS);
    await this.save();
  }

  /** The latest mark with this id. */
  findMark(markId: string): MarkRecord | null {
    for (let i = this.sessions.length - 1; i >= 0; i--) {
      const m = this.sessions[i].marks.findLast((x) => x.markId === markId);
      if (m) return m;
    }
    return null;
  }

  /** All sessions (copies not needed: read-only use). */
  all(): readonly SessionRecord[] {
    return this.sessions;
  }
}
