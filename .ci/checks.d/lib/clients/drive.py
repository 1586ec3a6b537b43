"""register → login → me → balance with the generated Python client (package `authclient`).

Usage: drive.py BASE_URL USERNAME
"""

import sys

from authclient import AuthenticatedClient, Client
from authclient.api.auth import login, me, register
from authclient.api.credits_ import balance  # "credits" is a Python builtin: the generator adds "_"
from authclient.models import LoginForm, LoginRequest, RegisterRequest

base, username = sys.argv[1], sys.argv[2]
password = "generated client password"
client = Client(base_url=base, raise_on_unexpected_status=True)

created = register.sync_detailed(
    client=client,
    body=RegisterRequest(username=username, email=f"{username}@example.com", password=password),
)
assert created.status_code == 201, (created.status_code, created.content)

wrong = login.sync_detailed(client=client, body=LoginRequest(username=username, password="not it at all"))
assert wrong.status_code == 401, (wrong.status_code, wrong.content)
tokens = login.sync_detailed(client=client, body=LoginRequest(username=username, password=password))
assert tokens.status_code == 200, (tokens.status_code, tokens.content)
access = tokens.parsed.access_token
# The OAuth2 password form, as the original's clients send it.
form = login.sync_detailed(client=client, body=LoginForm(username=username, password=password))
assert form.status_code == 200, (form.status_code, form.content)

authed = AuthenticatedClient(base_url=base, token=access, raise_on_unexpected_status=True)
who = me.sync_detailed(client=authed)
assert who.status_code == 200 and who.parsed.username == username, (who.status_code, who.content)
money = balance.sync_detailed(client=authed)
assert money.status_code == 200 and money.parsed.balance == 0, (money.status_code, money.content)
print(f"python client: {username} registered, logged in, me ok, balance {money.parsed.balance}")
