/** Results kept while the coordinator link is down, delivered in order once it is back. */
import type { Logger } from '../../log.js';

/** A bounded FIFO of outgoing frames; the oldest go (and are logged) when it is full. */
export class Outbox {
  private readonly items: Array<{ type: string; text: string }> = [];
  private dropped = 0;

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  /** Keep a frame for later. */
  push(type: string, text: string): void {
    if (this.items.length >= this.max) {
      const gone = this.items.shift()!;
      this.dropped++;
      this.log.warn({ type: gone.type, dropped: this.dropped }, 'too many results waiting for the coordinator; the oldest was dropped');
    }
    this.items.push({ type, text });
  }

  /** Take everything, oldest first. */
  drain(): Array<{ type: string; text: string }> {
    return this.items.splice(0);
  }

  /** Frames waiting. */
  get size(): number {
    return this.items.length;
  }
}
