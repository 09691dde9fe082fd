/** Test configs, built from YAML text through the same loader the server uses. */
import { parse, stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { CompiledConfig } from '../../src/core/config.js';

export function compile(yaml: string): CompiledConfig {
  const result = parseConfigText(yaml, 'test.yaml');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.compiled;
}

/** The seed's case plus a native sidecar profile and an init-container profile. */
export const TEST_CONFIG_YAML = `
policy: opt-in
defaultProfiles: [log-shipper]
profiles:
  log-shipper:
    containers:
      - name: log-shipper
        image: registry.example.com/logging/agent:1.0
        ports: [{ containerPort: 2020 }]
        resources:
          requests: { cpu: 10m, memory: 32Mi }
          limits: { cpu: 200m, memory: 128Mi }
        volumeMounts: [{ name: app-logs, mountPath: /var/log/app, readOnly: true }]
    volumes:
      - name: app-logs
        emptyDir: {}
    appVolumeMounts:
      - name: app-logs
        mountPath: /var/log/app
    overrides:
      resources: true
      imageRegistries: [registry.example.com/logging/]
  proxy:
    nativeSidecar: true
    initContainers:
      - name: proxy-init
        image: registry.example.com/proxy/init:1.0
    containers:
      - name: proxy
        image: registry.example.com/proxy/proxy:1.0
        ports: [{ containerPort: 15001 }]
  metrics:
    containers:
      - name: metrics
        image: registry.example.com/metrics:1.0
        ports: [{ containerPort: 8080 }]
`;

/** TEST_CONFIG_YAML with top-level settings replaced by those in `extra`. */
export function testConfig(extra = ''): CompiledConfig {
  const base = parse(TEST_CONFIG_YAML) as Record<string, unknown>;
  const over = (parse(extra) ?? {}) as Record<string, unknown>;
  return compile(stringify({ ...base, ...over }));
}
