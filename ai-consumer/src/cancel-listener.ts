import {
  REDIS_KEYS,
  cancelControlSchema,
  once,
  type CancelControl,
  type Logger,
  type MessageListener,
  type PubSub,
} from '@relay/common';

export interface CancelListenerOptions {
  pubsub: PubSub;
  logger: Logger;
  /** Called for every valid cancel message; most are for requests another consumer holds. */
  onCancel: (request: CancelControl) => void;
  /** @default 'control:cancel' */
  channel?: string;
}

export interface CancelListener {
  /** Resolves once the subscription is active on the server. */
  start(): Promise<void>;
  /** Unsubscribes (the pub/sub connection belongs to the caller). Idempotent. */
  close(): Promise<void>;
}

/**
 * Listens on the cancel channel every ai-consumer shares (docs/delivery.md): the gateway that got a
 * client's `cancel` does not know which consumer holds the request, so it tells them all.
 */
export function createCancelListener(options: CancelListenerOptions): CancelListener {
  const { pubsub, onCancel } = options;
  const channel = options.channel ?? REDIS_KEYS.cancelChannel;
  const logger = options.logger.child({ component: 'cancel-listener', channel });
  let started = false;

  const listener: MessageListener = (message) => {
    let data: unknown;
    try {
      data = JSON.parse(message);
    } catch {
      // Anyone with Redis access can publish here; garbage must not stop the listener.
      logger.warn({ length: message.length }, 'ignoring a cancel message that is not JSON');
      return;
    }
    const parsed = cancelControlSchema.safeParse(data);
    if (!parsed.success) {
      logger.warn({ reason: parsed.error.issues[0]?.message }, 'ignoring an invalid cancel message');
      return;
    }
    onCancel(parsed.data);
  };

  return {
    async start() {
      await pubsub.subscribe(channel, listener);
      started = true;
    },
    close: once(async () => {
      if (started) await pubsub.unsubscribe(channel, listener);
    }),
  };
}
