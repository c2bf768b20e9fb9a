import { describe, expect, it } from 'vitest';
import { endpointsFor, portFromEnv } from './ports.js';

describe('ports', () => {
  it('falls back to the default and reads the variable when set', () => {
    expect(portFromEnv({}, 'REDIS_PORT', 6379)).toBe(6379);
    expect(portFromEnv({ REDIS_PORT: ' 16379 ' }, 'REDIS_PORT', 6379)).toBe(16379);
  });

  it('names the variable of a bad value', () => {
    expect(() => portFromEnv({ KAFKA_PORT: '90x' }, 'KAFKA_PORT', 9092)).toThrow('KAFKA_PORT=90x');
    expect(() => portFromEnv({ KAFKA_PORT: '70000' }, 'KAFKA_PORT', 9092)).toThrow('KAFKA_PORT=70000');
  });

  it('derives client endpoints from the same settings', () => {
    expect(endpointsFor({ KAFKA_PORT: '19092', NGINX_PORT: '18080' })).toEqual({
      kafkaBrokers: '127.0.0.1:19092',
      redisUrl: 'redis://127.0.0.1:6379',
      nginxUrl: 'http://127.0.0.1:18080',
      prometheusUrl: 'http://127.0.0.1:9090',
      alertmanagerUrl: 'http://127.0.0.1:9095',
    });
  });
});
