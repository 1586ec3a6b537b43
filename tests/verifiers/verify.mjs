// Verifies our access tokens the way the README tells a TypeScript service to: jose's
// createRemoteJWKSet + jwtVerify with issuer and audience. One token per stdin line;
// answers "ok <sub>" or "err <reason>" per line, in order.
import { createInterface } from "node:readline";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, issuer, audience] = process.argv.slice(2);
const JWKS = createRemoteJWKSet(new URL(jwksUrl));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const token = line.trim();
  try {
    const { payload } = await jwtVerify(token, JWKS, { issuer, audience });
    process.stdout.write(`ok ${payload.sub}\n`);
  } catch (e) {
    process.stdout.write(`err ${e.code ?? e.name} ${String(e.message).replace(/\n/g, " ")}\n`);
  }
}
