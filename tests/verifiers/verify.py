"""Verifies our access tokens the way the README tells a Python service to: PyJWT's
PyJWKClient against the JWKS URL, with issuer and audience. One token per stdin line;
answers "ok <sub>" or "err <reason>" per line (flushed), so a test can drive a loop."""
import sys

import jwt

jwks_url, issuer, audience = sys.argv[1:4]
client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300)
for line in sys.stdin:
    token = line.strip()
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=["ES256", "EdDSA", "RS256"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        print("ok", claims["sub"], flush=True)
    except Exception as e:  # every refusal is an answer, not a crash
        print("err", type(e).__name__, str(e).replace("\n", " "), flush=True)
