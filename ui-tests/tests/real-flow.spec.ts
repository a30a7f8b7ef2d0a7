/**
 * End to end with the real securenb server extension and a real kernel: run the example
 * notebook (%%secure_train in bwrap, %scan_model, %sign_model), see the model in the panel
 * with its badges and provenance, tamper it on disk and verify.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const PANEL = '#securenb-security';
const ROOT = process.env.SECURENB_UI_REAL_ROOT as string;
const MODEL = `${PANEL} .snb-row[title="outputs/model.npy"]`;

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
    await page.locator(`${PANEL} .snb-scope-toggle`).click();
    await expect(page.locator(`${PANEL} .snb-scope`)).toContainText('Workspace: all artifacts');
    // the panel updated from the server's events: no refresh was clicked
    const model = page.locator(MODEL);
    await expect(model.locator('[data-badge="signature"]')).toContainText('signed by', { timeout: 60000 });
    await expect(model.locator('[data-badge="scan"]')).toHaveText('SAFE');
    await model.click();
    await expect(page.locator(`${PANEL} .snb-detail-title`)).toHaveText('model.npy');
    const graph = page.locator(`${PANEL} svg.snb-graph`);
    await expect(graph.locator('.snb-node[data-kind="run"]')).toHaveCount(1);
    await expect(graph.locator('.snb-node[data-kind="dataset"]').first()).toBeVisible();
    await expect(page.locator(`${PANEL} [data-section="signature"]`)).toContainText('verified');
    await page.locator(PANEL).screenshot({ path: 'test-results/real-model-detail.png' });
    await page.locator('.jp-Cell').last().scrollIntoViewIfNeeded();
    await page.screenshot({ path: 'test-results/real-lab.png' });
  });

  test('tampering the model on disk: verify reports it does not verify', async ({ page }) => {
    fs.appendFileSync(path.join(ROOT, 'outputs', 'model.npy'), Buffer.from('tampered'));
    await page.sidebar.openTab('securenb-security');
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('securenb:verify-file', { path: 'outputs/model.npy' });
    });
    await expect(page.locator('.jp-Notification-Toast-error, .Toastify__toast--error').first()).toContainText('outputs/model.npy');
  });
});
