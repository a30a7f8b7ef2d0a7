/**
 * Galata (Playwright) configuration for the securenb sidebar UI tests: Debian's Chromium,
 * no video (it would need a downloaded ffmpeg), a real `jupyter lab` on 127.0.0.1.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

// The server root the tests tamper with; workers inherit it from the main process.
if (!process.env.SECURENB_UI_ROOT) {
  process.env.SECURENB_UI_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'securenb-ui-'));
}
if (!process.env.SECURENB_UI_REAL_ROOT) {
  process.env.SECURENB_UI_REAL_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'securenb-ui-real-'));
}

const port = process.env.SECURENB_UI_PORT || '8899';
const realPort = process.env.SECURENB_UI_REAL_PORT || '8898';

module.exports = {
  ...baseConfig,
  reporter: [['list'], ['json', { outputFile: 'test-results/results.json' }]],
  testDir: './tests',
  projects: [
    // the panel against the fixture API: every state, on demand
    { name: 'fixture', testMatch: 'sidebar.spec.ts', use: { baseURL: `http://127.0.0.1:${port}` } },
    // the real server extension, a real kernel, bwrap: the example notebook end to end
    { name: 'real', testMatch: 'real-flow.spec.ts', use: { baseURL: `http://127.0.0.1:${realPort}` } }
  ],
  workers: 1,
  retries: 0,
  timeout: 90000,
  expect: { toHaveScreenshot: { maxDiffPixelRatio: 0.02 } },
  snapshotPathTemplate: '{testDir}/__screenshots__/{arg}{ext}',
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    video: 'off',
    trace: 'off',
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    }
  },
  webServer: [
    {
      command: `${process.env.JUPYTER_BIN || 'jupyter'} lab --config jupyter_server_test_config.py`,
      url: `http://127.0.0.1:${port}/lab`,
      timeout: 120000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe'
    },
    {
      command: `${process.env.JUPYTER_BIN || 'jupyter'} lab --config jupyter_real_config.py`,
      url: `http://127.0.0.1:${realPort}/lab`,
      timeout: 120000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe'
    }
  ]
};
