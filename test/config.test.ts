import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../src/config.js';
import { runCli } from './support/cli.js';

const strongSecret = () => randomBytes(36).toString('base64url');

/** loadConfig's ConfigError, or a failed assertion when it did not throw one. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  expect.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** The variable names a ConfigError complains about, from "NAME: problem" lines. */
const namedIn = (err: ConfigError) => err.problems.map((p) => p.split(':')[0]);

describe('Configuration', () => {
  let stateDir: string;
  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'cadre-config-test-'));
  });
  afterEach(() => {
    rmSync(stateDir, { recursive: true, force: true });
  });

  describe('loadConfig', () => {
    it('fills every default when the environment is empty', () => {
      const config = loadConfig({ JWT_SECRET: 'dev-secret', CADRE_STATE_DIR: stateDir });
      expect(config).to.include({
        nodeEnv: 'development',
        port: 3000,
        host: '127.0.0.1',
        publicUrl: 'http://127.0.0.1:3000',
        databaseUrl: 'postgres://postgres@127.0.0.1:5432/cadre',
        redisUrl: 'redis://127.0.0.1:6379',
        redisPrefix: 'cadre',
        jwtExpiresIn: 3600,
        logLevel: 'info',
        bodyLimitBytes: 1048576,
        heartbeatMs: 15000,
      });
      expect(config.adminEmails).to.deep.equal([]);
      expect(config.corsOrigins).to.deep.equal([]);
      expect(config.providers).to.deep.equal({});
    });

    it('parses integers and lists, and treats empty strings as unset', () => {
      const config = loadConfig({
        JWT_SECRET: 'dev-secret',
        PORT: '8080',
        HOST: '::1',
        BODY_LIMIT_BYTES: '2048',
        LOG_LEVEL: '',
        ADMIN_EMAILS: ' Boss@Example.com, ops@example.com ,',
        CORS_ORIGINS: 'https://a.example, https://b.example',
      });
      expect(config.port).to.equal(8080);
      expect(config.bodyLimitBytes).to.equal(2048);
      expect(config.logLevel).to.equal('info');
      expect(config.publicUrl).to.equal('http://[::1]:8080');
      expect(config.adminEmails).to.deep.equal(['boss@example.com', 'ops@example.com']);
      expect(config.corsOrigins).to.deep.equal(['https://a.example', 'https://b.example']);
    });

    it('parses LLM_PROVIDERS into named base URLs with optional keys', () => {
      const config = loadConfig({
        JWT_SECRET: 'dev-secret',
        LLM_PROVIDERS: 'Local=http://127.0.0.1:11434/v1, router=https://router.example/api/v1|sk-or-123',
      });
      expect(config.providers).to.deep.equal({
        local: { baseUrl: 'http://127.0.0.1:11434/v1', apiKey: undefined },
        router: { baseUrl: 'https://router.example/api/v1', apiKey: 'sk-or-123' },
      });
    });

    it('throws one ConfigError whose problems name every bad variable at once', () => {
      const err = configError({
        JWT_SECRET: 'dev-secret',
        PORT: 'abc',
        LOG_LEVEL: 'loud',
        DATABASE_URL: 'mysql://x',
        BODY_LIMIT_BYTES: '-1',
        REDIS_URL: 'http://127.0.0.1:6379',
        JWT_EXPIRES_IN: '1.5',
        LLM_PROVIDERS: 'no-url-here',
      });
      expect(err.code).to.equal('invalid_config');
      expect(namedIn(err)).to.have.members([
        'PORT',
        'LOG_LEVEL',
        'DATABASE_URL',
        'BODY_LIMIT_BYTES',
        'REDIS_URL',
        'JWT_EXPIRES_IN',
        'LLM_PROVIDERS',
      ]);
      for (const problem of err.problems) expect(err.message).to.contain(problem);
      expect(err.problems.find((p) => p.startsWith('PORT'))).to.contain('"abc"');
    });

    it('rejects out-of-range numbers', () => {
      expect(namedIn(configError({ JWT_SECRET: 'x', PORT: '70000' }))).to.deep.equal(['PORT']);
      expect(namedIn(configError({ JWT_SECRET: 'x', HEARTBEAT_MS: '60000' }))).to.deep.equal(['HEARTBEAT_MS']);
    });

    it('never echoes secrets or URL passwords in its problems', () => {
      const err = configError({
        JWT_SECRET: 'dev-secret',
        DATABASE_URL: 'mysql://admin:hunter2-pw@db.example/cadre',
        LLM_PROVIDERS: 'broken=ftp://nope|sk-live-do-not-print',
      });
      expect(namedIn(err)).to.have.members(['DATABASE_URL', 'LLM_PROVIDERS']);
      expect(err.message).to.not.contain('hunter2-pw');
      expect(err.message).to.not.contain('sk-live-do-not-print');
      expect(err.message).to.contain('db.example');
    });

    describe('in production', () => {
      it('requires JWT_SECRET', () => {
        const err = configError({ NODE_ENV: 'production' });
        expect(namedIn(err)).to.deep.equal(['JWT_SECRET']);
        expect(err.problems[0]).to.match(/required/);
      });

      it('accepts JWT_JWKS_URL instead of a secret', () => {
        const config = loadConfig({ NODE_ENV: 'production', JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json' });
        expect(config.jwtSecret).to.equal(undefined);
        expect(config.jwtJwksUrl).to.equal('https://idp.example/.well-known/jwks.json');
      });

      for (const [why, secret] of [
        ['short', 'changeme'],
        ['long but repetitive', 'abababababababababababababababababababab'],
      ] as const) {
        it(`rejects a ${why} JWT_SECRET as too weak`, () => {
          const err = configError({ NODE_ENV: 'production', JWT_SECRET: secret });
          expect(namedIn(err)).to.deep.equal(['JWT_SECRET']);
          expect(err.problems[0]).to.match(/weak/);
          expect(err.message).to.not.contain(secret);
        });
      }

      it('accepts a long random JWT_SECRET', () => {
        const secret = strongSecret();
        expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret }).jwtSecret).to.equal(secret);
      });
    });

    describe('outside production without JWT_SECRET', () => {
      it('generates a secret once and keeps it in CADRE_STATE_DIR, readable only by the owner', () => {
        const first = loadConfig({ NODE_ENV: 'development', CADRE_STATE_DIR: stateDir });
        const second = loadConfig({ NODE_ENV: 'development', CADRE_STATE_DIR: stateDir });
        expect(first.jwtSecret).to.be.a('string').with.length.of.at.least(32);
        expect(second.jwtSecret).to.equal(first.jwtSecret);
        const file = join(stateDir, 'jwt-secret');
        expect(readFileSync(file, 'utf8').trim()).to.equal(first.jwtSecret);
        expect(statSync(file).mode & 0o777).to.equal(0o600);
      });
    });
  });

  describe('the CLI refuses to start with a bad configuration', () => {
    it('exits non-zero and names every bad variable on stderr', async () => {
      const result = await runCli(['migrate'], {
        CADRE_STATE_DIR: stateDir,
        PORT: 'abc',
        LOG_LEVEL: 'loud',
        DATABASE_URL: 'mysql://x',
        BODY_LIMIT_BYTES: '-1',
      });
      expect(result.code).to.not.equal(0);
      for (const name of ['PORT', 'LOG_LEVEL', 'DATABASE_URL', 'BODY_LIMIT_BYTES']) {
        expect(result.stderr, `stderr names ${name}`).to.match(new RegExp(`^\\s*- ${name}:`, 'm'));
      }
      expect(result.stdout).to.equal('');
    });

    it('exits non-zero naming JWT_SECRET in production without a secret', async () => {
      const result = await runCli(['migrate'], { CADRE_STATE_DIR: stateDir, NODE_ENV: 'production' });
      expect(result.code).to.not.equal(0);
      expect(result.stderr).to.match(/JWT_SECRET: required in production/);
    });

    it('exits non-zero naming JWT_SECRET in production with a weak secret, without printing it', async () => {
      const result = await runCli(['web'], { CADRE_STATE_DIR: stateDir, NODE_ENV: 'production', JWT_SECRET: 'password123' });
      expect(result.code).to.not.equal(0);
      expect(result.stderr).to.match(/JWT_SECRET: too weak/);
      expect(result.stderr).to.not.contain('password123');
    });
  });
});
