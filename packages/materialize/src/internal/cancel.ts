import { connect, type Socket } from 'node:net';

/** The request code of a CancelRequest: 1234 in the high 16 bits, 5678 in the low. */
const CANCEL_REQUEST_CODE = 80877102;

/** Where a session's server listens, and the session's BackendKeyData. */
export interface CancelTarget {
  readonly host: string;
  readonly port: number;
  readonly processId: number;
  readonly secretKey: number;
}

/** The 16-byte CancelRequest packet. */
function cancelPacket(processId: number, secretKey: number): Buffer {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeInt32BE(processId | 0, 8);
  packet.writeInt32BE(secretKey | 0, 12);
  return packet;
}

/**
 * Asks the server to cancel the statement a session runs: a new connection
 * whose only message is a CancelRequest with the session's pid and secret
 * (the PostgreSQL protocol; node-postgres has no public cancel). Needs no
 * pooled connection and no authentication, so it works when every pooled
 * connection is held by a subscription. Resolves when the server has closed
 * the connection (it answers nothing), or after `timeoutMs`; never rejects:
 * a cancel is best effort, and a FETCH ends by its own timeout anyway.
 *
 * Sent in plain text, as libpq did before PostgreSQL 17, also when the
 * session uses TLS: the packet carries no credential.
 */
export function sendCancel(target: CancelTarget, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const socket: Socket = target.host.startsWith('/')
      ? connect({ path: `${target.host}/.s.PGSQL.${target.port}` })
      : connect({ host: target.host, port: target.port });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref();
    socket.setNoDelay(true);
    socket.once('connect', () => socket.end(cancelPacket(target.processId, target.secretKey)));
    socket.once('error', done);
    socket.once('close', done);
    // Anything the server might send is ignored.
    socket.on('data', () => undefined);
  });
}
