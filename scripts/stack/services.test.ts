import { describe, expect, it } from 'vitest';
import {
  absoluteRuleFiles,
  localNginxConf,
  retargetScrapeConfig,
  stackPorts,
  upstreamsConf,
} from './services.js';

describe('localNginxConf', () => {
  it('binds the docker port to loopback on ${NGINX_PORT} and logs to the service log', () => {
    const conf =
      'http {\n  access_log /dev/stdout;\n  server {\n    listen 8080;\n    listen 0.0.0.0:8080 default_server;\n  }\n}\n';
    expect(localNginxConf(conf, '/w/logs/nginx.log')).toBe(
      'http {\n  access_log /w/logs/nginx.log;\n  server {\n    listen 127.0.0.1:${NGINX_PORT};\n    listen 127.0.0.1:${NGINX_PORT} default_server;\n  }\n}\n',
    );
  });

  it('leaves a conf that already uses ${NGINX_PORT} listening where it says', () => {
    const conf = 'listen ${NGINX_PORT};\nlisten 9999;\n';
    expect(localNginxConf(conf, '/log')).toBe(conf);
  });
});

describe('upstreamsConf', () => {
  it('lists each gateway with passive health checks', () => {
    expect(upstreamsConf([8081, 8082])).toBe(
      'server 127.0.0.1:8081 max_fails=3 fail_timeout=10s;\nserver 127.0.0.1:8082 max_fails=3 fail_timeout=10s;\n',
    );
  });
});

describe('retargetScrapeConfig', () => {
  it('moves only the loopback targets whose port moved', () => {
    const text = "targets: ['127.0.0.1:8081', '127.0.0.1:8082', 'gateway-1:8081', '127.0.0.1:80810']";
    expect(retargetScrapeConfig(text, new Map([[8081, 18281]]))).toBe(
      "targets: ['127.0.0.1:18281', '127.0.0.1:8082', 'gateway-1:8081', '127.0.0.1:80810']",
    );
  });
});

describe('absoluteRuleFiles', () => {
  it('resolves rule files against the template directory and keeps the rest', () => {
    const text =
      '# scrape\nglobal:\n  scrape_interval: 5s\nrule_files:\n  - alerts.yml\n  - /abs/other.yml\n';
    expect(absoluteRuleFiles(text, '/repo/prometheus')).toBe(
      '# scrape\nglobal:\n  scrape_interval: 5s\nrule_files:\n  - /repo/prometheus/alerts.yml\n  - /abs/other.yml\n',
    );
    expect(absoluteRuleFiles('global: {}\n', '/x')).toBe('global: {}\n');
  });
});

describe('stackPorts', () => {
  it('uses the documented defaults and variables', () => {
    expect(stackPorts({})).toEqual({
      kafka: 9092,
      redis: 6379,
      'mock-openai': 8090,
      'message-relay': 9102,
      'ai-consumer': 9101,
      'gateway-1': 8081,
      'gateway-2': 8082,
      nginx: 8080,
      prometheus: 9090,
      alertmanager: 9095,
    });
    expect(stackPorts({ GATEWAY_2_PORT: '18282', AI_CONSUMER_PORT: '19201' })).toMatchObject({
      'gateway-2': 18282,
      'ai-consumer': 19201,
    });
    expect(() => stackPorts({ MESSAGE_RELAY_PORT: 'x' })).toThrow('MESSAGE_RELAY_PORT=x is not a TCP port');
  });
});
