// The peer in the client_credentials scenario: node-oidc-provider 9 (the certified OpenID
// provider for Node) with what Tessera's run has: its in-memory adapter, one confidential client
// (client_secret_basic, client_credentials, scope "read"), JWT access tokens (RFC 9068) signed
// with the same algorithm, a 300 s lifetime, no logging. Measured with the same load generator
// and connections as Tessera.
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) throw new Error("PORT is required");
const alg = process.env.SIGNING_ALG ?? "ES256";
const clientSecret = process.env.CLIENT_SECRET;
if (!clientSecret) throw new Error("CLIENT_SECRET is required");
const RESOURCE = "https://api.bench.test/";

const { privateKey } = await generateKeyPair(alg, { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg, use: "sig", kid: "bench" };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "bench",
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: alg,
      scope: "read",
    },
  ],
  jwks: { keys: [jwk] },
  ttl: { ClientCredentials: 300 },
  scopes: ["read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: "read", audience: RESOURCE, accessTokenTTL: 300, accessTokenFormat: "jwt", jwt: { sign: { alg } } }),
    },
  },
});

const server = provider.listen(port, "127.0.0.1");
const stop = () => server.close(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
