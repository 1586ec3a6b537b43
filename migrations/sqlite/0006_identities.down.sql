DROP TABLE identities;
DROP TABLE oauth_states;
