import type { Notifier } from './context.js';

/** In-process wake-ups for long-polls (Node). Other instances' changes are seen at the next poll. */
export function createNotifier(): Notifier {
  const waiters = new Map<string, Set<() => void>>();
  return {
    notify(nodeIds) {
      for (const id of nodeIds) {
        const set = waiters.get(id);
        if (!set) continue;
        waiters.delete(id);
        for (const wake of set) wake();
      }
    },
    wait(nodeId, ms, signal) {
      return new Promise<void>((resolve) => {
        let set = waiters.get(nodeId);
        if (!set) {
          set = new Set();
          waiters.set(nodeId, set);
        }
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          waiters.get(nodeId)?.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal?.addEventListener('abort', done, { once: true });
        set.add(done);
      });
    },
  };
}
