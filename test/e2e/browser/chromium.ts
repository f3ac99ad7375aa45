// Shared teardown for the headless-Chromium tests: stop the browser, then remove its profile.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * Kills Chromium and waits for it to exit, then removes its profile folder. Chromium's helper
 * processes (GPU, crashpad) can still be writing into the profile for a moment after the main
 * process exits, so a failed removal of this temp folder is retried and then left to the OS's
 * tmp cleanup: it says nothing about the test's result.
 */
export async function stopChromium(chrome: ChildProcess | undefined, profile: string | undefined): Promise<void> {
  if (chrome !== undefined && chrome.exitCode === null && chrome.signalCode === null) {
    const exited = new Promise((resolve) => chrome.once('exit', resolve));
    chrome.kill();
    await exited;
  }
  if (profile === undefined) return;
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 300 });
  } catch (e) {
    process.stderr.write(`note: could not remove the Chromium profile ${profile}: ${String(e)}\n`);
  }
}
