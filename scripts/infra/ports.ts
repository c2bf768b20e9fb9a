import { InfraError } from './errors.js';
import type { Env } from './paths.js';

/** Reads a TCP port from `env[variable]`, falling back to `fallback`; a bad value names the variable. */
export function portFromEnv(env: Env, variable: string, fallback: number): number {
  const raw = env[variable];
  if (raw === undefined || raw.trim() === '') return fallback;
  return checkPort(Number(raw.trim()), `${variable}=${raw}`);
}

export function checkPort(port: number, label: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new InfraError(`${label} is not a TCP port (expected an integer 1-65535)`);
  }
  return port;
}

export const defaultPorts = {
  kafka: 9092,
  kafkaController: 9093,
  redis: 6379,
  nginx: 8080,
  prometheus: 9090,
  // Not Alertmanager's usual 9093: the local Kafka's controller listens there.
  alertmanager: 9095,
} as const;

export interface Endpoints {
  kafkaBrokers: string;
  redisUrl: string;
  nginxUrl: string;
  prometheusUrl: string;
  alertmanagerUrl: string;
}

export function endpointsFor(env: Env): Endpoints {
  const kafka = portFromEnv(env, 'KAFKA_PORT', defaultPorts.kafka);
  const redis = portFromEnv(env, 'REDIS_PORT', defaultPorts.redis);
  const nginx = portFromEnv(env, 'NGINX_PORT', defaultPorts.nginx);
  const prometheus = portFromEnv(env, 'PROMETHEUS_PORT', defaultPorts.prometheus);
  const alertmanager = portFromEnv(env, 'ALERTMANAGER_PORT', defaultPorts.alertmanager);
  return {
    kafkaBrokers: `127.0.0.1:${kafka}`,
    redisUrl: `redis://127.0.0.1:${redis}`,
    nginxUrl: `http://127.0.0.1:${nginx}`,
    prometheusUrl: `http://127.0.0.1:${prometheus}`,
    alertmanagerUrl: `http://127.0.0.1:${alertmanager}`,
  };
}
