/**
 * @flowforge/auth against the real Keycloak 26.7 of `scripts/services`
 * (scripts/keycloak/keycloak.sh, realm scripts/keycloak/realm-flowforge.json, measured in
 * scripts/keycloak/NOTES.md). Tokens come from its token endpoint as a test client gets
 * them (password grant, client_credentials), and are checked through the public API with
 * settings from @flowforge/config's `loadSettings`, as an app does.
 *
 * - The shared realm `flowforge` is only read here.
 * - Key rotation and the outage run in a throwaway copy of that realm, created through
 *   the admin REST API and deleted afterwards: the shared realm's keys never change under
 *   the other tests and engineers that use it.
 * - "Keycloak down" is a loopback TCP proxy between the verifier and Keycloak, cut and
 *   restored, rather than `keycloak.sh stop`/`start`. The verifier sees the same thing
 *   (connection refused), but stopping the shared server would fail every other test
 *   using it meanwhile (turbo runs the sample app's tests beside these), and a restart
 *   costs 10–40 s here. A side benefit: Keycloak keeps issuing tokens while the verifier
 *   cannot reach it, so "a token it never saw, signed by a key it has" and "a key rotated
 *   while it was unreachable" are real tokens, not forged ones.
 *
 * Cases that need tokens Keycloak will not issue stay on the oidc-provider stand-in
 * (test/jwt.int.test.ts): the attack suite (forged headers, alg confusion), expired and
 * not-yet-valid tokens, ES256 keys, malformed key sets, JWKS request counting.
 */
import Fastify from 'fastify';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings, type Settings } from '@flowforge/config';
import { createLogger, createMetrics } from '@flowforge/observability';
import {
  createAuth,
  createJwtVerifier,
  isAuthError,
  type Auth,
  type AuthError,
  type AuthDependencies,
  type AuthOptions,
} from '../src/index.js';
import { bearer, fastifyAuth, requireRole } from '../src/fastify.js';
import {
  API_CLIENT,
  clientCredentialsGrant,
  createRealmCopy,
  eventually,
  fetchJwks,
  introspect,
  KEYCLOAK_REALM,
  KEYCLOAK_URL,
  KeycloakAdmin,
  KeycloakRequestError,
  logoutSession,
  OTHER_CLIENT,
  passwordGrant,
  realmEndpoints,
  refreshGrant,
  SERVICE_ACCOUNT,
  startTcpProxy,
  TENANT_A,
  TENANT_B,
  USERS,
  waitForKeycloak,
  type RealmClient,
  type RealmCopy,
  type RealmUser,
  type TokenSet,
} from './support/real-keycloak.js';

/** What an app reads from its environment, for the real Keycloak. */
function settingsFor(realm: string = KEYCLOAK_REALM, extra: Record<string, string> = {}): Settings {
  return loadSettings({
    APP_ENV: 'test',
    KEYCLOAK_URL,
    KEYCLOAK_REALM: realm,
    KEYCLOAK_CLIENT_ID: API_CLIENT.clientId,
    ...extra,
  });
}

/** `createAuth` as the README shows it: `settings.auth` spread in, plus the app's env. */
function authFrom(
  settings: Settings,
  overrides: Partial<AuthOptions> = {},
  dependencies: AuthDependencies = {},
): Auth {
  return createAuth({ ...settings.auth, appEnv: settings.app.env, ...overrides }, dependencies);
}

/** What the HTTP layer would answer: `200 jwt`, or status, code and why the token was refused. */
async function outcome(auth: Auth, token: string): Promise<string> {
  try {
    return `200 ${(await auth.authenticateBearer(`Bearer ${token}`)).method}`;
  } catch (error) {
    if (!isAuthError(error)) throw error;
    return `${error.status} ${error.code}${error.failure === undefined ? '' : ` ${error.failure}`}`;
  }
}

const kidOf = (token: string): string | undefined => decodeProtectedHeader(token).kid;

const settings = settingsFor();
let auth: Auth;

// Password grants cost an argon2 hash in Keycloak (0.2–0.4 s here): one per user and client.
const issued = new Map<string, Promise<TokenSet>>();
function tokensOf(who: RealmUser, client: RealmClient = API_CLIENT): Promise<TokenSet> {
  const key = `${who.username}@${client.clientId}`;
  let tokens = issued.get(key);
  if (!tokens) {
    tokens = passwordGrant(who, { client });
    issued.set(key, tokens);
  }
  return tokens;
}
const accessTokenOf = async (who: RealmUser, client?: RealmClient): Promise<string> =>
  (await tokensOf(who, client)).access_token;
