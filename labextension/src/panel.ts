/**
 * The "Security" sidebar: the artifacts of the active notebook in a virtualised list
 * (only the visible rows are in the DOM, so 1,000 artifacts scroll without lag), and
 * the detail of the selected one.
 */
import { Widget } from '@lumino/widgets';
import { ApiError, SecurenbApi } from './api';
import { overallTone } from './badges';
import { badgeRow, detailView } from './detail';
import { h } from './dom';
import { rowWindow } from './listwindow';
import { EventSubject, eventTouches } from './roles';
import type { ArtifactSummary } from './types';

export const ROW_HEIGHT = 64;

type ViewState =
  | { kind: 'loading' }
  | { kind: 'error'; message: string }
  | { kind: 'list' }
  | { kind: 'detail'; digest: string; path: string | null };

export class SecurityPanel extends Widget {
  private notebook: string | null = null;
  private started = false;
  private showAll = false;
  private items: ArtifactSummary[] = [];
  private view: ViewState = { kind: 'loading' };
  private active = 0;
  private generation = 0;
  private detailGeneration = 0;
  private readonly header: HTMLElement;
  private readonly scopeLabel: HTMLElement;
  private readonly body: HTMLElement;
  private readonly status: HTMLElement;
  private listBox: HTMLElement | null = null;
  private spacer: HTMLElement | null = null;
  private rowsHost: HTMLElement | null = null;

  constructor(private readonly api: SecurenbApi) {
    super();
    this.id = 'securenb-security';
    this.addClass('snb-panel');
    this.title.caption = 'Security';
    this.scopeLabel = h('div', { class: 'snb-scope' });
    const refresh = h('button', { class: 'snb-refresh jp-Button', type: 'button', title: 'Refresh', 'aria-label': 'Refresh artifacts' }, '⟳');
    refresh.addEventListener('click', () => void this.refresh());
    this.header = h('div', { class: 'snb-header' }, h('h2', { class: 'snb-title' }, 'Security'), refresh);
    this.status = h('div', { class: 'snb-live', role: 'status', 'aria-live': 'polite' });
    this.body = h('div', { class: 'snb-body' });
    this.node.append(this.header, this.scopeLabel, this.status, this.body);
  }

  /** The notebook whose artifacts are listed (null: the whole workspace). */
  get notebookPath(): string | null {
    return this.notebook;
  }

  setNotebook(path: string | null): void {
    if (this.started && path === this.notebook && this.view.kind !== 'error') {
      return;
    }
    this.started = true;
    this.notebook = path;
    this.view = { kind: 'loading' };
    void this.refresh();
  }

  /** The notebook filter sent to the server: null lists the whole workspace. */
  private scope(): string | null {
    return this.showAll ? null : this.notebook;
  }

  private setShowAll(all: boolean): void {
    this.showAll = all;
    this.view = { kind: 'loading' };
    void this.refresh();
  }

  /** Refetch the list; keeps the detail open if one is shown. */
  async refresh(): Promise<void> {
    const gen = ++this.generation;
    const keepDetail = this.view.kind === 'detail' ? this.view : null;
    if (this.view.kind !== 'detail') {
      this.view = { kind: 'loading' };
      this.render();
    }
    try {
      const page = await this.api.allArtifacts(this.scope());
      if (gen !== this.generation) {
        return;
      }
      this.items = page.items;
      this.active = Math.min(this.active, Math.max(0, this.items.length - 1));
      if (keepDetail) {
        await this.openDetail(keepDetail.digest, keepDetail.path, true);
      } else {
        this.view = { kind: 'list' };
        this.render();
      }
    } catch (err) {
      if (gen === this.generation) {
        this.view = { kind: 'error', message: (err as Error).message };
        this.render();
      }
    }
  }

