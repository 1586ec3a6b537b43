-- How a sign-in was proved (DESIGN §14), kept where it continues: the first step an
-- mfa_token stands for (a password or a provider), so the token pair it gives names both
-- methods in amr; and the session's aal and amr ("aal2 pwd otp"), so a refreshed access
-- token keeps them instead of falling back to aal1; and when the session last proved a
-- second factor (at sign-in or a step-up), for the changes that need a recent one.
ALTER TABLE mfa_tokens ADD COLUMN first_factor TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN assurance TEXT NOT NULL DEFAULT 'aal1 pwd';
ALTER TABLE sessions ADD COLUMN second_factor_at TIMESTAMPTZ;
