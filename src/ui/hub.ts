// Wake-ups for the server's event streams: a stream subscribes to keys ("runs", "jobs",
// "run:<id>") and waits until one of them is notified or a timeout passes. A notification that
// arrives while the stream is busy sending is kept, so none is lost between two waits.

export interface Subscription {
  /** Resolves at the next notification (at once if one came since the last wait) or after `ms`. */
  wait(ms: number): Promise<void>;
  close(): void;
}

export class Hub {
  private readonly subs = new Map<string, Set<SubscriptionImpl>>();

  subscribe(keys: readonly string[]): Subscription {
    const sub = new SubscriptionImpl(() => {
      for (const k of keys) {
        const set = this.subs.get(k);
        set?.delete(sub);
        // Keys are per run: forget a run's key when nobody watches it.
        if (set?.size === 0) this.subs.delete(k);
      }
    });
    for (const k of keys) {
      let set = this.subs.get(k);
      if (!set) this.subs.set(k, (set = new Set()));
      set.add(sub);
    }
    return sub;
  }

  notify(key: string): void {
    for (const sub of this.subs.get(key) ?? []) sub.wake();
  }

  /** Wakes every subscriber (shutdown). */
  notifyAll(): void {
    for (const set of this.subs.values()) for (const sub of set) sub.wake();
  }
}

class SubscriptionImpl implements Subscription {
  private pending = false;
  /** A closed subscription never waits: a stream aborted while it was sending must not sleep. */
  private closed = false;
  private resolve: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly onClose: () => void) {}

  wake(): void {
    if (this.resolve) this.finish();
    else this.pending = true;
  }

  private finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const r = this.resolve;
    this.resolve = null;
    r?.();
  }

  wait(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.finish(), ms);
    });
  }

  close(): void {
    this.closed = true;
    this.finish();
    this.onClose();
  }
}
