// tests/e2e/ui/lib.mjs: what the page's browser tests share: Chromium launched the same
// way, the page's console and requests watched, and small check helpers.
//
// Environment: CHROMIUM (default /usr/bin/chromium), PROFILE_DIR (a fresh empty directory
// for Chromium's profile, required), UI_ASSETS (optional: a directory holding index.html,
// app.js and style.css to serve in place of the lab's own, so edited page files can be
// tried against an already built walab; tests/e2e/ui/run.sh sets it only when asked).

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ASSETS = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

let checks = 0;

export function ok(what) {
  checks += 1;
  console.log(`   ok: ${what}`);
}

export function fail(what) {
  throw new Error(what);
}

export function checksDone() {
  return checks;
}

export function required(...names) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    console.error(`${missing.join(' and ')} must be set (tests/e2e/ui/run.sh sets them)`);
    process.exit(2);
  }
}

// Chromium with a fresh profile. `statuses` are the HTTP statuses the page may meet on the
// way (Chromium logs each non-2xx answer as a console error): anything else in the console,
// any page error and any request to another origin is a problem. `intercept(route, url)`
// may answer a request itself and return true.
export async function openBrowser({ url, statuses = [502, 503], intercept = null, viewport = { width: 1280, height: 800 } }) {
  const context = await chromium.launchPersistentContext(process.env.PROFILE_DIR, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport,
  });
  const problems = [];
  const origin = new URL(url).origin;
  const assets = process.env.UI_ASSETS || '';
  const expected = new RegExp(`Failed to load resource: the server responded with a status of (${statuses.join('|')})`);
  const watch = (page) => {
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !expected.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
  };
  context.on('page', watch);
  await context.route('**/*', async (route) => {
    const target = new URL(route.request().url());
    // The page must work offline: anything it asks of another origin is a failure.
    if (target.origin !== origin) {
      problems.push(`request to another origin: ${target.href}`);
      return route.abort();
    }
    if (intercept && (await intercept(route, target))) return undefined;
    const asset = assets && ASSETS[target.pathname];
    if (asset) {
      return route.fulfill({
        status: 200,
        contentType: asset[1],
        headers: { 'Cache-Control': 'no-cache' },
        body: fs.readFileSync(path.join(assets, asset[0])),
      });
    }
    return route.continue();
  });
  const first = context.pages()[0];
  if (first) watch(first); // opened with the context, before the 'page' listener
  const page = first || (await context.newPage());
  return { context, page, problems };
}

// Run `body(page)`; on failure take a screenshot and set the exit code. Always closes.
export async function run(name, opened, screenshot, body) {
  const { context, page, problems } = opened;
  try {
    await body(page);
    if (problems.length) fail(problems.join('\n'));
    ok('no unexpected console errors, no page errors, no request to another origin');
    console.log(`PASS ${name}: ${checksDone()} checks`);
  } catch (e) {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    console.error(`FAIL ${name}: ${e.message}`);
    if (problems.length) console.error(problems.join('\n'));
    console.error(`(screenshot of the failure: ${screenshot})`);
    process.exitCode = 1;
  } finally {
    await context.close();
  }
  // A failed body may leave its own loops running (a writer, a sampler): the verdict is in.
  process.exit(process.exitCode ?? 0);
}

// Wait until `predicate(arg)` holds in the page; on timeout fail with `what` and what
// `describe(arg)` says the page shows.
export async function waitFor(page, what, predicate, arg, timeout, describe) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (e) {
    const shows = describe ? await page.evaluate(describe, arg).catch(() => '?') : '';
    fail(`${what}: not within ${timeout / 1000} s${shows ? ` (the page shows: ${shows})` : ''}`);
  }
}

export function statusAndHistory() {
  const status = document.getElementById('status').textContent;
  const history = [...document.querySelectorAll('#history li')].slice(0, 6).map((li) => li.textContent);
  return `status "${status}"; history: ${JSON.stringify(history)}`;
}