  /** Called on a securenb server event: refetch what it touched. */
  onEvent(event: EventSubject): void {
    if (this.view.kind === 'detail' && eventTouches(event, this.view.digest, this.view.path)) {
      void this.refresh();
    } else {
      void this.refreshQuietly();
    }
  }

  private async refreshQuietly(): Promise<void> {
    const gen = ++this.generation;
    try {
      const page = await this.api.allArtifacts(this.scope());
      if (gen === this.generation) {
        this.items = page.items;
        if (this.view.kind === 'list' && this.listBox && this.items.length > 0) {
          // keep the list element: its scroll position and focus survive the update
          this.listBox.setAttribute('data-count', String(this.items.length));
          this.active = Math.min(this.active, this.items.length - 1);
          this.drawRows();
        } else if (this.view.kind !== 'detail') {
          this.view = { kind: 'list' };
          this.render();
        }
      }
    } catch {
      // the next explicit refresh reports the error
    }
  }

  /**
   * Show one artifact. From a row it is fetched by path: two files with the same bytes share
   * a digest, and the row the user chose is the path.
   */
  async openDetail(digest: string, path: string | null = null, quiet = false): Promise<void> {
    // its own generation: a list refresh arriving meanwhile (an event, a command) must not
    // drop the artifact the user chose; choosing another one or the list does
    const gen = ++this.detailGeneration;
    this.view = { kind: 'detail', digest, path };
    if (!quiet) {
      // a refetch of the artifact shown keeps it on screen until the new one is there
      this.body.replaceChildren(h('div', { class: 'snb-state snb-loading', role: 'status' }, 'Loading artifact…'));
    }
    try {
      const detail = path ? await this.api.artifactByPath(path) : await this.api.artifact(digest);
      if (gen !== this.detailGeneration || this.view.kind !== 'detail') {
        return;
      }
      const back = h('button', { class: 'snb-back jp-Button', type: 'button' }, '← All artifacts');
      back.addEventListener('click', () => this.showList());
      const view = detailView(detail, d => void this.openDetail(d));
      this.body.replaceChildren(back, view);
      back.focus();
    } catch (err) {
      if (gen !== this.detailGeneration || this.view.kind !== 'detail') {
        return;
      }
      const msg = err instanceof ApiError ? err.message : String(err);
      const back = h('button', { class: 'snb-back jp-Button', type: 'button' }, '← All artifacts');
      back.addEventListener('click', () => this.showList());
      this.body.replaceChildren(back, h('div', { class: 'snb-state snb-error', role: 'alert' }, `Could not load the artifact: ${msg}`));
    }
  }

  private showList(): void {
    this.detailGeneration++;
    this.view = { kind: 'list' };
    this.render();
    this.listBox?.focus();
  }

  private render(): void {
    const scoped = this.scope();
    this.scopeLabel.replaceChildren(scoped ? `Notebook: ${scoped}` : 'Workspace: all artifacts');
    if (this.notebook) {
      const toggle = h('button', { class: 'snb-scope-toggle', type: 'button' }, this.showAll ? 'This notebook' : 'Show all');
      toggle.addEventListener('click', () => this.setShowAll(!this.showAll));
      this.scopeLabel.append(' ', toggle);
    }
    this.listBox = null;
    switch (this.view.kind) {
      case 'loading':
        this.body.replaceChildren(h('div', { class: 'snb-state snb-loading', role: 'status' }, 'Loading artifacts…'));
        return;
      case 'error': {
        const retry = h('button', { class: 'jp-Button snb-retry', type: 'button' }, 'Retry');
        retry.addEventListener('click', () => void this.refresh());
        this.body.replaceChildren(h('div', { class: 'snb-state snb-error', role: 'alert' }, h('p', {}, `Could not load artifacts: ${this.view.message}`), retry));
        return;
      }
      case 'list':
        this.renderList();
        return;
      default:
        return;
    }
  }

