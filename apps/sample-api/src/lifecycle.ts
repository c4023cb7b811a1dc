import type { App } from './app.js';

/** How a graceful close ended. */
export type CloseOutcome = 'drained' | 'deadline';

/**
 * Shuts the app down in order: readiness turns 503 first, the server stops
 * accepting, in-flight requests finish (their connections then close), and the
 * onClose hooks release pools. Past `deadlineMs`, remaining connections are cut
 * so that shutdown always ends inside the grace period.
 */
export async function closeGracefully(app: App, deadlineMs: number): Promise<CloseOutcome> {
  app.beginShutdown();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<CloseOutcome>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), deadlineMs);
  });
  const outcome = await Promise.race([
    app.server.close().then((): CloseOutcome => 'drained'),
    deadline,
  ]);
  clearTimeout(timer);
  if (outcome === 'deadline') {
    app.server.server.closeAllConnections();
    await app.server.close();
  }
  return outcome;
}
