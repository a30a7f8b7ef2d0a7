/**
 * End to end with the real securenb server extension and a real kernel: run the example
 * notebook (%%secure_train in bwrap, %scan_model, %sign_model), see the model in the panel
 * with its badges and provenance, tamper it on disk and verify: its row says TAMPERED.
 */
import { expect, test } from '@jupyterlab/galata';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const PANEL = '#securenb-security';
const ROOT = process.env.SECURENB_UI_REAL_ROOT as string;
const MODEL = `${PANEL} .snb-row[title="outputs/model.npy"]`;
const BIN = process.env.JUPYTER_BIN ? path.dirname(process.env.JUPYTER_BIN) : '';

/** `securenb ARGS` in the server's workspace, as a user at a terminal would run it. */
function securenb(...args: string[]): number {
  try {
    execFileSync(path.join(BIN, 'securenb'), args, {
      cwd: ROOT,
      env: {
        ...process.env,
        XDG_CONFIG_HOME: `${ROOT}-xdg`, // as jupyter_real_config.py sets for the server
        SECURENB_KEY_PASSPHRASE: process.env.SECURENB_KEY_PASSPHRASE ?? 'ui test passphrase'
      },
      stdio: 'ignore'
    });
    return 0;
  } catch (err) {
    return (err as { status: number }).status;
  }
}

test.use({ autoGoto: true, mockUser: false });

test.describe.serial('real server, real kernel', () => {
  test.setTimeout(240000);

  test('example notebook: the trained, scanned and signed model appears with its badges and provenance', async ({ page }) => {
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('docmanager:open', { path: 'pipeline.ipynb' });
    });
    await page.locator('.jp-NotebookPanel').waitFor();
    await page.sidebar.openTab('securenb-security');
    await expect(page.locator(`${PANEL} .snb-scope`)).toContainText('Notebook: pipeline.ipynb');
    await page.notebook.run();
    await page.notebook.save();
    // the panel updated from the server's events: no refresh was clicked; and the model is
    // listed under its notebook (the run's provenance names it), without "Show all"
    const model = page.locator(MODEL);
    await expect(model.locator('[data-badge="signature"]')).toContainText('signed by', { timeout: 60000 });
    await expect(page.locator(`${PANEL} .snb-scope`)).toContainText('Notebook: pipeline.ipynb');
    await page.locator(`${PANEL} .snb-scope-toggle`).click();
    await expect(page.locator(`${PANEL} .snb-scope`)).toContainText('Workspace: all artifacts');
    await expect(model.locator('[data-badge="signature"]')).toContainText('signed by');
    await expect(model.locator('[data-badge="scan"]')).toHaveText('SAFE');
    const user = process.env.SECURENB_ACTOR ?? os.userInfo().username;
    await expect(model.locator('[data-badge="signature"]')).toHaveText(`signed by ${user}`);
    await model.click();
    await expect(page.locator(`${PANEL} .snb-detail-title`)).toHaveText('model.npy');
    const graph = page.locator(`${PANEL} svg.snb-graph`);
    await expect(graph.locator('.snb-node[data-kind="run"]')).toHaveCount(1);
    await expect(graph.locator('.snb-node[data-kind="dataset"]').first()).toBeVisible();
    await expect(page.locator(`${PANEL} [data-section="signature"]`)).toContainText('verified');
    // the signer is a person (the kernel's user, from the audit log), the key secondary
    await expect(page.locator(`${PANEL} [data-section="signature"]`)).toContainText(`Signer${user}`);
    await expect(page.locator(`${PANEL} [data-section="signature"]`)).toContainText('via a kernel of the Jupyter server');
    await expect(page.locator(`${PANEL} [data-section="signature"] .snb-mono`)).toHaveText(/^[0-9a-f]{64}$/);
    await page.locator(PANEL).screenshot({ path: 'test-results/real-model-detail.png' });
    await page.locator('.jp-Cell', { hasText: '%verify_model' }).first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: 'test-results/real-lab.png' });
  });

  test('tampering the model on disk: the next verify shows TAMPERED on the model row, live', async ({ page }) => {
    fs.appendFileSync(path.join(ROOT, 'outputs', 'model.npy'), Buffer.from('tampered'));
    await page.sidebar.openTab('securenb-security');
    const badge = page.locator(MODEL).locator('[data-badge="signature"]');
    await expect(badge).toContainText('signed by');
    // verified at a terminal: the panel learns it from the server's events, no refresh
    expect(securenb('verify', 'outputs/model.npy')).toBe(1);
    await expect(badge).toHaveText('TAMPERED', { timeout: 30000 });
    await expect(page.locator(MODEL)).toHaveClass(/snb-stripe-bad/);
    // and from the panel's own command: an error naming the file, the row stays TAMPERED
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('securenb:verify-file', { path: 'outputs/model.npy' });
    });
    await expect(page.locator('.jp-Notification-Toast-error, .Toastify__toast--error').first()).toContainText('outputs/model.npy');
    await expect(badge).toHaveText('TAMPERED');
    await page.locator(MODEL).click();
    const signature = page.locator(`${PANEL} [data-section="signature"]`);
    await expect(signature).toContainText('content changed');
    await expect(page.locator(`${PANEL} .snb-detail .snb-badge[data-badge="signature"]`)).toHaveText('TAMPERED');
    await page.locator(PANEL).screenshot({ path: 'test-results/real-model-tampered.png' });
  });
});
