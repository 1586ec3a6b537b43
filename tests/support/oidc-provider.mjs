// Test launcher for oauth2-mock-server (a real OpenID Connect provider from npm).
// Usage: node oidc-provider.mjs <path to node_modules/oauth2-mock-server> [ALG]
// Listens on a free port of 127.0.0.1, prints {"port": N} on stdout, and serves the
// provider plus one control route: POST /__control/claims {...} replaces the claims that
// are merged into every token signed from then on (sub, email, email_verified, aud, ...).
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [, , modulePath, alg = 'RS256'] = process.argv;
const entry = pathToFileURL(path.join(modulePath, 'dist', 'index.mjs')).href;
const { OAuth2Server } = await import(entry);

const server = new OAuth2Server();
await server.issuer.keys.generate(alg);

let overrides = {};
server.service.on('beforeTokenSigning', (token) => {
  Object.assign(token.payload, overrides);
});
server.service.addRoute('POST', '/__control/claims', (req, res) => {
  overrides = req.body ?? {};
  res.writeHead(204);
  res.end();
});

await server.start(0, '127.0.0.1');
const port = server.address().port;
// The issuer names the address we listen on (the default says "localhost").
server.issuer.url = `http://127.0.0.1:${port}`;
process.stdout.write(JSON.stringify({ port }) + '\n');
// The test holds our stdin; when it closes (the test ended or died), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