let serviceAccountToken: Promise<TokenSet> | undefined;
const serviceAccountAccessToken = async (): Promise<string> =>
  (await (serviceAccountToken ??= clientCredentialsGrant())).access_token;

beforeAll(async () => {
  await waitForKeycloak();
  auth = authFrom(settings);
}, 45_000);

describe('tokens the real Keycloak issues (realm flowforge)', () => {
  it('access tokens live 300 s (the realm’s lifespan) and pass the lifetime limit, even set to 300', async () => {
    const tight = authFrom(settingsFor(KEYCLOAK_REALM, { AUTH_MAX_TOKEN_LIFETIME_SECONDS: '300' }));
    for (const token of [await accessTokenOf(USERS.alice), await serviceAccountAccessToken()]) {
      const { iat, exp } = decodeJwt(token);
      expect(exp! - iat!).toBe(300);
      expect(await outcome(tight, token)).toBe('200 jwt');
      expect(await outcome(auth, token)).toBe('200 jwt');
    }
    expect(await auth.health()).toMatchObject({ status: 'ok' });
  });

  it('alice by the password grant: her id, tenant, realm and client roles; aud and azp as Keycloak sets them', async () => {
    const token = await accessTokenOf(USERS.alice);
    // As issued: header typ JWT (not at+jwt), claim typ Bearer, aud [ours, "account"], azp ours.
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', typ: 'JWT' });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: settings.auth.keycloak.issuer,
      sub: USERS.alice.id,
      typ: 'Bearer',
      azp: API_CLIENT.clientId,
      tenant_id: TENANT_A,
    });
    expect([claims.aud].flat().sort()).toEqual(['account', API_CLIENT.clientId]);

    const principal = await auth.authenticateBearer(`Bearer ${token}`);
    expect(principal).toMatchObject({ userId: USERS.alice.id, tenantId: TENANT_A, method: 'jwt' });
    // realm_access.roles and resource_access["flowforge-api"].roles; Keycloak's default roles come along.
    expect(principal.roles).toEqual(expect.arrayContaining(['viewer', 'editor', 'widgets:write']));
    expect(principal.roles).toEqual(
      expect.arrayContaining(['default-roles-flowforge', 'offline_access', 'uma_authorization']),
    );
    // Roles of other clients (resource_access.account) are not this API's.
    expect(principal.roles).not.toContain('manage-account');
    expect(principal.claims).toMatchObject({ preferred_username: 'alice' });
    expect(typeof principal.claims.sid).toBe('string'); // the session: password grants only
  });

  it("flowforge-api's service account by client_credentials", async () => {
    const token = await serviceAccountAccessToken();
    const principal = await auth.authenticateBearer(`Bearer ${token}`);
    expect(principal).toMatchObject({
      userId: SERVICE_ACCOUNT.id,
      tenantId: SERVICE_ACCOUNT.tenantId,
      method: 'jwt',
    });
    expect(principal.roles).toEqual(expect.arrayContaining(['editor', 'widgets:write']));
    expect(principal.roles).not.toContain('viewer');
    // A service account's token names its client and has no session.
    expect(principal.claims).toMatchObject({
      client_id: API_CLIENT.clientId,
      azp: API_CLIENT.clientId,
      preferred_username: `service-account-${API_CLIENT.clientId}`,
    });
    expect(principal.claims).not.toHaveProperty('sid');
  });

  it('requireRole reads realm roles and client roles (resource_access) alike', async () => {
    const app = Fastify();
    await app.register(fastifyAuth);
    app.setErrorHandler((error, _request, reply) => {
      if (!isAuthError(error)) return reply.code(500).send({ code: 'BUG' });
      const challenge = error.challenge(settings.auth.keycloak.realm);
      if (challenge) void reply.header('www-authenticate', challenge);
      return reply.code(error.status).send({ code: error.code });
    });
    app.get(
      '/client-role',
      { onRequest: [bearer(auth), requireRole('widgets:write')] },
      () => ({}),
    );
    app.get('/realm-role', { onRequest: [bearer(auth), requireRole('editor')] }, () => ({}));
    try {
      const statuses = async (token: string): Promise<number[]> => {
        const answers = await Promise.all(
          ['/client-role', '/realm-role'].map((url) =>
            app.inject({ url, headers: { authorization: `Bearer ${token}` } }),
          ),
        );
        for (const answer of answers.filter((a) => a.statusCode === 403)) {
          expect(answer.headers['www-authenticate']).toContain('error="insufficient_scope"');
        }
        return answers.map((answer) => answer.statusCode);
      };
      // [widgets:write (client role), editor (realm role)]
      expect(await statuses(await accessTokenOf(USERS.alice))).toEqual([200, 200]);
      expect(await statuses(await accessTokenOf(USERS.carol))).toEqual([200, 403]);
      expect(await statuses(await accessTokenOf(USERS.bob))).toEqual([403, 403]);
      expect(await statuses(await serviceAccountAccessToken())).toEqual([200, 200]);
    } finally {
      await app.close();
    }
  });

  it('a token of other-client (no flowforge-api audience) is refused: 401 TOKEN_INVALID (audience)', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const counted = authFrom(settings, {}, { metrics });
    // alice through other-client: same user and tenant, but no aud at all and azp other-client.
    const viaOther = await accessTokenOf(USERS.alice, OTHER_CLIENT);
    const claims = decodeJwt(viaOther);
    expect(claims).not.toHaveProperty('aud');
    expect(claims).toMatchObject({ azp: OTHER_CLIENT.clientId, tenant_id: TENANT_A });
    expect(await outcome(counted, viaOther)).toBe('401 TOKEN_INVALID audience');
    // other-client's own service account.
    const service = (await clientCredentialsGrant({ client: OTHER_CLIENT })).access_token;
    expect(decodeJwt(service)).toMatchObject({ azp: OTHER_CLIENT.clientId });
    expect(await outcome(counted, service)).toBe('401 TOKEN_INVALID audience');

    const error = await counted.authenticateBearer(`Bearer ${viaOther}`).catch((e: unknown) => e);
    expect(isAuthError(error, 'TOKEN_INVALID')).toBe(true);
    expect((error as AuthError).challenge(settings.auth.keycloak.realm)).toBe(
      'Bearer realm="flowforge", error="invalid_token", error_description="the token is not meant for this API"',
    );
    expect(await metrics.render()).toContain('flowforge_auth_failures_total{reason="audience"} 3');
  });

  it('nobody (no tenant_id claim at all) is refused: 401 TOKEN_INVALID (tenant)', async () => {
    const token = await accessTokenOf(USERS.nobody);
    const claims = decodeJwt(token);
    expect(claims).not.toHaveProperty('tenant_id');
    expect(claims).toMatchObject({ sub: USERS.nobody.id, azp: API_CLIENT.clientId });
    expect(await outcome(auth, token)).toBe('401 TOKEN_INVALID tenant');
  });

  it("Keycloak's ID token (typ ID) and refresh token (HS512) are not access tokens: refused", async () => {
    const tokens = await passwordGrant(USERS.bob, { scope: 'openid' });
    const idToken = tokens.id_token!;
    expect(decodeProtectedHeader(idToken)).toMatchObject({ alg: 'RS256' });
    expect(decodeJwt(idToken)).toMatchObject({
      typ: 'ID',
      aud: API_CLIENT.clientId,
      tenant_id: TENANT_B,
    });
    expect(await outcome(auth, idToken)).toBe('401 TOKEN_INVALID type');
    const refreshToken = tokens.refresh_token!;
    expect(decodeProtectedHeader(refreshToken)).toMatchObject({ alg: 'HS512' });
    expect(decodeJwt(refreshToken)).toMatchObject({ typ: 'Refresh' });
    expect(await outcome(auth, refreshToken)).toBe('401 TOKEN_INVALID algorithm');
    // The access token of the same answer is fine.
    expect(await outcome(auth, tokens.access_token)).toBe('200 jwt');
  });

  it('logout ends the session in Keycloak; the access token still verifies offline until it expires', async () => {
    // A session of its own: logging it out touches no other test's tokens.
    const session = await passwordGrant(USERS.carol);
    const token = session.access_token;
    // No verdict cache: every check below is a signature check against the JWKS.
    const offline = authFrom(settings, { tokenCacheSize: 0 });
    expect(await outcome(offline, token)).toBe('200 jwt');
    expect(await introspect(token)).toMatchObject({ active: true });

    await logoutSession(session.refresh_token!);

    // Keycloak's view: the session is gone, so introspection and refresh say no…
    expect(await introspect(token)).toEqual({ active: false });
    const refresh = await refreshGrant(session.refresh_token!).catch((e: unknown) => e);
    expect(refresh).toBeInstanceOf(KeycloakRequestError);
    expect(refresh).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Session not active' },
    });
    // …but this API verifies offline (signature, claims, exp): the token still opens it,
    // on a warm verifier and on one that fetches the keys afresh.
    expect(await outcome(offline, token)).toBe('200 jwt');
    expect(await outcome(authFrom(settings), token)).toBe('200 jwt');
    // Until its exp (+ the clock tolerance), and not after.
    const exp = decodeJwt(token).exp!;
    const keycloak = settings.auth.keycloak;
    const at = (seconds: number) =>
      createJwtVerifier({
        issuer: keycloak.issuer,
        jwksUrl: keycloak.jwksUrl,
        audience: keycloak.clientId,
        clockToleranceSeconds: settings.auth.clockToleranceSeconds,
        now: () => seconds * 1000,
      }).verify(token);
    await expect(at(exp + settings.auth.clockToleranceSeconds - 1)).resolves.toMatchObject({
      userId: USERS.carol.id,
    });
    await expect(at(exp + settings.auth.clockToleranceSeconds + 1)).rejects.toMatchObject({
      code: 'TOKEN_EXPIRED',
      status: 401,
    });
  });
});

