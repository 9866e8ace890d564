import { describe, expect, it } from 'vitest';
import { IdentityHasher } from '../../src/logger.ts';
import { captureLogs } from './support/logs.ts';

describe('createLogger', () => {
  it('writes JSON lines tagged with the service name', () => {
    const { logger, records } = captureLogs('info');
    logger.info({ port: 8080 }, 'listening');
    logger.debug('not at info level');
    expect(records()).toEqual([expect.objectContaining({ service: 'floodgate', port: 8080, msg: 'listening', level: 30 })]);
  });

  it('censors identity fields at the top level and one level down', () => {
    const { logger, records } = captureLogs();
    logger.info(
      { user_id: 'alice', tenant_id: 'acme', key: 'user:alice', nested: { userId: 'alice', tenant: 'acme' }, plugin: 'p' },
      'event',
    );
    const [record] = records();
    expect(record).toMatchObject({
      user_id: '[redacted]',
      tenant_id: '[redacted]',
      key: '[redacted]',
      nested: { userId: '[redacted]', tenant: '[redacted]' },
      plugin: 'p',
    });
    expect(JSON.stringify(records())).not.toContain('alice');
    expect(JSON.stringify(records())).not.toContain('acme');
  });
});

describe('IdentityHasher', () => {
  it('gives one identity the same short hash under one salt, and never the identity itself', () => {
    const hasher = new IdentityHasher('salt-one');
    const hash = hasher.hash('alice');
    expect(hash).toMatch(/^[0-9a-f]{16}$/);
    expect(hasher.hash('alice')).toBe(hash);
    expect(new IdentityHasher('salt-one').hash('alice')).toBe(hash);
    expect(hasher.hash('bob')).not.toBe(hash);
  });

  it('gives different hashes under different salts, and a random salt by default', () => {
    expect(new IdentityHasher('salt-one').hash('alice')).not.toBe(new IdentityHasher('salt-two').hash('alice'));
    expect(new IdentityHasher().hash('alice')).not.toBe(new IdentityHasher().hash('alice'));
  });
});
