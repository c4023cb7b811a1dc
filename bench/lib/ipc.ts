// A bench process forked with an IPC channel (the Materialize double runs in one of its
// own so that it shares neither the event loop nor the RSS of what is measured): both
// sides send `{ op, … }` messages whose types the child's file declares.
import { fork, type ChildProcess } from 'node:child_process';
import process from 'node:process';

/** A message over the channel: `op` says which. */
export interface OpMessage {
  op: string;
}

/**
 * True when `value` is a message. Only the `op` is checked: both ends are files of this
 * folder, and the child's file declares the shapes of its messages for both.
 */
function isMessage<Message extends OpMessage>(value: unknown): value is Message {
  return (
    typeof value === 'object' && value !== null && 'op' in value && typeof value.op === 'string'
  );
}

/** The parent's side of a forked child. */
export interface Forked<Reply extends OpMessage, Command extends OpMessage> {
  child: ChildProcess;
  /** The next message whose op is `op`; rejects if the child exits first. */
  reply: <Op extends Reply['op']>(op: Op) => Promise<Extract<Reply, { op: Op }>>;
  send: (command: Command) => void;
}

/**
 * Forks `node file ...args` with the child's stdout and stderr on this process's own;
 * `name` names the child in errors.
 */
export function forkWithIpc<Reply extends OpMessage, Command extends OpMessage>(
  name: string,
  file: string,
  args: readonly string[] = [],
): Forked<Reply, Command> {
  const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const reply = <Op extends Reply['op']>(op: Op): Promise<Extract<Reply, { op: Op }>> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: unknown): void => {
        if (!isMessage<Extract<Reply, { op: Op }>>(message) || message.op !== op) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`the ${name} exited (${code}) before "${op}"`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  return { child, reply, send: (command) => void child.send(command) };
}

/** The child's side: sends `message` to the parent. */
export function sendToParent<Reply extends OpMessage>(message: Reply): void {
  if (!process.send) throw new Error('this process was not forked with an IPC channel');
  process.send(message);
}

/** The child's side: calls `handle` with every message of the parent. */
export function onParentMessage<Command extends OpMessage>(
  handle: (command: Command) => void,
): void {
  process.on('message', (message: unknown) => {
    if (isMessage<Command>(message)) handle(message);
  });
}
