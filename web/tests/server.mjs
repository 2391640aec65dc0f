// Starts and stops the real Chorus server for the browser tests: the binary cargo built, a fresh
// SQLite file, the demo catalog, the built web app, a known admin token.

import { spawn } from 'node:child_process';
import { mkdtempSync, createWriteStream, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ADMIN_TOKEN = 'browser-tests-admin-token';
const ROOT = resolve(new URL('../..', import.meta.url).pathname);

async function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

export class ChorusServer {
  constructor(artifacts) {
    this.dir = mkdtempSync(join(tmpdir(), 'chorus-browser-'));
    this.log = createWriteStream(join(artifacts, 'server.log'), { flags: 'a' });
    this.child = null;
    this.port = 0;
    this.standin = null;
    this.standinPort = 0;
    // More `chorus.toml` for the next start (a test that needs other settings restarts).
    this.extraConfig = '';
  }

  /// The Spotify stand-in (`chorus spotify-standin`), started once and kept across restarts.
  get standinUrl() {
    return `http://127.0.0.1:${this.standinPort}/`;
  }

  async startStandin(binary) {
    this.standinPort = await freePort();
    this.standin = spawn(binary, ['spotify-standin', '--bind', `127.0.0.1:${this.standinPort}`, '--client-id', 'chorus-standin'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.standin.stdout.pipe(this.log, { end: false });
    this.standin.stderr.pipe(this.log, { end: false });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        await fetch(`${this.standinUrl}standin/state`);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('the Spotify stand-in did not start');
  }

  async standinControl(path, body) {
    const response = await fetch(`${this.standinUrl}standin/${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`stand-in ${path}: ${response.status}`);
    const text = await response.text();
    return text ? JSON.parse(text) : undefined;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const binary = process.env.CHORUS_BIN ?? join(ROOT, 'target/debug/chorus');
    if (!this.standin) await this.startStandin(binary);
    // The bandits' history every second (default: a minute), so the dashboard has one to plot.
    const config = join(this.dir, 'chorus.toml');
    writeFileSync(config, `[bandit]\nhistory_interval_s = 1\n[spotify]\npoll_interval_ms = 500\n${this.extraConfig}`);
    this.child = spawn(binary, ['serve'], {
      cwd: ROOT,
      env: {
        ...process.env,
        CHORUS_BIND: `127.0.0.1:${this.port}`,
        DATABASE_URL: `sqlite://${join(this.dir, 'chorus.db')}`,
        CHORUS_ADMIN_TOKEN: ADMIN_TOKEN,
        CHORUS_RATE_LIMIT: 'false',
        CHORUS_WEB_DIR: join(ROOT, 'web/dist'),
        CHORUS_LOG: 'info,sqlx=warn',
        CHORUS_CONFIG: config,
        SPOTIFY_CLIENT_ID: 'chorus-standin',
        CHORUS_SPOTIFY_IMPORT: 'true',
        SPOTIFY_ACCOUNTS_URL: this.standinUrl,
        SPOTIFY_API_URL: `${this.standinUrl}v1/`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout.pipe(this.log, { end: false });
    this.child.stderr.pipe(this.log, { end: false });
    const exited = new Promise((_, fail) =>
      this.child.once('exit', (code) => fail(new Error(`the server exited with ${code}; see server.log`))),
    );
    await Promise.race([this.waitReady(), exited]);
  }

  async waitReady() {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${this.url}/ready`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error('the server was not ready within 120 s');
  }

  stopStandin() {
    this.standin?.kill('SIGTERM');
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async api(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }
}
