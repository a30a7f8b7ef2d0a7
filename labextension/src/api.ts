/**
 * Client of the securenb REST API. It takes the request function as an argument
 * (JupyterLab's ServerConnection.makeRequest in the app, a fake in unit tests) so the
 * base URL, token and XSRF handling stay JupyterLab's.
 */
import type { ArtifactDetail, ArtifactPage, Me } from './types';

export type Requester = (url: string, init: RequestInit) => Promise<Response>;

/** A failed call, with the server's one-line reason. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class SecurenbApi {
  constructor(
    private readonly baseUrl: string,
    private readonly request: Requester
  ) {}

  /** Absolute URL of an API path, with query parameters that are set. */
  url(path: string, query: { [k: string]: string | number | null | undefined } = {}): string {
    const base = this.baseUrl.endsWith('/') ? this.baseUrl : this.baseUrl + '/';
    const params = Object.entries(query)
      .filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
    return `${base}securenb/api/${path}${params.length ? '?' + params.join('&') : ''}`;
  }

  async call<T>(path: string, init: RequestInit = {}, query = {}): Promise<T> {
    let response: Response;
    try {
      response = await this.request(this.url(path, query), init);
    } catch (err) {
      throw new ApiError(`securenb server unreachable: ${(err as Error).message}`, 0);
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ApiError(`securenb server sent a non-JSON answer (HTTP ${response.status})`, response.status);
      }
    }
    if (!response.ok) {
      const reason = (body as { error?: string } | null)?.error;
      const fallback = response.status === 404 ? 'securenb server extension not found' : `HTTP ${response.status}`;
      throw new ApiError(reason || fallback, response.status);
    }
    return body as T;
  }

  me(): Promise<Me> {
    return this.call<Me>('me');
  }

  artifacts(notebook: string | null, limit = 100, offset = 0, q = ''): Promise<ArtifactPage> {
    return this.call<ArtifactPage>('artifacts', {}, { notebook, limit, offset, q });
  }

  /** Every artifact of a notebook, fetched page by page. */
  async allArtifacts(notebook: string | null, pageSize = 500): Promise<ArtifactPage> {
    const first = await this.artifacts(notebook, pageSize, 0);
    const items = [...first.items];
    while (items.length < first.total) {
      const next = await this.artifacts(notebook, pageSize, items.length);
      if (next.items.length === 0) {
        break;
      }
      items.push(...next.items);
    }
    return { items, total: first.total, limit: items.length, offset: 0 };
  }

  artifact(digest: string): Promise<ArtifactDetail> {
    return this.call<ArtifactDetail>(`artifacts/${encodeURIComponent(digest)}`);
  }

  artifactByPath(path: string): Promise<ArtifactDetail> {
    return this.call<ArtifactDetail>('artifacts/by-path', {}, { path });
  }

  post<T = unknown>(action: 'sign' | 'verify' | 'scan' | 'gate', body: object): Promise<T> {
    return this.call<T>(action, { method: 'POST', body: JSON.stringify(body) });
  }

  auditEntries(offset = 0, limit = 100): Promise<{ items: unknown[]; size: number }> {
    return this.call('audit/entries', {}, { offset, limit });
  }
}
