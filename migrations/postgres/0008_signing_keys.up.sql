-- Access-token signing keys shared by every instance (DESIGN §13). The private key is
-- stored only encrypted (AES-256-GCM under a key derived from SECRET_KEY with HKDF-SHA256).
CREATE TABLE signing_keys (
    kid               TEXT PRIMARY KEY,
    -- ES256, EdDSA or RS256
    alg               TEXT NOT NULL,
    -- 'next' | 'current' | 'previous' | 'retired'
    state             TEXT NOT NULL,
    -- the public half as a JWK (JSON text), what /.well-known/jwks.json publishes
    public_jwk        TEXT NOT NULL,
    -- base64 of nonce || AES-256-GCM ciphertext of the PKCS#8 (PKCS#1 for RSA) DER
    private_key_enc   TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    -- when it became current / stopped being current / was retired
    activated_at      TIMESTAMPTZ,
    deactivated_at    TIMESTAMPTZ,
    retired_at        TIMESTAMPTZ,
    -- until when HS* tokens signed with SECRET_KEY before the switch to this run of
    -- asymmetric keys stay acceptable (NULL: none were live); rotation carries it over
    hs_accepted_until TIMESTAMPTZ,
    CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'current', 'previous', 'retired'))
);
-- At most one next and one current key: two instances starting (or rotating) at once
-- cannot both win.
CREATE UNIQUE INDEX signing_keys_one_per_state ON signing_keys (state) WHERE state IN ('next', 'current');
