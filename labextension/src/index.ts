/** securenb JupyterLab extension: Security sidebar, notebook signature badge, commands, live events. */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { SecurenbApi } from './api';
import { auditLogView } from './auditlog';
import { SecurityPanel } from './panel';
import { eventSubject, isModelFile, isSecurenbEvent, labelWithReason, permission } from './roles';
import { SignatureBadge } from './toolbar';
import type { Action, Me } from './types';

const SHIELD =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 1 3 5v6c0 5.55 3.84 10.74 9 12 5.16-1.26 9-6.45 9-12V5l-9-4zm-2 16-4-4 1.41-1.41L10 14.17l6.59-6.59L18 9l-8 8z"/></svg>';
export const shieldIcon = new LabIcon({ name: 'securenb:shield', svgstr: SHIELD });

interface ActionCommand {
  id: string;
  label: string;
  action: Action;
  endpoint: 'sign' | 'verify' | 'scan' | 'gate';
  target: 'notebook' | 'file';
  kind?: 'model' | 'notebook';
}

const ACTIONS: ActionCommand[] = [
  { id: 'securenb:sign-notebook', label: 'Sign notebook', action: 'sign', endpoint: 'sign', target: 'notebook', kind: 'notebook' },
  { id: 'securenb:verify-notebook', label: 'Verify notebook', action: 'verify', endpoint: 'verify', target: 'notebook' },
  { id: 'securenb:scan-file', label: 'Scan file', action: 'scan', endpoint: 'scan', target: 'file' },
  { id: 'securenb:run-gate', label: 'Run release gate', action: 'gate', endpoint: 'gate', target: 'file' },
  { id: 'securenb:sign-file', label: 'Sign model', action: 'sign', endpoint: 'sign', target: 'file', kind: 'model' },
  { id: 'securenb:verify-file', label: 'Verify signature', action: 'verify', endpoint: 'verify', target: 'file' }
];

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'securenb:plugin',
  description: 'Security state of every artifact: signatures, scans, fairness, gate, provenance, audit.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILabShell, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const settings = ServerConnection.makeSettings();
    const api = new SecurenbApi(settings.baseUrl, (url, init) =>
      ServerConnection.makeRequest(url, init, settings)
    );
    let me: Me | null = null;
    const loadMe = async (): Promise<void> => {
      try {
        me = await api.me();
      } catch {
        me = null;
      }
      app.commands.notifyCommandChanged();
    };
    void loadMe();

    const panel = new SecurityPanel(api);
    panel.title.icon = shieldIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    const follow = (): void => panel.setNotebook(tracker.currentWidget?.context.path ?? null);
    tracker.currentChanged.connect(follow);
    follow();

    const badges = new Set<SignatureBadge>();
    const currentNotebook = (): string | null => tracker.currentWidget?.context.path ?? null;
    const selectedFile = (): string | null => {
      const item = browser?.selectedItems().next();
      return item && !item.done && item.value.type !== 'directory' ? item.value.path : null;
    };
    const targetPath = (cmd: ActionCommand, args: { path?: unknown }): string | null => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      if (cmd.target === 'notebook') {
        return currentNotebook();
      }
      const focusedBrowser = labShell?.currentWidget === browser || document.activeElement?.closest('.jp-DirListing');
      return (focusedBrowser ? selectedFile() : null) ?? currentNotebook() ?? selectedFile();
    };

    for (const cmd of ACTIONS) {
      app.commands.addCommand(cmd.id, {
        label: () => labelWithReason(cmd.label, permission(me, cmd.action)),
        caption: () => permission(me, cmd.action).reason ?? `${cmd.label} (securenb)`,
        icon: shieldIcon,
        isEnabled: args => permission(me, cmd.action).allowed && targetPath(cmd, args) !== null,
        isVisible: args =>
          cmd.target !== 'file' || cmd.id === 'securenb:scan-file' || cmd.id === 'securenb:run-gate' || isModelFile(targetPath(cmd, args) ?? ''),
        execute: async args => {
          const path = targetPath(cmd, args);
          if (!path) {
            return;
          }
          try {
            const body: { path: string; kind?: string } = { path };
            if (cmd.kind) {
              body.kind = cmd.kind;
            }
            const result = (await api.post<{ [k: string]: unknown }>(cmd.endpoint, body)) ?? {};
            const verdict = String(result.verdict ?? result.state ?? (result.verified === false ? 'FAILED' : 'done'));
            const failed = result.verified === false || /fail|unsafe|tamper/i.test(verdict);
            const msg = `${cmd.label}: ${path}: ${verdict}${result.reason ? ' — ' + String(result.reason) : ''}`;
            if (failed) {
              Notification.error(msg, { autoClose: 8000 });
            } else {
              Notification.success(msg, { autoClose: 5000 });
            }
          } catch (err) {
            Notification.error(`${cmd.label}: ${path}: ${(err as Error).message}`, { autoClose: 8000 });
          }
          void panel.refresh();
          badges.forEach(b => void b.update_());
        }
      });
      if (palette && cmd.target !== 'file' || palette && (cmd.id === 'securenb:scan-file' || cmd.id === 'securenb:run-gate')) {
        palette!.addItem({ command: cmd.id, category: 'securenb' });
      }
    }

    app.commands.addCommand('securenb:open-audit-log', {
      label: () => labelWithReason('Open audit log', permission(me, 'audit')),
      caption: () => permission(me, 'audit').reason ?? 'The append-only audit log (securenb)',
      icon: shieldIcon,
      isEnabled: () => permission(me, 'audit').allowed,
      execute: () => {
        const content = new Widget({ node: auditLogView(api) });
        const widget = new MainAreaWidget({ content });
        widget.id = 'securenb-audit-log';
        widget.title.label = 'Audit log';
        widget.title.icon = shieldIcon;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
      }
    });
    app.commands.addCommand('securenb:open-panel', {
      label: 'Show Security panel',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: 'securenb:open-audit-log', category: 'securenb' });
    palette?.addItem({ command: 'securenb:open-panel', category: 'securenb' });

    app.contextMenu.addItem({ command: 'securenb:sign-notebook', selector: '.jp-Notebook', rank: 90 });
    app.contextMenu.addItem({ command: 'securenb:verify-notebook', selector: '.jp-Notebook', rank: 91 });
    app.contextMenu.addItem({ command: 'securenb:run-gate', selector: '.jp-Notebook', rank: 92 });
    app.contextMenu.addItem({ command: 'securenb:open-audit-log', selector: '.jp-Notebook', rank: 93 });
    const fileItem = '.jp-DirListing-item[data-isdir="false"]';
    for (const [id, rank] of [['securenb:scan-file', 60], ['securenb:sign-file', 61], ['securenb:verify-file', 62]] as const) {
      app.contextMenu.addItem({ command: id, selector: fileItem, rank });
    }

    const extension: DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> = {
      createNew: (nb, context) => {
        const badge = new SignatureBadge(api, () => context.path, () =>
          void app.commands.execute('securenb:verify-notebook', { path: context.path })
        );
        badges.add(badge);
        badge.disposed.connect(() => badges.delete(badge));
        nb.toolbar.insertItem(10, 'securenbSignature', badge);
        return badge;
      }
    };
    app.docRegistry.addWidgetExtension('Notebook', extension);

    app.serviceManager.events.stream.connect((_, event) => {
      if (!isSecurenbEvent(event.schema_id)) {
        return;
      }
      panel.onEvent(eventSubject(event));
      badges.forEach(b => void b.update_());
    });
  }
};

export default plugin;
