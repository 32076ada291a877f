// MCP Inspector's web UI (pinned in interop/package.json) in headless Chromium against
// `gatehouse demo`, as a newcomer would use it: no token pasted anywhere, a browser login.
//
//   node browser/inspector.mjs        (GATEHOUSE = path of the gatehouse binary)
//
// connect → 401 → discovery (RFC 9728, RFC 8414) → registration → the development authorization
// server's login page → consent → token → tools/list → tools/call lookup_invoice; then
// void_invoice → 403 insufficient_scope → re-authorization asking for invoices:write → consent →
// the void succeeds. Each step is checked in what the browser shows, and screenshotted.
//
// Started here, all on 127.0.0.1: the demo (ports the kernel picks) and the Inspector (its web
// server needs fixed ports, so they are picked free just before it starts).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUT, check, freePort, launch, run, shot, startReady } from './lib.mjs';

const GATEHOUSE = process.env.GATEHOUSE;
if (!GATEHOUSE) throw new Error('GATEHOUSE (the gatehouse binary) is not set');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE = process.execPath;
const INSPECTOR = path.join(HERE, '..', 'node_modules', '@modelcontextprotocol', 'inspector',
  'clients', 'launcher', 'build', 'index.js');
/** Generous bound for one UI step (a login round trip, a tool call). */
const STEP_MS = 30_000;

await run(async () => {
  const demo = await startReady(
    'inspector-demo',
    GATEHOUSE,
    ['demo', '--port', '0', '--issuer-port', '0', '--ledger-port', '0'],
    { ready: /Press Ctrl-C/, env: { RUST_LOG: 'info,rmcp=warn' } },
  );
  const mcp = /MCP endpoint\s+(\S+)/.exec(demo.output())[1];
  const issuer = /Authorization server\s+(\S+)/.exec(demo.output())[1];
  console.log(`demo: MCP ${mcp}, authorization server ${issuer}`);

  const [clientPort, sandboxPort, appPort] = [await freePort(), await freePort(), await freePort()];
  const inspector = await startReady(
    'inspector-web',
    NODE,
    [INSPECTOR, '--web', '--transport', 'http', '--server-url', mcp],
    {
      ready: /(http:\/\/127\.0\.0\.1:\d+\/?\?MCP_INSPECTOR_API_TOKEN=[0-9a-f]+)/,
      env: {
        HOME: path.join(OUT, 'inspector-home'),
        CLIENT_PORT: String(clientPort),
        MCP_SANDBOX_PORT: String(sandboxPort),
        MCP_APP_ORIGIN_PORT: String(appPort),
        MCP_AUTO_OPEN_ENABLED: 'false',
        MCP_INSPECTOR_SECRET_STORE: 'memory',
      },
    },
  );
  const inspectorUrl = inspector.match[1];

  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => m.type() === 'error' && console.log(`  (browser console) ${m.text().slice(0, 200)}`));

  await page.goto(inspectorUrl);
  await page.getByText('Disconnected', { exact: true }).first().waitFor();
  await shot(page, 'inspector-disconnected');

  // Connect: the Inspector meets the 401, discovers, registers and sends the browser to log in.
  await page.locator('[role=switch], input[type=checkbox]').first().click({ force: true });
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/authorize`));
  const login = await loginPage(page);
  check('login page reached through discovery from the 401', login.title.includes('Sign in'), login.title);
  check('login page asks for invoices:read on the MCP resource', login.scopes.includes('invoices:read') && login.text.includes(mcp), login);
  check('login page lists the demo users', ['alice', 'bob', 'carol'].every((u) => login.users.includes(u)), login.users);
  await shot(page, 'login-consent');
  await approveAs(page, 'alice');

  // Back in the Inspector with a token: connected, and tools/list shown.
  await page.waitForURL((u) => u.href.startsWith(`http://127.0.0.1:${clientPort}`));
  await page.getByText('Connected', { exact: true }).first().waitFor();
  check('connected after login', true);
  await shot(page, 'inspector-connected');
  const network = await networkLog(page);
  check('the Inspector saw the 401 and discovered the metadata', /401/.test(network) && /oauth-protected-resource/.test(network), network.slice(0, 400));

  await page.getByText('Tools', { exact: true }).click();
  for (const tool of ['invoice_history', 'list_invoices', 'lookup_invoice', 'void_invoice']) {
    await page.getByText(tool, { exact: true }).first().waitFor();
  }
  check('tools/list shows the four billing tools', true);

  await callTool(page, 'lookup_invoice', { invoiceId: 'INV-2041' });
  await page.getByText('INV-2041: open, total 1250.00 EUR').first().waitFor();
  check('tools/call lookup_invoice → INV-2041: open', true);
  await shot(page, 'lookup-invoice');

  // Step-up: void needs invoices:write; the 403 sends the browser back to the login page.
  await callTool(page, 'void_invoice', { invoiceId: 'INV-2041', reason: 'duplicate' });
  // The Inspector reads the 403's challenge and asks before it re-authorizes (SEP-2350: the
  // union of what was granted and what the call needs).
  const dialog = page.getByRole('dialog').filter({ hasText: 'Additional permissions required' });
  await dialog.waitFor();
  const dialogText = await dialog.innerText();
  check('403 insufficient_scope → the Inspector asks to add invoices:write', /invoices:write/.test(dialogText), dialogText);
  await shot(page, 'step-up-prompt');
  await dialog.getByRole('button', { name: 'Authorize' }).click();
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/authorize`));
  const stepUp = await loginPage(page);
  check('re-authorization asks for invoices:write', stepUp.scopes.includes('invoices:write'), stepUp.scopes);
  await shot(page, 'step-up-consent');
  await approveAs(page, 'alice');
  await page.waitForURL((u) => u.href.startsWith(`http://127.0.0.1:${clientPort}`));
  await page.getByText('Connected', { exact: true }).first().waitFor();

  await page.getByText('Tools', { exact: true }).click();
  await callTool(page, 'void_invoice', { invoiceId: 'INV-2041', reason: 'duplicate' });
  await page.getByText(/Voided INV-2041/).first().waitFor();
  check('void_invoice succeeds after step-up', true);
  await shot(page, 'void-invoice');

  await browser.close();
});

/** What the login page shows: title, requested scopes, the users offered, all text. */
async function loginPage(page) {
  await page.locator('input[name=user]').first().waitFor();
  return {
    title: await page.title(),
    text: await page.locator('body').innerText(),
    scopes: await page.locator('ul li code').allInnerTexts(),
    users: await page.locator('input[name=user]').evaluateAll((es) => es.map((e) => e.value)),
  };
}

/** Picks `user` on the login page and approves. */
async function approveAs(page, user) {
  await page.locator(`input[name=user][value="${user}"]`).check();
  await page.locator('button[name=decision][value=approve]').click();
}

/** The Inspector's network panel text. */
async function networkLog(page) {
  await page.getByText('Network', { exact: true }).first().click();
  return page.locator('body').innerText();
}

/** Opens `tool` in the Tools tab, fills its form and runs it. */
async function callTool(page, tool, args) {
  await page.getByText(tool, { exact: true }).first().click();
  for (const [name, value] of Object.entries(args)) {
    await page.getByRole('textbox', { name }).fill(value);
  }
  await page.getByRole('button', { name: 'Execute Tool' }).click();
}
