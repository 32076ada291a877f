// What the browser scenarios share: starting a process and waiting for the line that says it is
// ready, a loopback page server, the system Chromium under Playwright, and screenshots.
//
// Everything listens on 127.0.0.1 with ports the kernel picks; every wait is bounded and waits on
// an event (a line, a navigation, an element), never on time alone.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Where a run's logs and screenshots go (interop/.work/run/browser). */
export const OUT = process.env.BROWSER_OUT ?? path.join(HERE, '..', '.work', 'run', 'browser');
mkdirSync(OUT, { recursive: true });

/** The Chromium Debian installs (`apt-get install chromium`); Playwright downloads no browser. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const children = [];
/** Stops every process started here (TERM, then KILL after 5 s). Safe to call twice. */
export async function stopAll() {
  await Promise.all(
    children.splice(0).map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => stopAll().finally(() => process.exit(130)));
}

/**
 * Starts `cmd args` (stdout and stderr to OUT/NAME.out|.err) and resolves with
 * `{ child, match, output }` once a stdout line matches `ready` (a RegExp), or rejects when the
 * process exits first or `timeoutMs` passes. `output()` returns all stdout so far.
 */
export function startReady(name, cmd, args, { ready, timeoutMs = 60_000, env = {} } = {}) {
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const outLog = createWriteStream(path.join(OUT, `${name}.out`));
  const errLog = createWriteStream(path.join(OUT, `${name}.err`));
  let stdout = '';
  let stderrTail = '';
  child.stderr.on('data', (d) => {
    errLog.write(d);
    stderrTail = (stderrTail + d).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name}: not ready within ${timeoutMs} ms\n${stderrTail}`)),
      timeoutMs,
    );
    let done = false;
    child.stdout.on('data', (d) => {
      outLog.write(d);
      stdout += d;
      const m = !done && ready.exec(stdout);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ child, match: m, output: () => stdout });
      }
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready\n${stderrTail}`));
    });
  });
}

/** Serves `html` at `/` (and 404 elsewhere) on 127.0.0.1:0; resolves with `{ origin, close }`. */
export function pageServer(html) {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ origin: `http://127.0.0.1:${port}`, close: () => server.close() });
    });
  });
}

/** Headless system Chromium. */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces the container may not grant.
    args: ['--no-sandbox'],
  });
}

/** Saves a screenshot of `page` as OUT/NN-name.png and says so. */
let shots = 0;
export async function shot(page, name) {
  shots += 1;
  const file = path.join(OUT, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
  return file;
}

/** Prints one checked fact; throws if it does not hold. */
export function check(what, ok, detail) {
  console.log(`${ok ? '  ok ' : '  NOT'} ${what}`);
  if (!ok) throw new Error(`check failed: ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
}

/** An unused loopback port (the kernel's choice, released at once), for servers that must be
 * told their port before they start. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = http.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Runs `main`, stops every process, and exits 0 or 1 with the error. */
export async function run(main) {
  try {
    await main();
    await stopAll();
    process.exit(0);
  } catch (e) {
    console.error(e?.stack ?? e);
    await stopAll();
    process.exit(1);
  }
}