describe('in a throwaway copy of the realm: key rotation through the admin REST API, and outages', () => {
  let admin: KeycloakAdmin;
  let realm: RealmCopy;
  /** Small JWKS timings, still read from the environment's variables: cooldown 0.5 s, max age 1 s. */
  let fast: Settings;

  beforeAll(async () => {
    admin = new KeycloakAdmin();
    realm = await createRealmCopy(admin, 'ff-auth-keys');
    fast = settingsFor(realm.name, { AUTH_JWKS_COOLDOWN_MS: '500', AUTH_JWKS_MAX_AGE_MS: '1000' });
  }, 60_000);

  afterAll(async () => {
    await realm?.delete();
  }, 30_000);

  const serviceToken = async (): Promise<string> =>
    (await clientCredentialsGrant({ realm: realm.name })).access_token;
  const keyStatus = async (kid: string): Promise<string | undefined> =>
    (await admin.keys(realm.name)).keys.find((key) => key.kid === kid)?.status;
  const publishedKids = async (): Promise<unknown[]> =>
    (await fetchJwks(realm.name)).keys.filter((key) => key.use === 'sig').map((key) => key.kid);

  it(
    'publish, activate, retire: requests made all along never fail; once the old key leaves the JWKS its tokens are 401 (unknown kid), and it is deleted',
    { timeout: 150_000 },
    async () => {
      const cached = authFrom(fast);
      const uncached = authFrom(fast, { tokenCacheSize: 0 }); // every request a signature check
      const [original] = (await admin.keyProviders(realm.name)).filter(
        (provider) => provider.providerId === 'rsa-generated',
      );
      const oldKid = (await admin.keys(realm.name)).active.RS256!;
      const oldToken = await serviceToken();
      expect(kidOf(oldToken)).toBe(oldKid);

      // Requests all along: each round a fresh token (whichever key signs it now) and the
      // old one, through both verifiers. Every refusal is recorded with its phase.
      let phase = 'before';
      const failures: string[] = [];
      const freshKids: string[] = [];
      let running = true;
      const loop = (async () => {
        while (running) {
          try {
            const fresh = await serviceToken();
            freshKids.push(kidOf(fresh)!);
            for (const [name, verifier] of [
              ['cached', cached],
              ['uncached', uncached],
            ] as const) {
              for (const [which, token] of [
                ['fresh', fresh],
                ['old', oldToken],
              ] as const) {
                const result = await outcome(verifier, token);
                if (result !== '200 jwt')
                  failures.push(`${phase}: ${name} ${which} ${kidOf(token)}: ${result}`);
              }
            }
          } catch (error) {
            failures.push(`${phase}: ${String(error)}`);
          }
        }
      })();
      const moreRounds = (count: number) => {
        const target = freshKids.length + count;
        return eventually(`${count} more rounds (${phase})`, () =>
          Promise.resolve(freshKids.length >= target || undefined),
        );
      };

      try {
        await moreRounds(3);

        // 1. A new RSA key, priority 200, added passive: published, not signing yet.
        phase = 'new key published';
        const newProvider = await admin.addRsaKey(realm.name, {
          name: 'rsa-rotated',
          priority: 200,
          active: false,
        });
        const newKid = (await admin.keys(realm.name)).keys.find(
          (key) => key.providerId === newProvider && key.algorithm === 'RS256',
        )!.kid;
        expect(await keyStatus(newKid)).toBe('PASSIVE');
        expect(await publishedKids()).toEqual(expect.arrayContaining([oldKid, newKid]));
        // Both verifiers refresh their keys (max age 1 s) and so know the new key before it
        // signs anything. Two fetches: the first may have started before the key was added.
        const fetched = [cached.jwksFetches(), uncached.jwksFetches()];
        await eventually('both verifiers to fetch the key set with the new key', () =>
          Promise.resolve(
            (cached.jwksFetches() >= fetched[0]! + 2 &&
              uncached.jwksFetches() >= fetched[1]! + 2) ||
              undefined,
          ),
        );

        // 2. Activated: having the highest priority, it signs every new token.
        phase = 'new key active';
        await admin.setKeyProvider(realm.name, newProvider, { active: true });
        expect((await admin.keys(realm.name)).active.RS256).toBe(newKid);
        await eventually('rounds with tokens of the new key', () =>
          Promise.resolve(freshKids.filter((kid) => kid === newKid).length >= 3 || undefined),
        );

        // 3. The old key made passive: no longer signs, still published, its tokens still verify.
        phase = 'old key passive';
        await admin.setKeyProvider(realm.name, original!.id, { active: false });
        expect(await keyStatus(oldKid)).toBe('PASSIVE');
        expect(await publishedKids()).toEqual(expect.arrayContaining([oldKid, newKid]));
        await moreRounds(3);
      } finally {
        running = false;
        await loop;
      }
      expect(failures).toEqual([]);
      expect(new Set(freshKids).size).toBe(2);
      expect(freshKids[0]).toBe(oldKid);

      // 4. The old key disabled: it leaves the JWKS. Once a verifier refetches (max age
      //    1 s, cooldown 0.5 s; the new-key tokens it verifies meanwhile drive it), the old
      //    kid is unknown: 401, and the cached verdict of the old token no longer counts.
      await admin.setKeyProvider(realm.name, original!.id, { active: false, enabled: false });
      expect(await keyStatus(oldKid)).toBe('DISABLED');
      expect(await publishedKids()).not.toContain(oldKid);
      for (const [name, verifier] of [
        ['cached', cached],
        ['uncached', uncached],
      ] as const) {
        const refused = await eventually(
          `the ${name} verifier to refuse the old key's token`,
          async () => {
            expect(await outcome(verifier, await serviceToken())).toBe('200 jwt');
            const result = await outcome(verifier, oldToken);
            return result === '200 jwt' ? undefined : result;
          },
          { intervalMs: 200 },
        );
        expect(refused).toBe('401 TOKEN_INVALID unknown_key');
      }
      const error = await cached.authenticateBearer(`Bearer ${oldToken}`).catch((e: unknown) => e);
      expect((error as AuthError).challenge(realm.name)).toContain('error="invalid_token"');

      // 5. Deleted: gone from the key list too; the realm signs with the new key.
      await admin.deleteComponent(realm.name, original!.id);
      const after = await admin.keys(realm.name);
      expect(after.keys.map((key) => key.kid)).not.toContain(oldKid);
      expect(after.active.RS256).toBeDefined();
      expect(await outcome(cached, oldToken)).toBe('401 TOKEN_INVALID unknown_key');
      expect(await outcome(uncached, await serviceToken())).toBe('200 jwt');
    },
  );

  it("one step (Keycloak's documented rotation: a higher-priority key signs at once): a verifier that fetched within its cooldown still accepts the new key's tokens, with one early refetch", async () => {
    // Default timings (cooldown 30 s, max age 10 min); the injected clock stands still, so
    // only a token issued after the last fetch can explain the early refetch.
    const defaults = settingsFor(realm.name);
    const clock = Date.now();
    const verifier = createJwtVerifier({
      issuer: defaults.auth.keycloak.issuer,
      jwksUrl: defaults.auth.keycloak.jwksUrl,
      audience: defaults.auth.keycloak.clientId,
      jwksCooldownMs: defaults.auth.jwksCooldownMs,
      jwksMaxAgeMs: defaults.auth.jwksMaxAgeMs,
      now: () => clock,
    });
    const before = await serviceToken();
    await verifier.verify(before);
    expect(verifier.jwksFetches()).toBe(1);

    await admin.addRsaKey(realm.name, { name: 'rsa-one-step', priority: 300 });
    const after = await serviceToken();
    expect(kidOf(after)).not.toBe(kidOf(before));

    // Within the cooldown, but issued after the last fetch: one early refetch (spaced a
    // second from the last one), shared by concurrent callers, and every one verifies.
    const principals = await Promise.all([1, 2, 3].map(() => verifier.verify(after)));
    for (const principal of principals) {
      expect(principal).toMatchObject({
        userId: decodeJwt(after).sub, // the copy's service account has an id of its own
        tenantId: TENANT_A,
      });
    }
    expect(verifier.jwksFetches()).toBe(2);
    await expect(verifier.verify(before)).resolves.toMatchObject({ method: 'jwt' });
    expect(verifier.jwksFetches()).toBe(2);
  });

  it(
    'Keycloak unreachable: keys in hand keep verifying, an unknown kid is 503 IDP_UNAVAILABLE, and it recovers',
    { timeout: 90_000 },
    async () => {
      const proxy = await startTcpProxy();
      try {
        // The verifier reaches the JWKS through the proxy; tokens keep their real issuer.
        const keycloak = {
          ...fast.auth.keycloak,
          jwksUrl: realmEndpoints(realm.name, proxy.url).jwksUrl,
        };
        const lines: string[] = [];
        const logger = createLogger({
          level: 'warn',
          destination: { write: (line: string) => void lines.push(line) },
        });
        const warm = authFrom(fast, { keycloak }, { logger });
        const cold = authFrom(fast, { keycloak });
        const seen = await serviceToken();
        expect(await outcome(warm, seen)).toBe('200 jwt');

        await proxy.stop();

        // Tokens it has never seen, signed by a key it has: verified with the keys in hand
        // while its refreshes (max age 1 s) fail. Keycloak itself still issues them.
        const stale = await eventually(
          'a failed JWKS refresh',
          async () => {
            expect(await outcome(warm, await serviceToken())).toBe('200 jwt');
            return lines.find((line) => line.includes('still verifying with the last good keys'));
          },
          { intervalMs: 200 },
        );
        expect(JSON.parse(stale)).toMatchObject({ level: 'warn', serving: 'stale' });
        // A verifier that never had keys can verify nothing: 503, not 401.
        expect(await outcome(cold, seen)).toBe('503 IDP_UNAVAILABLE idp_unavailable');
        // What readiness reads: degraded while keys in hand verify, down without any.
        expect(await warm.health()).toMatchObject({
          status: 'degraded',
          error: 'fetch failed (ECONNREFUSED)',
        });
        expect(await cold.health()).toMatchObject({ status: 'down', keysFetchedAt: null });

        // Keycloak rotates while unreachable: its new tokens are 503 (retry), not 401.
        await admin.addRsaKey(realm.name, { name: 'rsa-while-unreachable', priority: 400 });
        const rotated = await serviceToken();
        expect(kidOf(rotated)).not.toBe(kidOf(seen));
        expect(await outcome(warm, rotated)).toBe('503 IDP_UNAVAILABLE idp_unavailable');
        const error = await warm.authenticateBearer(`Bearer ${rotated}`).catch((e: unknown) => e);
        expect(isAuthError(error, 'IDP_UNAVAILABLE')).toBe(true);
        expect((error as AuthError).challenge(realm.name)).toBeUndefined(); // a 503, no Bearer challenge
        expect(await outcome(warm, seen)).toBe('200 jwt');

        // Back: after its cooldown each verifier fetches the keys and verifies the new token.
        await proxy.start();
        for (const [name, verifier] of [
          ['warm', warm],
          ['cold', cold],
        ] as const) {
          await eventually(
            `the ${name} verifier to verify the new key's token`,
            async () => (await outcome(verifier, rotated)) === '200 jwt' || undefined,
            { intervalMs: 200 },
          );
        }
        expect(await outcome(warm, seen)).toBe('200 jwt');
        await eventually(
          'health to be ok again',
          async () => ((await warm.health()).status === 'ok' ? true : undefined),
          { intervalMs: 200 },
        );
      } finally {
        await proxy.stop();
      }
    },
  );
});