  private renderList(): void {
    if (this.items.length === 0) {
      this.body.replaceChildren(
        h('div', { class: 'snb-state snb-empty' },
          h('p', {}, 'No artifacts recorded yet.'),
          h('p', { class: 'snb-muted' }, 'Run a %%secure_train cell, then %sign_model, and they appear here.'))
      );
      if (this.scope() !== null) {
        const all = h('button', { class: 'jp-Button snb-show-all', type: 'button' }, 'Show all workspace artifacts');
        all.addEventListener('click', () => this.setShowAll(true));
        this.body.firstElementChild!.append(all);
      }
      return;
    }
    this.status.textContent = `${this.items.length} artifact${this.items.length === 1 ? '' : 's'}`;
    this.spacer = h('div', { class: 'snb-spacer' });
    this.rowsHost = h('div', { class: 'snb-rows' });
    this.spacer.append(this.rowsHost);
    this.listBox = h('div', {
      class: 'snb-list',
      role: 'listbox',
      tabindex: '0',
      'aria-label': 'Artifacts',
      'data-count': String(this.items.length)
    }, this.spacer);
    this.listBox.addEventListener('scroll', () => this.drawRows());
    this.listBox.addEventListener('keydown', ev => this.onKey(ev));
    this.body.replaceChildren(this.listBox);
    this.drawRows();
  }

  private drawRows(): void {
    if (!this.listBox || !this.spacer || !this.rowsHost) {
      return;
    }
    const w = rowWindow(this.items.length, ROW_HEIGHT, this.listBox.scrollTop, this.listBox.clientHeight || 600);
    this.spacer.style.height = `${w.totalHeight}px`;
    this.rowsHost.style.transform = `translateY(${w.offsetTop}px)`;
    const rows: HTMLElement[] = [];
    for (let i = w.start; i < w.end; i++) {
      rows.push(this.row(this.items[i], i));
    }
    this.rowsHost.replaceChildren(...rows);
    this.listBox.setAttribute('aria-activedescendant', `snb-row-${this.active}`);
  }

  private row(a: ArtifactSummary, i: number): HTMLElement {
    const el = h('div', {
      class: `snb-row snb-stripe-${overallTone(a.badges)}${i === this.active ? ' snb-active' : ''}`,
      role: 'option',
      id: `snb-row-${i}`,
      'aria-selected': i === this.active ? 'true' : 'false',
      'aria-setsize': String(this.items.length),
      'aria-posinset': String(i + 1),
      'data-digest': a.digest,
      title: a.path
    },
      h('div', { class: 'snb-row-name' }, h('span', { class: 'snb-kind' }, a.kind), ' ', a.name),
      badgeRow(a)
    );
    el.style.height = `${ROW_HEIGHT}px`;
    el.addEventListener('click', () => {
      this.active = i;
      void this.openDetail(a.digest, a.path);
    });
    return el;
  }

  private onKey(ev: KeyboardEvent): void {
    const n = this.items.length;
    let next = this.active;
    switch (ev.key) {
      case 'ArrowDown': next = Math.min(n - 1, this.active + 1); break;
      case 'ArrowUp': next = Math.max(0, this.active - 1); break;
      case 'PageDown': next = Math.min(n - 1, this.active + 10); break;
      case 'PageUp': next = Math.max(0, this.active - 10); break;
      case 'Home': next = 0; break;
      case 'End': next = n - 1; break;
      case 'Enter':
      case ' ':
        ev.preventDefault();
        void this.openDetail(this.items[this.active].digest, this.items[this.active].path);
        return;
      default:
        return;
    }
    ev.preventDefault();
    this.active = next;
    const box = this.listBox!;
    const top = next * ROW_HEIGHT;
    if (top < box.scrollTop) {
      box.scrollTop = top;
    } else if (top + ROW_HEIGHT > box.scrollTop + box.clientHeight) {
      box.scrollTop = top + ROW_HEIGHT - box.clientHeight;
    }
    this.drawRows();
  }
}
