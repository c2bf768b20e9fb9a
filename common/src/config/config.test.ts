import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { httpFragment, kafkaFragment, logFragment, openaiFragment, redisFragment } from './fragments.js';
import { loadConfig } from './parse.js';

const fragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: 'websocket-server', port: 8080 }),
  log: logFragment,
  openai: openaiFragment,
};

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(fragments, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies defaults for an empty environment', () => {
    const c = loadConfig(fragments, {});
    expect(c.kafka.brokers).toEqual(['127.0.0.1:9092']);
    expect(c.redis.url).toBe('redis://127.0.0.1:6379/0');
    expect(c.http).toMatchObject({ port: 8080, host: '0.0.0.0', appName: 'websocket-server' });
    expect(c.log.level).toBe('info');
    expect(c.openai).toMatchObject({ apiKey: undefined, maxWorkers: 200, model: 'gpt-4o-mini' });
  });

  it('reads the original variable names', () => {
    const c = loadConfig(fragments, {
      KAFKA_BOOTSTRAP_SERVERS: 'kafka:29092, other:9092',
      REDIS_HOST: 'redis',
      REDIS_PORT: '6380',
      SERVER_ID: 'gw-7',
      APP_NAME: 'relay',
      OPENAI_API_KEY: 'sk-test',
      MAX_WORKERS: '25',
      LOG_LEVEL: 'DEBUG',
    });
    expect(c.kafka.brokers).toEqual(['kafka:29092', 'other:9092']);
    expect(c.redis.url).toBe('redis://redis:6380/0');
    expect(c.http.serverId).toBe('gw-7');
    expect(c.http.appName).toBe('relay');
    expect(c.openai.apiKey).toBe('sk-test');
    expect(c.openai.maxWorkers).toBe(25);
    expect(c.log.level).toBe('debug');
  });

  it('REDIS_URL wins over REDIS_HOST/REDIS_PORT; a password is URL-encoded', () => {
    expect(loadConfig(fragments, { REDIS_URL: 'redis://cache:7000/2', REDIS_HOST: 'x' }).redis.url).toBe(
      'redis://cache:7000/2',
    );
    expect(loadConfig(fragments, { REDIS_PASSWORD: 'p@ss word' }).redis.url).toBe(
      'redis://:p%40ss%20word@127.0.0.1:6379/0',
    );
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig(fragments, { REDIS_PORT: '', LOG_LEVEL: '' }).redis.url).toBe(
      'redis://127.0.0.1:6379/0',
    );
  });

  it.each([
    ['REDIS_PORT', 'abc', /REDIS_PORT must be an integer/],
    ['REDIS_PORT', '70000', /REDIS_PORT must be <= 65535/],
    ['MAX_WORKERS', '0', /MAX_WORKERS must be >= 1/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['KAFKA_BOOTSTRAP_SERVERS', 'no-port', /KAFKA_BOOTSTRAP_SERVERS must be host:port/],
    ['REDIS_URL', 'http://x', /REDIS_URL must be a redis\/rediss URL/],
    ['LOG_PRETTY', 'yes', /LOG_PRETTY must be true or false/],
    ['KAFKA_CLIENT', 'librdkafka', /KAFKA_CLIENT must be one of kafkajs, platformatic/],
  ])('a bad %s=%s stops with one line naming it', (name, value, pattern) => {
    const err = errorOf({ [name]: value });
    expect(err.variable).toBe(name);
    expect(err.message).toMatch(pattern);
    expect(err.message.startsWith(`config error: ${name} `)).toBe(true);
    expect(err.message).not.toContain('\n');
  });

  it('never echoes a secret value in the error line', () => {
    const err = errorOf({ OPENAI_BASE_URL: 'not a url', OPENAI_API_KEY: 'sk-secret' });
    expect(err.message).not.toContain('sk-secret');
  });

  it('KAFKA_CLIENT picks the Kafka client library, kafkajs by default', () => {
    expect(loadConfig(fragments, {}).kafka.client).toBe('kafkajs');
    expect(loadConfig(fragments, { KAFKA_CLIENT: 'platformatic' }).kafka.client).toBe('platformatic');
    expect(loadConfig(fragments, { KAFKA_CLIENT: 'KafkaJS' }).kafka.client).toBe('kafkajs');
  });

  it('parses booleans explicitly ("false" is false)', () => {
    expect(loadConfig(fragments, { LOG_PRETTY: 'false' }).log.pretty).toBe(false);
    expect(loadConfig(fragments, { LOG_PRETTY: '1' }).log.pretty).toBe(true);
  });
});
