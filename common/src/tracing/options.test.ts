import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/parse.js';
import { tracingFragment } from './options.js';

const load = (env: Record<string, string>) =>
  loadConfig({ tracing: tracingFragment({ service: 'svc' }) }, env).tracing;

describe('tracingFragment (the standard OTEL_* variables)', () => {
  it('is off with nothing set, and with every off switch', () => {
    expect(load({}).enabled).toBe(false);
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(load({ ...endpoint, OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(load({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    // A sampler or a service name alone asks for no export.
    expect(load({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_SERVICE_NAME: 'x' }).enabled).toBe(false);
  });

  it('an endpoint turns OTLP on; the traces path is appended to the base, not to a full traces URL', () => {
    const base = load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
    expect(base).toMatchObject({ enabled: true, exporters: { otlp: true, console: false } });
    expect(base.otlp).toEqual({
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: {},
      timeoutMs: 10_000,
      compression: 'none',
    });
    const full = load({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/custom/path',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
    });
    expect(full.otlp.url).toBe('https://traces.example/custom/path');
    expect(full.otlp.protocol).toBe('http/json');
  });

  it('OTEL_TRACES_EXPORTER names exporters; otlp without an endpoint goes to the spec default', () => {
    expect(load({ OTEL_TRACES_EXPORTER: 'otlp' }).otlp.url).toBe('http://localhost:4318/v1/traces');
    expect(load({ OTEL_TRACES_EXPORTER: 'console' })).toMatchObject({
      enabled: true,
      exporters: { otlp: false, console: true },
    });
    expect(load({ OTEL_TRACES_EXPORTER: 'otlp, console' }).exporters).toEqual({ otlp: true, console: true });
  });

  it('reads headers, resource attributes, service name, sampler and batch settings', () => {
    const t = load({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b,x-team=relay',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-team=traces',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,deployment.environment.name=prod',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
    });
    expect(t.otlp.headers).toEqual({ 'api-key': 'a b', 'x-team': 'traces' });
    expect(t.serviceName).toBe('from-attrs');
    expect(t.resourceAttributes).toEqual({ 'deployment.environment.name': 'prod' });
    expect(t.sampler).toEqual({ name: 'parentbased_traceidratio', ratio: 0.25 });
    // The batch size never exceeds the queue.
    expect(t.batch).toEqual({
      scheduleDelayMs: 100,
      exportTimeoutMs: 30_000,
      maxQueueSize: 100,
      maxExportBatchSize: 100,
    });
    expect(load({ OTEL_SERVICE_NAME: 'named', OTEL_RESOURCE_ATTRIBUTES: 'service.name=x' }).serviceName).toBe(
      'named',
    );
    expect(load({}).serviceName).toBe('svc');
    expect(load({}).sampler).toEqual({ name: 'parentbased_always_on', ratio: 1 });
  });

  it('names a bad value in one line, and never shows a header value', () => {
    expect(() => load({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /^config error: OTEL_EXPORTER_OTLP_PROTOCOL must be http\/protobuf or http\/json/,
    );
    expect(() => load({ OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(
      /^config error: OTEL_TRACES_SAMPLER /,
    );
    expect(() => load({ OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/^config error: OTEL_TRACES_SAMPLER_ARG /);
    expect(() => load({ OTEL_TRACES_EXPORTER: 'jaeger' })).toThrow(/^config error: OTEL_TRACES_EXPORTER /);
    expect(() => load({ OTEL_SDK_DISABLED: 'yes' })).toThrow(/^config error: OTEL_SDK_DISABLED /);
    expect(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /^config error: OTEL_EXPORTER_OTLP_ENDPOINT must be a http\/https URL/,
    );
    expect(() => load({ OTEL_EXPORTER_OTLP_HEADERS: 'Authorization Bearer secret' })).toThrow(
      /^config error: OTEL_EXPORTER_OTLP_HEADERS must be a list of header key=value pairs \(got \*\*\*\)$/,
    );
  });
});
