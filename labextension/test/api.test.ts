import { ApiError, SecurenbApi } from '../src/api';
import { eventSubject, eventTouches, labelWithReason, permission, isModelFile, isSecurenbEvent } from '../src/roles';
import type { ArtifactSummary } from '../src/types';

function fake(routes: (url: URL, init: RequestInit) => { status: number; body: string }) {
  const calls: { url: string; init: RequestInit }[] = [];
  const req = async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const r = routes(new URL(url), init);
    return new Response(r.body, { status: r.status });
  };
  return { calls, req };
}

const item = (i: number) => ({ digest: `sha256:${i}`, name: `m${i}` }) as unknown as ArtifactSummary;

describe('SecurenbApi', () => {
  it('builds URLs under the (JupyterHub) base URL and encodes the query', async () => {
    const { calls, req } = fake(() => ({ status: 200, body: '{"items":[],"total":0,"limit":100,"offset":0}' }));
    const api = new SecurenbApi('http://h/user/bob/', req);
    await api.artifacts('dir/a b&c.ipynb');
    expect(calls[0].url).toBe('http://h/user/bob/securenb/api/artifacts?notebook=dir%2Fa%20b%26c.ipynb&limit=100&offset=0');
  });

  it('escapes a digest in the path', () => {
    const api = new SecurenbApi('http://h/', async () => new Response('{}'));
    expect(api.url('artifacts/' + encodeURIComponent('sha256:ab/../x'))).toBe('http://h/securenb/api/artifacts/sha256%3Aab%2F..%2Fx');
  });

  it('fetches every page of a long list', async () => {
    const all = Array.from({ length: 1234 }, (_, i) => item(i));
    const { calls, req } = fake(url => {
      const off = Number(url.searchParams.get('offset'));
      const lim = Number(url.searchParams.get('limit'));
      return { status: 200, body: JSON.stringify({ items: all.slice(off, off + lim), total: all.length, limit: lim, offset: off }) };
    });
    const page = await new SecurenbApi('http://h/', req).allArtifacts(null, 500);
    expect(page.items.map(a => a.digest)).toEqual(all.map(a => a.digest));
    expect(calls).toHaveLength(3);
  });

  it('stops when the server returns fewer items than it promised', async () => {
    const { req } = fake(url => ({
      status: 200,
      body: JSON.stringify({ items: url.searchParams.get('offset') === '0' ? [item(0)] : [], total: 5, limit: 500, offset: 0 })
    }));
    expect((await new SecurenbApi('http://h/', req).allArtifacts(null)).items).toHaveLength(1);
  });

  it("reports the server's one-line reason", async () => {
    const { req } = fake(() => ({ status: 403, body: '{"error":"role viewer may not sign","status":403}' }));
    await expect(new SecurenbApi('http://h/', req).post('sign', { path: 'm.pkl' })).rejects.toEqual(new ApiError('role viewer may not sign', 403));
  });

  it('says when the server extension is missing or answers non-JSON', async () => {
    const api404 = new SecurenbApi('http://h/', async () => new Response('', { status: 404 }));
    await expect(api404.me()).rejects.toThrow('securenb server extension not found');
    const html = new SecurenbApi('http://h/', async () => new Response('<html>', { status: 502 }));
    await expect(html.me()).rejects.toThrow('non-JSON');
    const down = new SecurenbApi('http://h/', async () => { throw new TypeError('Failed to fetch'); });
    await expect(down.me()).rejects.toThrow('unreachable');
  });

  it('POSTs JSON bodies', async () => {
    const { calls, req } = fake(() => ({ status: 200, body: '{"verified":true}' }));
    await new SecurenbApi('http://h/', req).post('verify', { path: 'model.pkl' });
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ path: 'model.pkl' });
  });
});

describe('roles', () => {
  const me = {
    user: 'v', display_name: 'V', roles: ['viewer'],
    actions: { read: { allowed: true, reason: null }, sign: { allowed: false, reason: 'role viewer may not sign' } }
  };
  it('denies unless the server allowed', () => {
    expect(permission(me, 'read').allowed).toBe(true);
    expect(permission(me, 'sign')).toEqual({ allowed: false, reason: 'role viewer may not sign' });
    expect(permission(me, 'gate').allowed).toBe(false);
    expect(permission(null, 'read').allowed).toBe(false);
    expect(labelWithReason('Sign notebook', permission(me, 'sign'))).toBe('Sign notebook (not allowed: role viewer may not sign)');
  });
  it('recognises model files and securenb events', () => {
    expect(isModelFile('a/model.safetensors')).toBe(true);
    expect(isModelFile('a/x.ipynb')).toBe(false);
    expect(isSecurenbEvent('https://securenb.dev/events/signed/v1')).toBe(true);
    expect(isSecurenbEvent('https://events.jupyter.org/jupyter_server/contents_service/actions/v1')).toBe(false);
    expect(isSecurenbEvent(undefined)).toBe(false);
  });
});

describe('roles with a malformed answer', () => {
  it('denies when the server sent no actions at all', () => {
    expect(permission({ identity: {} } as never, 'sign').allowed).toBe(false);
  });
});

describe('events', () => {
  const open = 'sha256:' + 'a'.repeat(64);
  it('touch the open artifact by digest, or by path when the file changed on disk', () => {
    expect(eventTouches({ digest: open, path: null }, open, 'm.pt')).toBe(true);
    // a failed verify of a tampered model names the digest the file has now
    expect(eventTouches(eventSubject({ digest: 'sha256:' + 'b'.repeat(64), path: 'm.pt', detail: 'failed' }), open, 'm.pt')).toBe(true);
    expect(eventTouches({ digest: 'sha256:' + 'b'.repeat(64), path: 'other.pt' }, open, 'm.pt')).toBe(false);
    expect(eventTouches({ digest: null, path: 'm.pt' }, open, null)).toBe(false);
    expect(eventTouches(eventSubject({}), open, 'm.pt')).toBe(true);
  });
  it('read only string fields', () => {
    expect(eventSubject({ digest: 42, path: ['x'] })).toEqual({ digest: null, path: null });
    expect(eventSubject(null)).toEqual({ digest: null, path: null });
  });
});
