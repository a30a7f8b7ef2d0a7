/** Notebook toolbar badge: the notebook's own signature state; click to verify. */
import { Widget } from '@lumino/widgets';
import { ApiError, SecurenbApi } from './api';
import { signatureBadge } from './badges';

export class SignatureBadge extends Widget {
  constructor(
    private readonly api: SecurenbApi,
    private readonly path: () => string,
    private readonly onVerify: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('snb-nb-badge');
    this.node.setAttribute('type', 'button');
    this.node.addEventListener('click', () => this.onVerify());
    this.node.textContent = 'signature …';
    void this.update_();
  }

  /** Refetch the notebook's state. */
  async update_(): Promise<void> {
    try {
      const a = await this.api.artifactByPath(this.path());
      const v = signatureBadge(a.badges.signature);
      this.show_(v.text, v.tone, `${v.title}. Click to verify.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this.show_('unsigned', 'warn', 'This notebook has no signature. Click to verify.');
      } else {
        this.show_('signature ?', 'neutral', `Signature state unavailable: ${(err as Error).message}`);
      }
    }
  }

  private show_(text: string, tone: string, title: string): void {
    this.node.textContent = `Notebook ${text}`;
    this.node.className = `snb-nb-badge lm-Widget snb-badge snb-tone-${tone}`;
    this.node.title = title;
    this.node.setAttribute('aria-label', `Notebook signature: ${text}. Click to verify.`);
    this.node.setAttribute('data-state', text);
  }
}
