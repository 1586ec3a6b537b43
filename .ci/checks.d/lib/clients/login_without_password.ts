// Must NOT compile: the login body requires a password.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:1" });
export const attempt = client.POST("/auth/login", { body: { username: "someone" } });
