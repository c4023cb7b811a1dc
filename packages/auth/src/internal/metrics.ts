import type { Metrics } from '@flowforge/observability';

/** What the auth code does with the failure counter. */
export interface FailureCounter {
  inc(labels: { reason: string }): void;
}

/** `flowforge_auth_failures_total{reason}`: one declaration, shared by bearer and API-key checks. */
export function failureCounter(metrics: Metrics): FailureCounter {
  return metrics.counter<'reason'>({
    name: 'auth_failures_total',
    help: 'Refused authentications by reason (missing, malformed_header, expired, signature, api_key_invalid, …).',
    labelNames: ['reason'],
  });
}
