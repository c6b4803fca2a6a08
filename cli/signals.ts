/** Resolves with the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
}

/** Agent timings from the environment (tests use short ones). */
export function agentTimings() {
  const n = (v: string | undefined) => (v ? Number(v) : undefined);
  return {
    reconcileMs: n(process.env.FLOTILLA_RECONCILE_MS),
    restartBackoffMs: n(process.env.FLOTILLA_RESTART_BACKOFF_MS),
    retryBaseMs: n(process.env.FLOTILLA_RETRY_BASE_MS),
    retryCapMs: n(process.env.FLOTILLA_RETRY_CAP_MS),
    stopTimeoutSec: n(process.env.FLOTILLA_STOP_TIMEOUT_S),
    firstPollWaitMs: n(process.env.FLOTILLA_FIRST_POLL_WAIT_MS),
    prePullWaitMs: n(process.env.FLOTILLA_PREPULL_WAIT_MS),
    proxyEjectMs: n(process.env.FLOTILLA_PROXY_EJECT_MS),
    endpointDrainMs: n(process.env.FLOTILLA_ENDPOINT_DRAIN_MS),
    networkIdleMs: n(process.env.FLOTILLA_NETWORK_IDLE_MS),
  };
}
