// register → login → me → balance through openapi-fetch typed by the generated schema.d.ts.
// Usage: node out/drive.js BASE_URL USERNAME
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const [base, username] = process.argv.slice(2);
const password = "generated client password";
const client = createClient<paths>({ baseUrl: base });

function check(ok: boolean, what: string, detail: unknown): void {
  if (!ok) {
    console.error(`FAIL: ${what}`, detail);
    process.exit(1);
  }
}

const created = await client.POST("/auth/register", {
  body: { username, email: `${username}@example.com`, password },
});
check(created.response.status === 201, "register", created.error);

const tokens = await client.POST("/auth/login", {
  body: { username, password },
});
check(tokens.response.status === 200 && tokens.data !== undefined, "login", tokens.error);
// A login answers a token pair, or (an account with a second factor) an mfa_required
// challenge: a strict client has to tell them apart before it reads a token.
const answer = tokens.data!;
if (!("access_token" in answer)) {
  throw new Error(`login asked for a second factor: ${JSON.stringify(answer)}`);
}
const access = answer.access_token;
const headers = { Authorization: `Bearer ${access}` };

const me = await client.GET("/auth/me", { headers });
check(me.data?.username === username, "me", me.error);
const balance = await client.GET("/credits/balance", { headers });
check(balance.data?.balance === 0, "balance", balance.error);
console.log(`typescript client: ${username} registered, logged in, me ok, balance ${balance.data!.balance}`);
