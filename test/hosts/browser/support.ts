import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Debian's Chromium driven by playwright-core, for the status page's browser test. playwright-core
 * lives in this folder's own node_modules, which CI installs (`npm ci --prefix test/hosts/browser`)
 * and the root install does not; Chromium comes from the Debian package (`apt-get install chromium`).
 */

const HOST_DIR = import.meta.dirname;
const PLAYWRIGHT = join(HOST_DIR, 'node_modules/playwright-core/index.mjs');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Without these, Chromium reaches for Google's services, which this machine's closed network refuses. */
const QUIET_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** What the test uses of playwright-core's API. */
export interface Browser {
  newContext(options?: { viewport?: { width: number; height: number } }): Promise<BrowserContext>;
  close(): Promise<void>;
}
export interface BrowserContext {
  newPage(): Promise<Page>;
  cookies(): Promise<{ name: string; value: string; httpOnly: boolean; secure: boolean; sameSite: string }[]>;
}
export interface Locator {
  fill(value: string): Promise<void>;
  click(): Promise<void>;
  textContent(): Promise<string | null>;
  getAttribute(name: string): Promise<string | null>;
  isVisible(): Promise<boolean>;
  waitFor(options?: { state?: 'visible' | 'hidden'; timeout?: number }): Promise<void>;
}
export interface Page {
  goto(url: string): Promise<{ status(): number } | null>;
  url(): string;
  locator(selector: string): Locator;
  content(): Promise<string>;
  screenshot(options: { path: string; fullPage?: boolean }): Promise<Buffer>;
  waitForURL(pattern: RegExp, options?: { timeout?: number }): Promise<void>;
  waitForFunction(fn: string, arg?: unknown, options?: { timeout?: number; polling?: number }): Promise<unknown>;
}

export function browserInstalled(): boolean {
  return existsSync(PLAYWRIGHT) && existsSync(CHROMIUM);
}

/**
 * Whether the browser tests run: skipped with a loud message when playwright-core or Chromium is
 * missing, except under CI, where that is a failure (CI installs both).
 */
export function browserTestsEnabled(): boolean {
  if (browserInstalled()) return true;
  if (process.env.CI === 'true') {
    throw new Error('Chromium or playwright-core is missing; CI must install chromium and run `npm ci --prefix test/hosts/browser`');
  }
  console.warn('\n*** Chromium or playwright-core missing: browser tests are SKIPPED. Run `npm ci --prefix test/hosts/browser`. ***\n');
  return false;
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = (await import(PLAYWRIGHT)) as { chromium: { launch(options: unknown): Promise<Browser> } };
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: QUIET_FLAGS });
}
